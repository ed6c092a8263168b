/**
 * Starts real `mammatus agent` processes (from the esbuild bundle) next to real serf agents, for the
 * integration tests, the benchmarks and the local cluster. Readiness is the agent's own
 * "agent ready" log line; stop is SIGTERM to the PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackDaemon, untilReady } from './daemon.js';
import { CREDENTIALS_FILE, type NodeCredentials } from '../../core/trust.js';
import { freePort } from './ports.js';

/** The bundled CLI; `npm run build` makes it. */
export const BUNDLE = fileURLToPath(new URL('../../dist/mammatus.mjs', import.meta.url));

/** What to start. */
export interface MammatusAgentSpec {
  /** Working directory: config, state and log go here. */
  readonly dir: string;
  readonly rpcAddr: string;
  readonly rpcAuth?: string;
  /** Extra YAML appended to the generated config. */
  readonly extraYaml?: string;
  /** Use this config file instead of generating one. */
  readonly configPath?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Wait for "agent ready" (default true). */
  readonly waitReady?: boolean;
  /** Run inside this network namespace (`ip netns exec`, which keeps the PID the agent's own). */
  readonly netns?: string;
  /** Run under this command instead (`nsenter …`); it must exec the agent, so the PID stays the agent's own. */
  readonly prefix?: readonly string[];
  /** The node's credentials, written to `<dir>/state/credentials.json` (0600) before the start. */
  readonly credentials?: NodeCredentials;
}

/** A running agent process. */
export interface MammatusAgent extends AsyncDisposable {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  readonly configPath: string;
  /**
   * `http://host:port` of its metrics listener: a free loopback port of its own (agents of one test
   * share the host) unless the config says otherwise; undefined then.
   */
  readonly metricsUrl?: string;
  /** Milliseconds from spawn to the "agent ready" line (NaN if not waited for). */
  readonly startToReadyMs: number;
  /** The log so far, one parsed JSON object per line. */
  logLines(): Record<string, unknown>[];
  /** Resolves when a log line satisfies `match`, rejects after `timeoutMs`. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, wait for exit (SIGKILL after 10 s); resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Is the bundle built? */
export function bundleBuilt(): boolean {
  return existsSync(BUNDLE);
}

/** Starts one agent. */
export async function startMammatusAgent(spec: MammatusAgentSpec): Promise<MammatusAgent> {
  mkdirSync(spec.dir, { recursive: true });
  const configPath = spec.configPath ?? path.join(spec.dir, 'agent.yaml');
  let metricsUrl: string | undefined;
  if (!spec.configPath) {
    // Agents of one test share the host's loopback (unless in a namespace): each its own port.
    if (!/^metrics:/m.test(spec.extraYaml ?? '')) metricsUrl = `http://127.0.0.1:${await freePort()}`;
    const yaml = [
      `state_dir: ${JSON.stringify(path.join(spec.dir, 'state'))}`,
      `serf: { rpc_addr: ${JSON.stringify(spec.rpcAddr)}, rpc_auth: ${JSON.stringify(spec.rpcAuth ?? '')} }`,
      'log: { level: debug }',
      metricsUrl ? `metrics: { listen: ${JSON.stringify(metricsUrl.slice('http://'.length))} }` : '',
      spec.extraYaml ?? '',
    ].join('\n');
    // 0600: it may hold secrets (serf.rpc_auth, a controller's proxy_secret and messaging keys), and
    // the agent refuses a config file with a secret that others can read.
    writeFileSync(configPath, yaml + '\n', { mode: 0o600 });
  }
  if (spec.credentials) {
    mkdirSync(path.join(spec.dir, 'state'), { recursive: true });
    writeFileSync(path.join(spec.dir, 'state', CREDENTIALS_FILE), JSON.stringify(spec.credentials), { mode: 0o600 });
  }
  const logFile = path.join(spec.dir, 'agent.log');
  const out = openSync(logFile, 'a');
  const started = performance.now();
  const argv = [BUNDLE, 'agent', '--config', configPath];
  const [file, args] = spec.prefix?.length
    ? [spec.prefix[0], [...spec.prefix.slice(1), process.execPath, ...argv]]
    : spec.netns
      ? ['ip', ['netns', 'exec', spec.netns, process.execPath, ...argv]]
      : [process.execPath, argv];
  const child = spawn(file, args, {
    stdio: ['ignore', out, out],
    env: { ...(spec.env ?? process.env), JOURNAL_STREAM: '' },
  });
  closeSync(out);
  const daemon = trackDaemon(child);
  const logLines = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const waitForLog = async (match: (line: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logLines().find(match);
      if (hit) return hit;
      if (child.exitCode !== null) throw new Error(`mammatus agent exited (${child.exitCode}); see ${logFile}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for a log line; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  let startToReadyMs = NaN;
  if (spec.waitReady !== false) {
    await untilReady(
      daemon,
      waitForLog((l) => l.msg === 'agent ready'),
      'mammatus agent',
      logFile,
    );
    startToReadyMs = performance.now() - started;
  }
  return {
    /** Stops it when a test's `await using` scope ends. */
    async [Symbol.asyncDispose](this: MammatusAgent) {
      await this.stop();
    },
    process: child,
    pid: child.pid!,
    logFile,
    configPath,
    ...(metricsUrl ? { metricsUrl } : {}),
    startToReadyMs,
    logLines,
    waitForLog,
    stop: () => daemon.stop('SIGTERM', 10_000),
  };
}
