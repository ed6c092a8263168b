/**
 * The node bootstrap user-data: golden output, input errors, and the checks of the tools that read
 * it — cloud-init 22.4's schema and YAML loader, and serf's own config decoder.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { SettingsError } from '../../../core/validation.js';
import { renderNodeBootstrap, type NodeBootstrapInput } from '../../../src/metadata/node-bootstrap.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'node-bootstrap');
const EXAMPLE_FILE = join(import.meta.dirname, '..', '..', '..', 'cloud-init', 'node', 'user-data.example.yaml');
const PYTHON = '/usr/bin/python3';
const hasCloudInit =
  spawnSync(PYTHON, ['-c', 'import cloudinit'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('cloud-init', ['--version'], { stdio: 'ignore' }).status === 0;
const NO_CLOUD_INIT = 'cloud-init is not installed, or /usr/bin/python3 cannot import cloudinit (apt-get install cloud-init)';
const hasKeyTools =
  spawnSync('gpg', ['--version'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0 &&
  (spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0 ||
    spawnSync('wget', ['--version'], { stdio: 'ignore' }).status === 0);
const hasSerf = spawnSync('serf', ['version'], { stdio: 'ignore' }).status === 0;

// A key whose bytes read "replace-with-serf-keygen-output!": valid, and obviously a placeholder.
const EXAMPLE_KEY = Buffer.from('replace-with-serf-keygen-output!').toString('base64');
const ARMORED =
  '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n(the cluster key: mammatus-archive-keyring.asc from scripts/repo-build.sh)\n-----END PGP PUBLIC KEY BLOCK-----\n';

/** The input behind cloud-init/node/user-data.example.yaml. */
const EXAMPLE: NodeBootstrapInput = {
  hostname: 'compute-1',
  roles: ['compute', 'storage'],
  gossipKey: EXAMPLE_KEY,
  join: ['10.0.0.2', '10.0.0.3'],
  aptRepoUrl: 'http://10.0.0.1/apt/',
  aptKeyArmored: ARMORED,
};

const KEY_URL: NodeBootstrapInput = {
  roles: [],
  gossipKey: Buffer.alloc(16, 3).toString('base64'),
  join: [],
  aptRepoUrl: 'http://10.0.0.1/apt/',
  aptKeyUrl: 'http://10.0.0.1/apt/mammatus-archive-keyring.gpg',
  aptKeyFingerprint: '0123 4567 89AB CDEF 0123  4567 89ab cdef 0123 4567',
  snapshotPath: '/var/lib/serf/cluster.snapshot',
  rpcAuth: 'rpc-secret-of-the-cluster',
};

/** Join mode: a planned host with its one-time secret, installing itself to disk. */
const JOINING: NodeBootstrapInput = {
  hostname: 'metal-1',
  roles: ['compute'],
  aptRepoUrl: 'http://10.88.0.1:8777/apt/',
  aptKeyUrl: 'http://10.88.0.1:8777/apt/mammatus-archive-keyring.gpg',
  aptKeyFingerprint: '0123456789ABCDEF0123456789ABCDEF01234567',
  hostJoin: { secret: 'A'.repeat(43), installDisk: '/dev/vda' },
};

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mammatus-nb-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface WriteFile {
  path: string;
  content: string;
  permissions: string;
}

describe('renderNodeBootstrap', () => {
  it('renders the example in cloud-init/node/ (golden)', async () => {
    await expect(renderNodeBootstrap(EXAMPLE)).toMatchFileSnapshot(EXAMPLE_FILE);
  });

  it('renders a key fetched by URL, RPC auth and no hostname (golden)', async () => {
    await expect(renderNodeBootstrap(KEY_URL)).toMatchFileSnapshot(join(GOLDEN, 'key-url.yaml'));
  });

  it('writes the repository, serf config, role tag and starts both services', () => {
    const text = renderNodeBootstrap(EXAMPLE);
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    const doc = parse(text) as { hostname: string; write_files: WriteFile[]; packages: string[]; runcmd: string[][] };
    const files = new Map(doc.write_files.map((f) => [f.path, f]));
    expect(files.get('/etc/apt/sources.list.d/mammatus.sources')?.content).toBe(
      'Types: deb\nURIs: http://10.0.0.1/apt/\nSuites: ./\nSigned-By: /etc/apt/keyrings/mammatus.asc\n',
    );
    expect(files.get('/etc/apt/keyrings/mammatus.asc')?.content).toBe(ARMORED);
    const serf = files.get('/etc/serf/mammatus.json');
    expect(serf?.permissions).toBe('0600');
    expect(JSON.parse(serf?.content ?? '')).toEqual({
      encrypt_key: EXAMPLE_KEY,
      node_name: 'compute-1',
      retry_join: ['10.0.0.2', '10.0.0.3'],
      snapshot_path: '/var/lib/serf/snapshot',
      tags_file: '/var/lib/serf/tags.json',
    });
    expect(JSON.parse(files.get('/var/lib/serf/tags.json')?.content ?? '')).toEqual({ role: 'compute,storage' });
    expect(doc.packages).toEqual(['serf', 'mammatus-agent']);
    expect(doc.runcmd).toEqual([
      ['systemctl', 'enable', 'serf.service', 'mammatus-agent.service'],
      ['systemctl', '--no-block', 'restart', 'serf.service', 'mammatus-agent.service'],
    ]);
  });

  it('keeps odd but valid values intact through YAML', () => {
    const rpcAuth = `a'b"c:#{x}[y],&*!|>%@\`z`;
    const doc = parse(renderNodeBootstrap({ ...KEY_URL, rpcAuth })) as { write_files: WriteFile[] };
    const agent = doc.write_files.find((f) => f.path === '/etc/mammatus/agent.d/10-bootstrap.yaml');
    expect(parse(agent?.content ?? '')).toEqual({ serf: { rpc_auth: rpcAuth } });
  });

  it.each([
    [{ roles: ['compute', 'web'] }, 'roles.1: unknown role (known: gateway, compute, storage, controller)'],
    [{ gossipKey: 'c2VjcmV0' }, 'gossipKey: must be base64 of 16, 24 or 32 bytes'],
    [{ hostname: 'web_1' }, 'hostname: must be a DNS label'],
    [{ join: ['10.0.0.2', 'a b'] }, 'join.1: must be host or host:port'],
    [{ aptRepoUrl: 'ftp://10.0.0.1/apt/' }, 'aptRepoUrl: must be an http:// or https:// URL'],
    [{ aptKeyUrl: 'http://10.0.0.1/k.asc' }, 'aptKeyArmored: give aptKeyArmored or aptKeyUrl (one of them)'],
    [{ aptKeyArmored: undefined }, 'aptKeyArmored: give aptKeyArmored or aptKeyUrl (one of them)'],
    [{ aptKeyArmored: 'ssh-ed25519 AAAA' }, 'aptKeyArmored: must be an ASCII-armoured PGP public key block'],
    [{ aptKeyFingerprint: 'ABCD' }, 'aptKeyFingerprint: only goes with aptKeyUrl'],
    [
      { aptKeyArmored: undefined, aptKeyUrl: 'http://10.0.0.1/apt/k.gpg' },
      'aptKeyUrl: a plain http:// key URL needs aptKeyFingerprint (or use https://, or aptKeyArmored)',
    ],
    [
      { aptKeyArmored: undefined, aptKeyUrl: 'http://10.0.0.1/apt/k.gpg', aptKeyFingerprint: 'ABCD' },
      'aptKeyFingerprint: must be the key fingerprint: 40 (or 64) hex digits, as gpg prints it',
    ],
    [{ snapshotPath: 'serf.snapshot' }, 'snapshotPath: must be an absolute path'],
    [{ gossipKey: undefined }, 'gossipKey: is required (or hostJoin, the join mode of a planned host)'],
    [{ hostJoin: {} }, "gossipKey: not in join mode: mammatus node join writes Serf's config"],
    [{ rpcAuth: 'two words' }, 'rpcAuth: must be printable ASCII without spaces'],
  ] as [Partial<NodeBootstrapInput>, string][])('refuses %j', (patch, message) => {
    expect(() => renderNodeBootstrap({ ...EXAMPLE, ...patch })).toThrow(SettingsError);
    expect(() => renderNodeBootstrap({ ...EXAMPLE, ...patch })).toThrow(message);
  });

  it.each([
    [{ hostJoin: { secret: 'short' } }, 'hostJoin.secret: must be a join secret (43 base64url characters)'],
    [{ hostJoin: { installDisk: '/dev/sda1; reboot' } }, 'hostJoin.installDisk: must be a whole disk such as /dev/sda'],
    [{ join: ['10.0.0.2'] }, "join: not in join mode: mammatus node join writes Serf's config"],
    [{ rpcAuth: 'x' }, "rpcAuth: not in join mode: mammatus node join writes Serf's config"],
  ] as [Partial<NodeBootstrapInput>, string][])('join mode refuses %j', (patch, message) => {
    expect(() => renderNodeBootstrap({ ...JOINING, ...patch })).toThrow(message);
  });

  it('join mode: no gossip key and no Serf config; the secret 0600 under /run; join, restart, install in that order', () => {
    const doc = parse(renderNodeBootstrap(JOINING)) as { write_files: WriteFile[]; runcmd: unknown[]; packages: string[] };
    const paths = doc.write_files.map((f) => f.path);
    expect(paths).not.toContain('/etc/serf/mammatus.json');
    expect(doc.write_files.find((f) => f.path === '/run/mammatus-join-secret')).toMatchObject({
      permissions: '0600',
      content: `${'A'.repeat(43)}\n`,
    });
    expect(doc.write_files.find((f) => f.path === '/var/lib/serf/tags.json')?.content).toBe('{"role":"compute"}\n');
    expect(doc.packages).toEqual(['serf', 'mammatus-agent']);
    expect(doc.runcmd).toEqual([
      'mammatus node join --secret-file /run/mammatus-join-secret || exit 1',
      ['systemctl', '--no-block', 'restart', 'serf.service', 'mammatus-agent.service'],
      ['systemctl', 'enable', '--no-reload', 'serf.service', 'mammatus-agent.service'],
      ['mammatus-install-to-disk', '/dev/vda'],
    ]);
    // Without a secret: nothing to join with, so no join and no install either.
    const none = parse(renderNodeBootstrap({ ...JOINING, hostJoin: { installDisk: '/dev/vda' } })) as typeof doc;
    expect(none.write_files.map((f) => f.path)).not.toContain('/run/mammatus-join-secret');
    expect(JSON.stringify(none.runcmd)).not.toMatch(/join|install/);
  });
});

describe('the key fetched at first boot', () => {
  const bootcmd = (input: NodeBootstrapInput): string[] => (parse(renderNodeBootstrap(input)) as { bootcmd: string[][] }).bootcmd[0];

  it('takes an https:// key URL without a fingerprint (no check arguments), and refuses redirects to http', () => {
    const argv = bootcmd({ ...KEY_URL, aptKeyUrl: 'https://10.0.0.1/apt/k.asc', aptKeyFingerprint: undefined });
    expect(argv.slice(0, 5)).toEqual(['cloud-init-per', 'instance', 'mammatus-apt-key', 'sh', '-c']);
    expect(argv.slice(6)).toEqual(['sh', 'https://10.0.0.1/apt/k.asc', '/etc/apt/keyrings/mammatus.asc']);
    expect(argv[5]).toContain('--proto =https --proto-redir =https');
  });

  it('pins an http:// key to its fingerprint, written without spaces in upper case', () => {
    const argv = bootcmd(KEY_URL);
    expect(argv.slice(6, 10)).toEqual([
      'sh',
      'http://10.0.0.1/apt/mammatus-archive-keyring.gpg',
      '/etc/apt/keyrings/mammatus.gpg',
      '0123456789ABCDEF0123456789ABCDEF01234567',
    ]);
    expect(argv[10]).toContain('hashlib');
  });
});

describe.skipIf(!hasKeyTools)(
  `the rendered bootcmd against a real key on loopback${hasKeyTools ? '' : ' (skipped: needs gpg, python3 and curl or wget)'}`,
  () => {
    let home = '';
    let served = '';
    let server: Server | undefined;
    const keys: Record<string, { fpr: string }> = {};

    beforeAll(async () => {
      home = mkdtempSync(join(tmpdir(), 'mammatus-nb-gpg-'));
      served = join(home, 'www');
      mkdirSync(served);
      const gpg = (...args: string[]) => execFileSync('gpg', ['--homedir', home, '--batch', ...args], { stdio: 'pipe' });
      for (const name of ['cluster', 'intruder']) {
        gpg('--passphrase', '', '--quick-gen-key', `Mammatus ${name}`, 'ed25519', 'sign', '2y');
        const colons = gpg('--with-colons', '--list-keys', `Mammatus ${name}`).toString('utf8');
        keys[name] = { fpr: /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1] };
        writeFileSync(join(served, `${name}.gpg`), gpg('--export', keys[name].fpr));
        writeFileSync(join(served, `${name}.asc`), gpg('--armor', '--export', keys[name].fpr));
      }
      writeFileSync(join(served, 'both.gpg'), gpg('--export', keys.cluster.fpr, keys.intruder.fpr));
      server = createServer((req, res) => {
        try {
          res.end(readFileSync(join(served, basename(req.url ?? '/'))));
        } catch {
          res.writeHead(404).end();
        }
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    }, 30_000);

    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      if (home) {
        // gpg started an agent for this home: stop that one (gpgconf addresses it by its socket).
        spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
        rmSync(home, { recursive: true, force: true });
      }
    });

    /** Runs the host's part of the rendered bootcmd (after cloud-init-per), fetching `file` into a temp keyring. */
    const fetchKey = (file: string, fingerprint: string | undefined, keyring: string) => {
      const port = (server!.address() as AddressInfo).port;
      const argv = (
        parse(renderNodeBootstrap({ ...KEY_URL, aptKeyUrl: `http://127.0.0.1:${port}/${file}`, aptKeyFingerprint: fingerprint })) as {
          bootcmd: string[][];
        }
      ).bootcmd[0].slice(3);
      // A pinned key is always installed in binary form, as mammatus.gpg.
      argv[argv.indexOf(fingerprint ? '/etc/apt/keyrings/mammatus.gpg' : '/etc/apt/keyrings/mammatus.asc')] = keyring;
      // Asynchronously: the key server runs in this process's event loop.
      return new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        child.on('close', (status) => resolve({ status, stderr }));
      });
    };

    it.each(['cluster.gpg', 'cluster.asc'])('installs %s when its fingerprint is the pinned one', async (file) => {
      const keyring = join(tempDir(), 'keyrings', 'mammatus.key');
      const r = await fetchKey(file, keys.cluster.fpr.replace(/(.{4})/g, '$1 '), keyring);
      expect(r.status, r.stderr).toBe(0);
      // What apt gets is the binary key the check parsed, whichever form was downloaded.
      expect(readFileSync(keyring).equals(readFileSync(join(served, 'cluster.gpg')))).toBe(true);
      expect(existsSync(`${keyring}.part`)).toBe(false);
    });

    it.each([
      ['another key', 'intruder.gpg', 'is not the pinned'],
      ['another armoured key', 'intruder.asc', 'is not the pinned'],
      ['the pinned key with another beside it', 'both.gpg', 'holds 2 primary keys, expected exactly one'],
    ])('refuses %s and leaves no keyring behind', async (_what, file, why) => {
      const keyring = join(tempDir(), 'mammatus.gpg');
      const r = await fetchKey(file, keys.cluster.fpr, keyring);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`mammatus: apt key refused: `);
      expect(r.stderr).toContain(why);
      expect(existsSync(keyring)).toBe(false);
      expect(existsSync(`${keyring}.part`)).toBe(false);
    });

    it.each([
      [
        "an attacker's binary key carrying the pinned key's armour inside a packet",
        () => {
          const armour = readFileSync(join(served, 'cluster.asc'));
          // A user-id packet (tag 13, new format, 2-byte length) holding the armour text, after the intruder's key.
          const packet = Buffer.concat([Buffer.from([0xcd, 192 + ((armour.length - 192) >> 8), (armour.length - 192) & 0xff]), armour]);
          return Buffer.concat([readFileSync(join(served, 'intruder.gpg')), packet]);
        },
        'an armoured key must be the whole file',
      ],
      [
        'the pinned armoured block followed by another',
        () => Buffer.concat([readFileSync(join(served, 'cluster.asc')), readFileSync(join(served, 'intruder.asc'))]),
        'exactly one key block',
      ],
      [
        'bytes after the armoured block',
        () => Buffer.concat([readFileSync(join(served, 'cluster.asc')), Buffer.from('trailing')]),
        'bytes after the armoured key block',
      ],
    ])('refuses %s', async (_what, make, why) => {
      writeFileSync(join(served, 'crafted.gpg'), make());
      const keyring = join(tempDir(), 'mammatus.gpg');
      const r = await fetchKey('crafted.gpg', keys.cluster.fpr, keyring);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(why);
      expect(existsSync(keyring)).toBe(false);
    });

    it('refuses a file that is no key at all', async () => {
      writeFileSync(join(served, 'page.html'), '<html>captive portal</html>\n');
      const keyring = join(tempDir(), 'mammatus.gpg');
      const r = await fetchKey('page.html', keys.cluster.fpr, keyring);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('mammatus: apt key refused: not an OpenPGP key');
      expect(existsSync(keyring)).toBe(false);
    });
  },
);

describe.skipIf(!hasCloudInit)(`cloud-init 22.4${hasCloudInit ? '' : ` (skipped: ${NO_CLOUD_INIT})`}`, () => {
  it.each([
    ['the example', EXAMPLE],
    ['a key by URL', KEY_URL],
    ['join mode', JOINING],
  ])('`cloud-init schema -c` accepts %s', (_what, input) => {
    const file = join(tempDir(), 'user-data');
    writeFileSync(file, renderNodeBootstrap(input));
    const out = execFileSync('cloud-init', ['schema', '-c', file], { encoding: 'utf8' });
    expect(out).toContain('Valid cloud-config');
  });

  it("cloud-init's YAML loader reads the same document as ours", () => {
    for (const input of [EXAMPLE, KEY_URL, JOINING]) {
      const text = renderNodeBootstrap(input);
      const theirs = execFileSync(
        PYTHON,
        ['-c', 'import json,sys; from cloudinit import util; print(json.dumps(util.load_yaml(sys.stdin.read())))'],
        { input: text },
      );
      expect(JSON.parse(theirs.toString('utf8'))).toEqual(parse(text));
    }
  });
});

describe.skipIf(!hasSerf)(`serf${hasSerf ? '' : ' (skipped: serf is not installed)'}`, () => {
  it('starts with the rendered config (serf refuses unknown keys)', async () => {
    const dir = tempDir();
    const doc = parse(renderNodeBootstrap(KEY_URL)) as { write_files: WriteFile[] };
    const config = JSON.parse(doc.write_files.find((f) => f.path === '/etc/serf/mammatus.json')?.content ?? '') as Record<string, unknown>;
    // Only the two paths move into the temporary directory; every key stays as rendered.
    writeFileSync(join(dir, 'tags.json'), '{"role":"compute"}\n');
    writeFileSync(
      join(dir, 'serf.json'),
      JSON.stringify({ ...config, snapshot_path: join(dir, 'snapshot'), tags_file: join(dir, 'tags.json') }),
    );
    const child = spawn('serf', ['agent', `-config-file=${join(dir, 'serf.json')}`, '-bind=127.0.0.1:0', '-rpc-addr=127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    const output = await new Promise<string>((resolve) => {
      let text = '';
      const timer = setTimeout(() => resolve(text), 8000);
      const take = (chunk: Buffer): void => {
        text += chunk.toString('utf8');
        if (/Log data will now stream|Error/.test(text)) {
          clearTimeout(timer);
          resolve(text);
        }
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.on('exit', () => resolve(text));
    });
    expect(output).toContain('Serf agent running!');
    expect(output).toContain('Encrypted: true');
  });
});
