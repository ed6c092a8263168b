/**
 * The SSH connection `mammatus node add [USER@]HOST` works through (node-ssh over ssh2). Two rules
 * make it safe to point at a machine: the host's key is checked against known_hosts (through the
 * real `ssh-keygen -F`) before any of the operator's keys is offered, so a host that is not the one
 * the operator knows never sees a signature and never gets a command; and only the operator's keys
 * are offered (ssh-agent, --identity, ~/.ssh/id_ed25519, ~/.ssh/id_rsa), never a password.
 */
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NodeSSH } from 'node-ssh';
import type { AnyAuthMethod, AuthenticationType } from 'ssh2';
import type { Run } from './contracts.js';
import { buildRun } from './exec.js';
import {
  appendKnownHost,
  checkHostKey,
  keyTypeOf,
  knownHostName,
  lookupKnownHost,
  sshFingerprint,
  type KnownHostEntry,
} from './known-hosts.js';
import { chooseKeys, type KeyCandidate } from './ssh-keys.js';
import { authRefusal, hostKeyRefusal, SshRefused } from './ssh-refused.js';
import { PUT_SCRIPT, remoteCommand, runRemote, type RemoteResult } from './ssh-exec.js';

export { SshRefused, type SshRefusal } from './ssh-refused.js';
export { remoteCommand, shellQuote, type RemoteResult } from './ssh-exec.js';

/** Where to connect: a user on a host and port. */
export interface SshTarget {
  readonly user: string;
  readonly host: string;
  readonly port: number;
}

/** Where OpenSSH keeps the machine's known host keys. */
const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';
const USER = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/;

/**
 * Reads `[USER@]HOST` (HOST may be `[v6]`); the user defaults to the local user name (like OpenSSH),
 * the port to 22. @throws SshRefused('target') on a malformed target or port.
 */
export function parseSshTarget(text: string, port = 22): SshTarget {
  const bad = (why: string) =>
    new SshRefused('target', `not an SSH target: ${JSON.stringify(text)} (${why}; expected [USER@]HOST, HOST may be [IPv6])`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`port ${port} is not 1-65535`);
  const at = text.lastIndexOf('@');
  const user = at >= 0 ? text.slice(0, at) : os.userInfo().username;
  // Host names are compared in lower case, as OpenSSH does (known_hosts, hashed or not).
  let host = (at >= 0 ? text.slice(at + 1) : text).toLowerCase();
  if (!USER.test(user)) throw bad('bad user name');
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!host.includes(':') || !IPV6.test(host)) throw bad('bad IPv6 address');
  } else if (!HOSTNAME.test(host) && !(host.includes(':') && IPV6.test(host))) throw bad('bad host name');
  return { user, host, port };
}

/** How to reach the host and prove who we are; defaults read the operator's own environment. */
export interface SshOptions {
  /** `--identity FILE`: a private key, offered after the agent's keys. */
  readonly identity?: string;
  /** The ssh-agent's socket; default `process.env.SSH_AUTH_SOCK`; `''` uses no agent. */
  readonly agentSocket?: string;
  /** Home directory for ~/.ssh/id_ed25519, ~/.ssh/id_rsa, ~/.ssh/known_hosts; default `os.homedir()`. */
  readonly home?: string;
  /** The known_hosts file; default `<home>/.ssh/known_hosts`. */
  readonly knownHosts?: string;
  /** The system-wide known_hosts, consulted after the operator's (never written); default /etc/ssh/ssh_known_hosts. */
  readonly globalKnownHosts?: string;
  /** OpenSSH's `StrictHostKeyChecking=accept-new`: an unknown host's key is recorded and accepted. */
  readonly acceptNew?: boolean;
  /** Connect, handshake and authentication together; default 15000. */
  readonly connectTimeoutMs?: number;
  /** Runs `ssh-keygen` (default: the production runner). */
  readonly run?: Run;
}

/** An authenticated connection to a host. */
export interface RemoteHost {
  readonly target: SshTarget;
  /** The host key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it. */
  readonly hostKeyFingerprint: string;
  /** How we got in: `agent`, `identity <file>` or `key <file>`. */
  readonly auth: string;
  /**
   * Runs `argv` on the host as root (`sudo -n` first when the user is not root), each argument
   * shell-quoted. Resolves on any exit code; rejects on a lost connection or a timeout.
   */
  exec(argv: readonly string[], opts?: { stdin?: string | Buffer; timeoutMs?: number }): Promise<RemoteResult>;
  /** Writes `content` to the absolute `path` as root, atomically (temp file beside it, then rename), with `mode`. */
  writeFile(path: string, content: string | Buffer, mode: number): Promise<void>;
  /** Copies a local file to the absolute `path` as root, streamed through `cat` (no SFTP), atomically, with `mode`. */
  copyFile(localPath: string, path: string, mode: number): Promise<void>;
  close(): Promise<void>;
}

/** Default timeouts: a command, and a whole file copy (megabytes over a slow link). */
const EXEC_TIMEOUT_MS = 120_000;
const COPY_TIMEOUT_MS = 600_000;

/** Host key algorithms, those of the types known_hosts has for the host first (as OpenSSH orders them). */
function hostKeyOrder(entries: readonly KnownHostEntry[]): string[] {
  const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'];
  const known = new Set(
    entries
      .filter((e) => e.marker === undefined)
      .flatMap((e) => (e.keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [e.keyType])),
  );
  return [...all.filter((a) => known.has(a)), ...all.filter((a) => !known.has(a))];
}

/**
 * Connects, checks the host key against known_hosts before authenticating, and authenticates with
 * the operator's keys only. @throws SshRefused with a reason and a message the operator can act on.
 */
export async function openSsh(target: SshTarget, opts: SshOptions = {}): Promise<RemoteHost> {
  const home = opts.home ?? os.homedir();
  const knownHosts = opts.knownHosts ?? join(home, '.ssh', 'known_hosts');
  const timeoutMs = opts.connectTimeoutMs ?? 15_000;
  const run = opts.run ?? buildRun();
  const where = `${target.user}@${target.host} port ${target.port}`;
  const choice = await chooseKeys({
    username: target.user,
    agentSocket: opts.agentSocket ?? process.env.SSH_AUTH_SOCK ?? '',
    home,
    timeoutMs,
    ...(opts.identity === undefined ? {} : { identity: opts.identity }),
  });
  if (choice.identityError !== undefined) throw new SshRefused('no-key', `cannot use --identity: ${choice.identityError}`);
  if (choice.candidates.length === 0) {
    throw new SshRefused(
      'no-key',
      `no SSH key to offer to ${where}: ${choice.skipped.join('; ')}. Pass --identity FILE, or start ssh-agent and ssh-add your key.`,
    );
  }
  // The operator's file, then the system-wide one (read only), as OpenSSH consults both.
  const entries = [
    ...(await lookupKnownHost(run, knownHosts, target.host, target.port)),
    ...(await lookupKnownHost(run, opts.globalKnownHosts ?? GLOBAL_KNOWN_HOSTS, target.host, target.port)),
  ];

  let refusal: SshRefused | undefined;
  let fingerprint = '';
  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    fingerprint = sshFingerprint(key);
    const verdict = checkHostKey(entries, key);
    if (verdict === 'known') return verify(true);
    if (verdict === 'unknown' && opts.acceptNew) {
      appendKnownHost(knownHosts, target.host, target.port, key).then(
        () => verify(true),
        (err: unknown) => {
          refusal = new SshRefused(
            'host-key-unknown',
            `${where}: could not record its ${keyTypeOf(key)} key ${fingerprint} in ${knownHosts}: ${String(err)}`,
            fingerprint,
          );
          verify(false);
        },
      );
      return;
    }
    refusal = hostKeyRefusal(verdict, {
      name: knownHostName(target.host, target.port),
      where,
      key,
      fingerprint,
      knownHosts,
      entries,
      port: target.port,
      host: target.host,
    });
    verify(false);
  };

  let next = 0;
  let current: KeyCandidate | undefined;
  let serverMethods: AuthenticationType[] | undefined;
  // Only the candidates' agent/publickey methods, in order; ssh2 passes null before the first try.
  const authHandler = (left: AuthenticationType[] | null, _partial: boolean | null, nextAuth: (m: AnyAuthMethod | false) => void): void => {
    if (left) serverMethods = left;
    const candidate = left && !left.includes('publickey') ? undefined : choice.candidates[next++];
    current = candidate;
    nextAuth(candidate ? candidate.method : false);
  };

  const ssh = new NodeSSH();
  try {
    await ssh.connect({
      host: target.host,
      port: target.port,
      username: target.user,
      readyTimeout: timeoutMs,
      hostVerifier,
      // ssh2's typings leave out the `false` that ends authentication, and type algorithm names as a
      // closed union; both are what ssh2 itself takes at run time.
      authHandler: authHandler as never,
      algorithms: { serverHostKey: hostKeyOrder(entries) as never },
    });
  } catch (err) {
    ssh.dispose();
    if (refusal) throw refusal;
    if ((err as { level?: string }).level === 'client-authentication')
      throw authRefusal(where, choice.candidates, serverMethods, fingerprint);
    throw new SshRefused(
      'connect',
      `cannot connect to ${where}: ${err instanceof Error ? err.message : String(err)}`,
      fingerprint || undefined,
    );
  }
  // node-ssh stops listening for errors once connected; a later one (a reset) must not crash the process.
  ssh.connection?.on('error', () => undefined);
  const auth = current?.label ?? 'unknown';

  const put = async (path: string, stdin: Readable | string, mode: number, timeoutMs: number): Promise<void> => {
    if (!path.startsWith('/')) throw new Error(`remote path must be absolute: ${path}`);
    const r = await runRemote(
      ssh,
      where,
      remoteCommand(['sh', '-c', PUT_SCRIPT, 'sh', path, (mode & 0o7777).toString(8)], target.user),
      stdin,
      timeoutMs,
    );
    if (r.code !== 0) throw new Error(`${where}: writing ${path} failed (exit ${r.code}): ${r.stderr.trim()}`);
  };

  return {
    target,
    hostKeyFingerprint: fingerprint,
    auth,
    exec: (argv, o = {}) => {
      const stdin = typeof o.stdin === 'string' || o.stdin === undefined ? o.stdin : Readable.from([o.stdin]);
      return runRemote(ssh, where, remoteCommand(argv, target.user), stdin, o.timeoutMs ?? EXEC_TIMEOUT_MS);
    },
    writeFile: (path, content, mode) => put(path, typeof content === 'string' ? content : Readable.from([content]), mode, EXEC_TIMEOUT_MS),
    copyFile: async (localPath, path, mode) => {
      // Opened first, so a missing file is an error here, not a stream error mid-transfer.
      const file = await open(localPath, 'r');
      try {
        await put(path, file.createReadStream({ autoClose: false }), mode, COPY_TIMEOUT_MS);
      } finally {
        await file.close();
      }
    },
    close: () => {
      ssh.dispose();
      return Promise.resolve();
    },
  };
}
