/**
 * What `mammatus node add` and `node remove` do on a host over SSH, on top of core/ssh-remote.ts:
 * read a file, write only the files whose content or mode differs (compared by sha256 on the host),
 * and start, restart or stop the node's two services with systemd or, on a host without it (a
 * container or chroot), with start-stop-daemon and pid files. Every command is an argv array.
 */
import path from 'node:path';
import { errorMessage } from '../../core/errors.js';
import { openSsh, parseSshTarget, type RemoteHost, type RemoteResult, type SshTarget } from '../../core/ssh-remote.js';
import { UsageError } from './common.js';
import { NODE_PATHS, UNITS, sha256, type NodeService, type PlannedFile } from './node-plan.js';
import { daemonStartArgv, daemonStatusArgv, daemonStopArgv, parseModes, parseSha256 } from './node-host.js';

/** Runs `argv` on the host; throws with its output unless it exits 0. */
export async function must(host: RemoteHost, argv: readonly string[], timeoutMs = 120_000): Promise<RemoteResult> {
  const r = await host.exec(argv, { timeoutMs });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${lastLines(`${r.stderr}\n${r.stdout}`)}`);
  return r;
}

/** The last few non-empty lines of command output, for an error message. */
export function lastLines(text: string, n = 4): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}

/** A file's text on the host, or undefined when it is missing or unreadable. */
export async function readRemote(host: RemoteHost, file: string): Promise<string | undefined> {
  const r = await host.exec(['cat', '--', file]);
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * Makes the host's files what `files` says, writing only those whose sha256 or mode differs (a
 * second run writes nothing). Returns the files it wrote or chmod-ed.
 */
export async function syncFiles(host: RemoteHost, files: readonly PlannedFile[]): Promise<PlannedFile[]> {
  if (files.length === 0) return [];
  const paths = files.map((f) => f.path);
  // Both exit non-zero when a file is missing and still list the others.
  const sums = parseSha256((await host.exec(['sha256sum', '--', ...paths])).stdout);
  const modes = parseModes((await host.exec(['stat', '-c', '%a %n', '--', ...paths])).stdout);
  const stale = files.filter((f) => sums.get(f.path) !== sha256(f.content));
  const loose = files.filter((f) => !stale.includes(f) && modes.get(f.path) !== f.mode);
  if (stale.length > 0) await must(host, ['mkdir', '-p', '--', ...new Set(stale.map((f) => path.posix.dirname(f.path)))]);
  for (const f of stale) await host.writeFile(f.path, f.content, f.mode);
  for (const f of loose) await must(host, ['chmod', f.mode.toString(8), '--', f.path]);
  return [...stale, ...loose];
}

/** Does the host run systemd (as Debian's packages test it)? */
export async function hasSystemd(host: RemoteHost): Promise<boolean> {
  return (await host.exec(['test', '-d', '/run/systemd/system'])).code === 0;
}

/** Is the service running? */
export async function serviceActive(host: RemoteHost, systemd: boolean, s: NodeService): Promise<boolean> {
  const argv = systemd ? ['systemctl', 'is-active', '--quiet', UNITS[s]] : daemonStatusArgv(s);
  return (await host.exec(argv)).code === 0;
}

/**
 * Enables and starts serf, then the agent: a service is (re)started when it is not running or is in
 * `restart` (its config changed). Returns what it did, e.g. `['restarted serf', 'started agent']`.
 */
export async function ensureServices(host: RemoteHost, restart: ReadonlySet<NodeService>): Promise<string[]> {
  const systemd = await hasSystemd(host);
  const done: string[] = [];
  if (systemd) {
    // One unit at a time: `systemctl is-enabled a b` exits 0 when either is enabled.
    const disabled: string[] = [];
    for (const unit of Object.values(UNITS))
      if ((await host.exec(['systemctl', 'is-enabled', '--quiet', unit])).code !== 0) disabled.push(unit);
    if (disabled.length > 0) {
      await must(host, ['systemctl', 'enable', ...disabled]);
      done.push(`enabled ${disabled.join(', ')}`);
    }
  } else {
    await must(host, ['mkdir', '-p', NODE_PATHS.runDir, NODE_PATHS.logDir]);
  }
  for (const s of ['serf', 'agent'] as const) {
    const running = await serviceActive(host, systemd, s);
    if (running && !restart.has(s)) continue;
    if (systemd) await must(host, ['systemctl', 'restart', UNITS[s]]);
    else {
      if (running) await must(host, daemonStopArgv(s), 30_000);
      await must(host, daemonStartArgv(s));
    }
    done.push(`${running ? 'restarted' : 'started'} ${s}`);
  }
  return done;
}

/** Stops the agent, then serf (which leaves the cluster on SIGINT), and disables them under systemd. */
export async function stopServices(host: RemoteHost): Promise<string[]> {
  const systemd = await hasSystemd(host);
  const done: string[] = [];
  for (const s of ['agent', 'serf'] as const) {
    if (!(await serviceActive(host, systemd, s))) continue;
    await must(host, systemd ? ['systemctl', 'stop', UNITS[s]] : daemonStopArgv(s), 60_000);
    done.push(`stopped ${s}`);
  }
  if (systemd) await host.exec(['systemctl', 'disable', ...Object.values(UNITS)]);
  return done;
}

/** The SSH flags `node add` and `node remove` share. */
export interface SshFlags {
  identity?: string;
  port?: string;
  acceptNew?: boolean;
  knownHosts?: string;
}

/** Parses `[USER@]HOST` and `--port` into a target; a bad one is a usage error (exit 2), before any step runs. */
export function sshTarget(text: string, o: Pick<SshFlags, 'port'>): SshTarget {
  const port = o.port === undefined ? undefined : Number(o.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536))
    throw new UsageError(`--port must be 1-65535, got ${o.port}`);
  try {
    return parseSshTarget(text, port);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

/**
 * Opens SSH to `[USER@]HOST` with the operator's key (ssh-agent, `--identity`, ~/.ssh), the host
 * key checked against known_hosts before any authentication; refusals become errors saying what
 * to do. Keys only: no password is ever sent.
 */
export async function connectHost(text: string, o: SshFlags, env: NodeJS.ProcessEnv): Promise<RemoteHost> {
  // A refusal's message already says what to do (the fingerprint, the known_hosts line, the keys offered).
  return openSsh(sshTarget(text, o), {
    identity: o.identity,
    agentSocket: env.SSH_AUTH_SOCK ?? '',
    ...(env.HOME ? { home: env.HOME } : {}),
    knownHosts: o.knownHosts,
    acceptNew: Boolean(o.acceptNew),
    connectTimeoutMs: 15_000,
  });
}
