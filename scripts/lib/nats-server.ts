/**
 * Starts real `nats-server -js` processes on free loopback ports, for the integration tests, the
 * benchmarks and the local cluster. Each server is stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findOnPath, trackDaemon, untilReady } from './daemon.js';
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

/** The `nats-server` binary: on PATH, or in the sbin dir Debian puts it in (not on a user's PATH). */
function natsServerBinary(): string | undefined {
  return findOnPath('nats-server', ['/usr/sbin']);
}

/** Is the `nats-server` binary installed? */
export function natsServerAvailable(): boolean {
  return natsServerBinary() !== undefined;
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
  const bin = natsServerBinary() ?? 'nats-server';
  const child = spawn(bin, ['-c', confPath], { stdio: ['ignore', out, out] });
  closeSync(out);
  const daemon = trackDaemon(child);
  await untilReady(daemon, waitForPort(port), `nats-server ${spec.name}`, logFile);
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
    stop: async () => void (await daemon.stop('SIGTERM')),
    kill: async () => void (await daemon.stop('SIGKILL')),
  };
}
