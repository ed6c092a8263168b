/**
 * Starts real `nats-server -js` processes on free loopback ports, for the integration tests, the
 * benchmarks and the local cluster. Each server is stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitForPort } from './ports.js';

/** What to start. */
export interface NatsServerSpec {
  /** Server name (unique in a cluster). */
  readonly name: string;
  /** Directory for the config, the log and the JetStream store. */
  readonly dir: string;
  /** Reuse ports (a restart of the same server keeps its store and address). */
  readonly port?: number;
  readonly clusterPort?: number;
  /** Cluster routes (`nats-route://127.0.0.1:PORT`); with them the server joins cluster `clusterName`. */
  readonly routes?: readonly string[];
  readonly clusterName?: string;
  /** Largest message the server accepts; 2 MiB by default (SQS messages reach 1 MiB). */
  readonly maxPayload?: number;
}

/** A running nats-server. */
export interface NatsServer extends AsyncDisposable {
  readonly spec: NatsServerSpec;
  readonly port: number;
  readonly clusterPort: number;
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly process: ChildProcess;
  readonly logFile: string;
  /** SIGTERM (lame duck is not needed in tests) and wait for exit; SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash, as clients see it). */
  kill(): Promise<void>;
}

/** Is the `nats-server` binary on PATH? */
export function natsServerAvailable(): boolean {
  return ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(':')].some((d) => {
    try {
      closeSync(openSync(path.join(d, 'nats-server'), 'r'));
      return true;
    } catch {
      return false;
    }
  });
}

/** Renders the nats-server config for `spec` (NATS's own config syntax; JSON is a subset of it). */
function renderConfig(spec: NatsServerSpec, port: number, clusterPort: number): string {
  const conf: Record<string, unknown> = {
    server_name: spec.name,
    host: '127.0.0.1',
    port,
    max_payload: spec.maxPayload ?? 2 * 1024 * 1024,
    jetstream: { store_dir: path.join(spec.dir, 'jetstream'), max_memory_store: 256 * 1024 * 1024, max_file_store: 1024 * 1024 * 1024 },
  };
  if (spec.routes) {
    conf.cluster = { name: spec.clusterName ?? 'mammatus', host: '127.0.0.1', port: clusterPort, routes: spec.routes };
  }
  return JSON.stringify(conf, null, 2);
}

/** Starts one server and waits until its client port accepts connections. */
export async function startNatsServer(spec: NatsServerSpec): Promise<NatsServer> {
  mkdirSync(spec.dir, { recursive: true });
  const port = spec.port ?? (await freePort());
  const clusterPort = spec.clusterPort ?? (await freePort());
  const confPath = path.join(spec.dir, 'nats.conf');
  writeFileSync(confPath, renderConfig(spec, port, clusterPort));
  const logFile = path.join(spec.dir, 'nats.log');
  const out = openSync(logFile, 'a');
  const bin = natsServerAvailable() && !process.env.PATH?.includes('/usr/sbin') ? '/usr/sbin/nats-server' : 'nats-server';
  const child = spawn(bin, ['-c', confPath], { stdio: ['ignore', out, out] });
  closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await Promise.race([
      waitForPort(port),
      exited.then(() => {
        throw new Error(`nats-server ${spec.name} exited at start; see ${logFile}`);
      }),
    ]);
  } catch (err) {
    await stopWith('SIGKILL');
    throw err;
  }
  return {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: NatsServer) {
      return this.stop();
    },
    spec,
    port,
    clusterPort,
    url: `nats://127.0.0.1:${port}`,
    process: child,
    logFile,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}
