/**
 * The node bootstrap user-data: golden output, input errors, and the checks of the tools that read
 * it — cloud-init 22.4's schema and YAML loader, and serf's own config decoder.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
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
  snapshotPath: '/var/lib/serf/cluster.snapshot',
  rpcAuth: 'rpc-secret-of-the-cluster',
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
    [{ snapshotPath: 'serf.snapshot' }, 'snapshotPath: must be an absolute path'],
    [{ rpcAuth: 'two words' }, 'rpcAuth: must be printable ASCII without spaces'],
  ] as [Partial<NodeBootstrapInput>, string][])('refuses %j', (patch, message) => {
    expect(() => renderNodeBootstrap({ ...EXAMPLE, ...patch })).toThrow(SettingsError);
    expect(() => renderNodeBootstrap({ ...EXAMPLE, ...patch })).toThrow(message);
  });
});

describe.skipIf(!hasCloudInit)(`cloud-init 22.4${hasCloudInit ? '' : ` (skipped: ${NO_CLOUD_INIT})`}`, () => {
  it.each([
    ['the example', EXAMPLE],
    ['a key by URL', KEY_URL],
  ])('`cloud-init schema -c` accepts %s', (_what, input) => {
    const file = join(tempDir(), 'user-data');
    writeFileSync(file, renderNodeBootstrap(input));
    const out = execFileSync('cloud-init', ['schema', '-c', file], { encoding: 'utf8' });
    expect(out).toContain('Valid cloud-config');
  });

  it("cloud-init's YAML loader reads the same document as ours", () => {
    for (const input of [EXAMPLE, KEY_URL]) {
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
