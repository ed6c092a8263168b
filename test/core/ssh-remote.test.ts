/**
 * The SSH layer of `mammatus node add` against a real OpenSSH sshd on a loopback port, with its own
 * config, host key and authorized_keys in a temp dir: key files (ed25519, RSA) and a real ssh-agent,
 * exec with hostile arguments, stdin and exit codes, known_hosts (unknown, accept-new, hashed,
 * changed, revoked: refused before any key is offered, which sshd's DEBUG log proves), a
 * password-only server (refused, no password ever sent), atomic writeFile and copyFile.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { openSsh, parseSshTarget, remoteCommand, shellQuote, SshRefused, type SshOptions, type SshTarget } from '../../core/ssh-remote.js';

const SSHD = '/usr/sbin/sshd';
const has = (cmd: string) => spawnSync(cmd, ['-?'], { stdio: 'ignore' }).error === undefined;
const isRoot = process.geteuid?.() === 0;
const missing = !isRoot
  ? 'not root (sshd must run as root)'
  : !existsSync(SSHD)
    ? `${SSHD} missing (openssh-server)`
    : !has('ssh-keygen') || !has('ssh-agent')
      ? 'ssh-keygen/ssh-agent missing (openssh-client)'
      : '';
if (missing) console.warn(`SSH remote tests against a real sshd skipped: ${missing}`);

const NASTY = [
  'a b',
  "it's",
  '"dq"',
  '$(touch MARKER)',
  '`touch MARKER`',
  'line1\nline2',
  '',
  '*',
  '\\',
  ';exit 3',
  '-n',
  'é ünï 🙂',
  "'",
  "a'\"'b",
  '$HOME',
  '%s',
];

describe('parseSshTarget and quoting', () => {
  it('reads [USER@]HOST, IPv6 in brackets, and the local user by default', () => {
    expect(parseSshTarget('root@node1.example')).toEqual({ user: 'root', host: 'node1.example', port: 22 });
    expect(parseSshTarget('admin@[fd00::1]', 2222)).toEqual({ user: 'admin', host: 'fd00::1', port: 2222 });
    expect(parseSshTarget('10.0.0.5')).toEqual({ user: os.userInfo().username, host: '10.0.0.5', port: 22 });
    expect(parseSshTarget('::1').host).toBe('::1');
  });

  it.each(['', '@host', 'root@', 'ro ot@host', 'root@ho st', 'root@-oProxyCommand=x', '[notv6]', 'root@host;id', 'a@b@'])(
    'refuses %j',
    (t) => {
      expect(() => parseSshTarget(t)).toThrow(SshRefused);
      try {
        parseSshTarget(t);
      } catch (err) {
        expect((err as SshRefused).reason).toBe('target');
      }
    },
  );

  it('refuses a bad port', () => {
    expect(() => parseSshTarget('host', 0)).toThrow(/port 0/);
    expect(() => parseSshTarget('host', 70000)).toThrow(SshRefused);
  });

  it('quotes every argument for a POSIX shell and puts sudo -n before a non-root command', () => {
    const line = remoteCommand(['printf', '%s\\0', ...NASTY], 'root');
    const out = execFileSync('sh', ['-c', line], { cwd: os.tmpdir() });
    expect(out.toString().split('\0').slice(0, -1)).toEqual(NASTY);
    expect(remoteCommand(['id'], 'admin')).toBe(`'sudo' '-n' '--' 'id'`);
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
    expect(() => remoteCommand([], 'root')).toThrow(/no command/);
  });
});

/** Waits (bounded) until something listens on the port. */
async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

interface Sshd {
  readonly port: number;
  readonly log: string;
  readonly hostPub: string;
  readonly proc: ChildProcess;
}

describe.skipIf(missing !== '')('openSsh against a real sshd', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ssh-'));
  const daemons: Sshd[] = [];
  const agents: ChildProcess[] = [];
  const keygen = (file: string, type: string) => {
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', `${type}@test`, '-f', file]);
    return file;
  };
  const fp = (pub: string) => execFileSync('ssh-keygen', ['-lf', pub]).toString().split(' ')[1];
  const ed = keygen(path.join(dir, 'op_ed25519'), 'ed25519');
  const rsa = keygen(path.join(dir, 'op_rsa'), 'rsa');
  const stranger = keygen(path.join(dir, 'stranger'), 'ed25519');
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(`${ed}.pub`, 'utf8') + readFileSync(`${rsa}.pub`, 'utf8'));

  /** Starts sshd with the base config plus `extra`, its own host key, logging at DEBUG. */
  const startSshd = async (name: string, extra: string[] = []): Promise<Sshd> => {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
    const hostKey = keygen(path.join(dir, `${name}_host`), 'ed25519');
    const port = await freePort();
    const cfg = path.join(dir, `${name}.conf`);
    const settings = [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, `PidFile ${dir}/${name}.pid`];
    settings.push(`AuthorizedKeysFile ${dir}/authorized_keys`, 'UsePAM no', 'StrictModes no', 'LogLevel DEBUG', ...extra);
    if (!extra.some((l) => l.startsWith('PermitRootLogin')))
      settings.push('PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no');
    writeFileSync(cfg, settings.join('\n') + '\n');
    const log = path.join(dir, `${name}.log`);
    // -E, not -e: with -e the session's own debug lines would reach the client's stderr.
    const proc = spawn(SSHD, ['-f', cfg, '-D', '-E', log], { stdio: 'ignore' });
    const d = { port, log, hostPub: `${hostKey}.pub`, proc };
    daemons.push(d);
    await waitListening(port);
    return d;
  };

  /** A fresh home (no keys, no known_hosts) and options that use it and no agent. */
  let homes = 0;
  const freshHome = (keys: string[] = []): SshOptions & { home: string; knownHosts: string; globalKnownHosts: string } => {
    const home = path.join(dir, `home${++homes}`);
    mkdirSync(path.join(home, '.ssh'), { recursive: true });
    for (const k of keys) copyFileSync(k, path.join(home, '.ssh', k === rsa ? 'id_rsa' : 'id_ed25519'));
    // A system-wide known_hosts of the test's own: the machine's /etc/ssh one must not count.
    return {
      home,
      knownHosts: path.join(home, '.ssh', 'known_hosts'),
      globalKnownHosts: path.join(home, 'ssh_known_hosts'),
      agentSocket: '',
    };
  };
  const refusal = async (target: SshTarget, opts: SshOptions): Promise<SshRefused> => {
    const err: unknown = await openSsh(target, opts).then(
      (h) => (void h.close(), new Error('connected')),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SshRefused);
    return err as SshRefused;
  };
  /** sshd's log since `from`, once it logged the connection's end (it writes its last lines as it closes). */
  const logSince = async (d: Sshd, from: number) => {
    const ended = /Connection closed|Disconnected from|Connection reset|Received disconnect|Close session/;
    for (let i = 0; i < 60 && !ended.test(readFileSync(d.log, 'utf8').slice(from)); i++) await new Promise((r) => setTimeout(r, 50));
    return readFileSync(d.log, 'utf8').slice(from);
  };

  let main: Sshd;
  let target: SshTarget;
  /** A home with the ed25519 key whose known_hosts already has the host (by accept-new). */
  let known: ReturnType<typeof freshHome>;
  beforeAll(async () => {
    main = await startSshd('main');
    target = parseSshTarget('root@127.0.0.1', main.port);
  });
  afterAll(() => {
    for (const p of [...daemons.map((d) => d.proc), ...agents]) if (p.pid) process.kill(p.pid, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unknown host with its fingerprint, then accept-new records it and the next connect needs no flag', async () => {
    known = freshHome([ed]);
    const err = await refusal(target, known);
    expect(err.reason).toBe('host-key-unknown');
    expect(err.fingerprint).toBe(fp(main.hostPub));
    expect(err.message).toContain(err.fingerprint);
    expect(err.message).toMatch(/--accept-new.*ssh-keyscan -p \d+ 127\.0\.0\.1/);
    expect(existsSync(known.knownHosts)).toBe(false);

    const h = await openSsh(target, { ...known, acceptNew: true });
    expect(h.hostKeyFingerprint).toBe(fp(main.hostPub));
    expect(h.auth).toBe(`key ${path.join(known.home, '.ssh', 'id_ed25519')}`);
    await h.close();
    const hostKey = readFileSync(main.hostPub, 'utf8').split(' ').slice(0, 2).join(' ');
    expect(readFileSync(known.knownHosts, 'utf8')).toBe(`[127.0.0.1]:${main.port} ${hostKey}\n`);
    expect(statSync(known.knownHosts).mode & 0o777).toBe(0o600);

    const again = await openSsh(target, known);
    expect((await again.exec(['true'])).code).toBe(0);
    await again.close();
  });

  it('creates ~/.ssh 0700 for accept-new when it does not exist', async () => {
    const home = path.join(dir, 'bare-home');
    mkdirSync(home);
    const h = await openSsh(target, { home, identity: ed, agentSocket: '', acceptNew: true });
    await h.close();
    expect(statSync(path.join(home, '.ssh')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(home, '.ssh', 'known_hosts')).mode & 0o777).toBe(0o600);
  });

  it('runs hostile argv exactly, with stdin, exit codes, stderr and signals', async () => {
    const h = await openSsh(target, known);
    try {
      const cwd = await h.exec(['mktemp', '-d']);
      const tmp = cwd.stdout.trim();
      const r = await h.exec(['sh', '-c', 'cd "$1" && shift && printf "%s\\0" "$@"', 'sh', tmp, ...NASTY]);
      expect(r.code).toBe(0);
      expect(r.stdout.split('\0').slice(0, -1)).toEqual(NASTY);
      expect(readdirSync(tmp)).toEqual([]); // no $(touch …) ran
      rmSync(tmp, { recursive: true });

      expect((await h.exec(['cat'], { stdin: 'line 1\nünï\n' })).stdout).toBe('line 1\nünï\n');
      const bytes = randomBytes(100_000);
      const sum = await h.exec(['sha256sum'], { stdin: bytes });
      expect(sum.stdout.split(' ')[0]).toBe(createHash('sha256').update(bytes).digest('hex'));

      const fail = await h.exec(['sh', '-c', 'echo oops >&2; exit 7']);
      expect([fail.code, fail.stderr, fail.stdout]).toEqual([7, 'oops\n', '']);
      expect((await h.exec(['sh', '-c', 'kill -TERM $$'])).code).toBe(143);
      expect((await h.exec(['no-such-command-here'])).code).toBe(127);
      await expect(h.exec(['sleep', '5'], { timeoutMs: 300 })).rejects.toThrow(/timed out/);
      expect(r.ms).toBeGreaterThanOrEqual(0);
    } finally {
      await h.close();
    }
  });

  it('authenticates with an RSA key given as --identity', async () => {
    const h = await openSsh(target, { ...freshHome(), knownHosts: known.knownHosts, identity: rsa });
    expect(h.auth).toBe(`identity ${rsa}`);
    expect((await h.exec(['id', '-un'])).stdout).toBe('root\n');
    await h.close();
  });

  it('authenticates through a real ssh-agent before any key file', async () => {
    const sock = path.join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    agents.push(agent);
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync('ssh-add', ['-q', rsa], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'pipe' });
    const h = await openSsh(target, { ...freshHome([ed]), knownHosts: known.knownHosts, agentSocket: sock });
    expect(h.auth).toBe('agent');
    expect((await h.exec(['echo', 'via agent'])).stdout).toBe('via agent\n');
    await h.close();
  });

  it('accepts a hashed known_hosts entry (ssh-keygen -H)', async () => {
    const opts = freshHome([ed]);
    copyFileSync(known.knownHosts, opts.knownHosts);
    execFileSync('ssh-keygen', ['-H', '-f', opts.knownHosts], { stdio: 'ignore' });
    expect(readFileSync(opts.knownHosts, 'utf8')).toMatch(/^\|1\|/);
    const h = await openSsh(target, opts);
    expect(h.hostKeyFingerprint).toBe(fp(main.hostPub));
    await h.close();
  });

  it('refuses a changed host key before offering any key, naming both fingerprints and the line', async () => {
    const opts = freshHome([ed]);
    const other = readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(opts.knownHosts, `# comment\n[127.0.0.1]:${main.port} ${other}\n`);
    const from = readFileSync(main.log, 'utf8').length;
    const err = await refusal(target, opts);
    expect(err.reason).toBe('host-key-mismatch');
    expect(err.message).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    expect(err.message).toContain(fp(main.hostPub));
    expect(err.message).toContain(`${opts.knownHosts}:2 (ssh-ed25519 ${fp(`${stranger}.pub`)})`);
    const log = await logSince(main, from);
    expect(log).toMatch(/Connection from 127\.0\.0\.1/);
    expect(log).not.toMatch(/userauth-request|Accepted publickey|session_new/);
  });

  it('looks the host up in lower case, as OpenSSH does: LOCALHOST does not slip past a hashed localhost entry', async () => {
    const opts = freshHome([ed]);
    const other = readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(opts.knownHosts, `[localhost]:${main.port} ${other}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', opts.knownHosts], { stdio: 'ignore' });
    const upper = parseSshTarget('root@LOCALHOST', main.port);
    expect(upper.host).toBe('localhost');
    expect((await refusal(upper, { ...opts, acceptNew: true })).reason).toBe('host-key-mismatch');
    expect(readFileSync(opts.knownHosts, 'utf8').trim().split('\n')).toHaveLength(1); // nothing appended
  });

  it("trusts a key in the system-wide known_hosts without writing the operator's file", async () => {
    const opts = freshHome([ed]);
    writeFileSync(opts.globalKnownHosts, readFileSync(known.knownHosts));
    const h = await openSsh(target, opts);
    await h.close();
    expect(existsSync(opts.knownHosts)).toBe(false);
    const other = readFileSync(`${stranger}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(opts.globalKnownHosts, `[127.0.0.1]:${main.port} ${other}\n`);
    const err = await refusal(target, { ...opts, acceptNew: true });
    expect(err.reason).toBe('host-key-mismatch');
    expect(err.message).toContain(`${opts.globalKnownHosts}:1`);
  });

  it('appends to a symlinked known_hosts through the link, keeping it a link', async () => {
    const opts = freshHome([ed]);
    const real = path.join(opts.home, 'real_known_hosts');
    writeFileSync(real, '# kept\n', { mode: 0o640 });
    symlinkSync(real, opts.knownHosts);
    const h = await openSsh(target, { ...opts, acceptNew: true });
    await h.close();
    expect(lstatSync(opts.knownHosts).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toMatch(new RegExp(`^# kept\\n\\[127\\.0\\.0\\.1\\]:${main.port} ssh-ed25519 `));
    expect(statSync(real).mode & 0o777).toBe(0o640);
  });

  it('refuses a host key marked @revoked', async () => {
    const opts = freshHome([ed]);
    const key = readFileSync(main.hostPub, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(opts.knownHosts, `[127.0.0.1]:${main.port} ${key}\n@revoked * ${key}\n`);
    const err = await refusal(target, opts);
    expect(err.reason).toBe('host-key-mismatch');
    expect(err.message).toMatch(/@revoked \(.*known_hosts:2\)/);
  });

  it('refuses a server that takes only passwords, without ever sending one', async () => {
    const pw = await startSshd('pwonly', [
      'PubkeyAuthentication no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication yes',
      'PermitRootLogin yes',
    ]);
    const t = parseSshTarget('root@127.0.0.1', pw.port);
    const opts = { ...freshHome([ed]), acceptNew: true, identity: rsa };
    const err = await refusal(t, opts);
    expect(err.reason).toBe('auth');
    expect(err.message).toContain('mammatus never sends passwords');
    expect(err.message).toContain(fp(`${ed}.pub`));
    expect(err.message).toContain(fp(`${rsa}.pub`));
    expect(err.message).toMatch(/accepts: .*password/);
    expect(err.message).not.toMatch(/PRIVATE KEY|AAAA/);
    const log = await logSince(pw, 0);
    expect(log).toMatch(/method publickey/);
    expect(log).not.toMatch(/method (password|keyboard-interactive|none)/);
  });

  it('refuses with auth when the server takes keys but none of ours, naming the key offered', async () => {
    const opts = { ...freshHome(), knownHosts: known.knownHosts, identity: stranger };
    const err = await refusal(target, opts);
    expect(err.reason).toBe('auth');
    expect(err.message).toContain(`ssh-ed25519 ${fp(`${stranger}.pub`)} ed25519@test (identity ${stranger})`);
    expect(err.message).toMatch(/accepts: publickey/);
    expect(err.fingerprint).toBe(fp(main.hostPub));
  });

  it('rejects a command after close instead of hanging', async () => {
    const h = await openSsh(target, known);
    await h.close();
    await expect(h.exec(['true'])).rejects.toThrow();
  });

  it('refuses with no-key when there is no agent and no key file, and connect for a closed port', async () => {
    expect((await refusal(target, freshHome())).reason).toBe('no-key');
    const enc = path.join(dir, 'encrypted');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
    const err = await refusal(target, { ...freshHome(), identity: enc });
    expect([err.reason, err.message]).toEqual(['no-key', expect.stringMatching(/passphrase-protected: load it into your ssh-agent/)]);
    const closed = parseSshTarget('root@127.0.0.1', await freePort());
    expect((await refusal(closed, { ...freshHome([ed]), connectTimeoutMs: 3000 })).reason).toBe('connect');
  });

  it('writes a file atomically with its mode, and copies megabytes byte for byte', async () => {
    const h = await openSsh(target, known);
    try {
      const out = path.join(dir, 'remote');
      mkdirSync(out);
      const file = path.join(out, 'config.json');
      writeFileSync(file, 'old');
      linkSync(file, path.join(out, 'old-link')); // the old inode keeps its content: replaced by rename
      await h.writeFile(file, '{"new": "content \'with\' $(quotes)"}\n', 0o640);
      expect(readFileSync(file, 'utf8')).toBe('{"new": "content \'with\' $(quotes)"}\n');
      expect(statSync(file).mode & 0o7777).toBe(0o640);
      expect(readFileSync(path.join(out, 'old-link'), 'utf8')).toBe('old');
      expect(readdirSync(out).sort()).toEqual(['config.json', 'old-link']);

      const big = path.join(dir, 'big.deb');
      writeFileSync(big, randomBytes(3 * 1024 * 1024 + 17));
      await h.copyFile(big, path.join(out, 'pkg.deb'), 0o644);
      expect(readFileSync(path.join(out, 'pkg.deb')).equals(readFileSync(big))).toBe(true);
      expect(statSync(path.join(out, 'pkg.deb')).mode & 0o7777).toBe(0o644);

      await h.writeFile(path.join(out, 'bin'), Buffer.from([0, 1, 2, 255]), 0o600);
      expect([...readFileSync(path.join(out, 'bin'))]).toEqual([0, 1, 2, 255]);
      await expect(h.writeFile(path.join(out, 'no-dir', 'x'), 'x', 0o644)).rejects.toThrow(/writing .* failed/);
      await expect(h.writeFile('relative', 'x', 0o644)).rejects.toThrow(/absolute/);
      await expect(h.copyFile(path.join(dir, 'absent'), path.join(out, 'y'), 0o644)).rejects.toThrow(/ENOENT/);
      expect(readdirSync(out).sort()).toEqual(['bin', 'config.json', 'old-link', 'pkg.deb']);
    } finally {
      await h.close();
    }
  });
});
