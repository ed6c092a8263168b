/**
 * Starts real `serf agent` processes on free loopback ports, for the integration tests, the
 * benchmarks and the local cluster. Each agent is stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findOnPath, trackDaemon, untilReady } from './daemon.js';
import { freePort, waitForPort } from './ports.js';

/** What to start. */
export interface SerfAgentSpec {
  readonly name: string;
  readonly tags?: Readonly<Record<string, string>>;
  /** Directory for the agent's log, snapshot and tags file. */
  readonly dir: string;
  readonly rpcAuth?: string;
  readonly encryptKey?: string;
  /** Extra `-event-handler` specs (for the benchmark baseline). */
  readonly eventHandlers?: readonly string[];
  readonly profile?: 'lan' | 'local' | 'wan';
  /** Reuse ports (restart of the same node). */
  readonly bindPort?: number;
  readonly rpcPort?: number;
  /** Use a tags file (tags then persist across restarts and `serf tags` changes). */
  readonly tagsFile?: boolean;
  readonly snapshot?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** Address to gossip on (default 127.0.0.1); RPC stays on the loopback of its namespace. */
  readonly bindIp?: string;
  /** Run inside this network namespace (`ip netns exec`); its loopback is then the RPC address. */
  readonly netns?: string;
}

/** A running serf agent. */
export interface SerfAgent extends AsyncDisposable {
  readonly spec: SerfAgentSpec;
  readonly name: string;
  readonly bindPort: number;
  readonly rpcPort: number;
  readonly rpcAddr: string;
  readonly bindAddr: string;
  readonly process: ChildProcess;
  readonly logFile: string;
  /** SIGINT (graceful leave) and wait for exit; SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash, as the other nodes see it). */
  kill(): Promise<void>;
}

/** Is the `serf` binary on PATH? */
export function serfAvailable(): boolean {
  return findOnPath('serf') !== undefined;
}

/** Inside a namespace our own sockets cannot reach its loopback: ask the serf CLI there instead. */
async function waitForRpcInNetns(netns: string, rpcPort: number, auth: string | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const args = ['netns', 'exec', netns, 'serf', 'members', `-rpc-addr=127.0.0.1:${rpcPort}`, ...(auth ? [`-rpc-auth=${auth}`] : [])];
  while (spawnSync('ip', args, { stdio: 'ignore', timeout: 2000 }).status !== 0) {
    if (Date.now() > deadline) throw new Error(`serf RPC in netns ${netns} not answering on port ${rpcPort}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts one agent and waits until its RPC port accepts connections. */
export async function startSerfAgent(spec: SerfAgentSpec): Promise<SerfAgent> {
  mkdirSync(spec.dir, { recursive: true });
  const bindPort = spec.bindPort ?? (await freePort());
  const rpcPort = spec.rpcPort ?? (await freePort());
  const args = [
    'agent',
    `-node=${spec.name}`,
    `-bind=${spec.bindIp ?? '127.0.0.1'}:${bindPort}`,
    `-rpc-addr=127.0.0.1:${rpcPort}`,
    `-profile=${spec.profile ?? 'lan'}`,
    '-log-level=info',
  ];
  if (spec.tagsFile) {
    // With a tags file serf refuses -tag flags: the initial tags go into the file (unless a restart
    // finds one already, which then wins, as it would on a real node).
    const tagsPath = path.join(spec.dir, 'tags.json');
    if (!existsSync(tagsPath)) writeFileSync(tagsPath, JSON.stringify(spec.tags ?? {}), { mode: 0o600 });
    args.push(`-tags-file=${tagsPath}`);
  }
  if (spec.snapshot) args.push(`-snapshot=${path.join(spec.dir, 'serf.snapshot')}`);
  if (spec.rpcAuth) {
    // rpc_auth exists only as a config-file key, not as a flag.
    const conf = path.join(spec.dir, 'serf-rpc.json');
    writeFileSync(conf, JSON.stringify({ rpc_auth: spec.rpcAuth }), { mode: 0o600 });
    args.push(`-config-file=${conf}`);
  }
  if (spec.encryptKey) args.push(`-encrypt=${spec.encryptKey}`);
  for (const h of spec.eventHandlers ?? []) args.push(`-event-handler=${h}`);
  if (!spec.tagsFile) for (const [k, v] of Object.entries(spec.tags ?? {})) args.push(`-tag`, `${k}=${v}`);
  const logFile = path.join(spec.dir, 'serf.log');
  const out = openSync(logFile, 'a');
  // `ip netns exec` execs the command, so the PID is serf's own either way.
  const [file, argv] = spec.netns ? ['ip', ['netns', 'exec', spec.netns, 'serf', ...args]] : ['serf', args];
  const child = spawn(file, argv, { stdio: ['ignore', out, out], env: spec.env ?? process.env });
  closeSync(out);
  const daemon = trackDaemon(child);
  await untilReady(
    daemon,
    spec.netns ? waitForRpcInNetns(spec.netns, rpcPort, spec.rpcAuth) : waitForPort(rpcPort),
    `serf agent ${spec.name}`,
    logFile,
  );
  return {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: SerfAgent) {
      return this.stop();
    },
    spec,
    name: spec.name,
    bindPort,
    rpcPort,
    rpcAddr: `127.0.0.1:${rpcPort}`,
    bindAddr: `${spec.bindIp ?? '127.0.0.1'}:${bindPort}`,
    process: child,
    logFile,
    stop: async () => void (await daemon.stop('SIGINT')),
    kill: async () => void (await daemon.stop('SIGKILL')),
  };
}
