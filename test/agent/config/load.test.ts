import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, mergeConfig, validateConfig, watchedFiles, type LoadConfigOptions } from '../../../agent/config/load.js';
import { DEFAULT_CONFIG } from '../../../agent/config/schema.js';
import { isHostPort } from '../../../core/net.js';
import { SettingsError } from '../../../core/validation.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mammatus-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Writes `content` to `dir/rel` (mode 0600 unless given: some hold secrets), creating parent
 * directories; returns the absolute path.
 */
async function put(rel: string, content: string, mode = 0o600): Promise<string> {
  const file = path.join(dir, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  // chmod, not writeFile's mode: that one is filtered by the umask and ignored for an existing file.
  await chmod(file, mode);
  return file;
}

/** loadConfig with an empty environment unless the test gives one, so the host's env cannot leak in. */
function load(opts: LoadConfigOptions = {}) {
  return loadConfig({ env: {}, ...opts });
}

/** The SettingsError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<SettingsError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SettingsError);
  return err as SettingsError;
}

describe('loadConfig', () => {
  it('never carries a secret from a broken YAML line into the error or its serialized form', async () => {
    for (const text of ['serf: { rpc_auth: "topsecret-token" x }\n', 'serf:\n  rpc_auth: topsecret-token: x\n']) {
      const main = await put('agent.yaml', text);
      const err = await failure(load({ path: main }));
      expect(JSON.stringify(pino.stdSerializers.err(err))).not.toContain('topsecret');
    }
  });

  it('gives the defaults when no file exists', async () => {
    const main = path.join(dir, 'agent.yaml');
    const loaded = await load({ path: main });
    expect(loaded.config).toEqual(DEFAULT_CONFIG);
    expect(loaded.files).toEqual([]);
    expect(loaded.path).toBe(main);
    expect(loaded.dirs).toEqual([path.join(dir, 'agent.d')]);
  });

  it('reads the main file, then agent.d/*.yaml in lexical order', async () => {
    const main = await put('agent.yaml', 'state_dir: /tmp/a\nlog: { level: debug }\nroles:\n  gateway:\n');
    const a = await put('agent.d/10-a.yaml', 'serf:\n  rpc_addr: "10.0.0.1:7373"\nroles:\n  gateway: { dns: one }\n');
    const c = await put('agent.d/2-c.yml', 'roles:\n  gateway:\n  compute: { cpus: 2 }\n');
    const b = await put('agent.d/20-b.yaml', 'log:\n  level: warn\n');
    const empty = await put('agent.d/30-empty.yaml', '# nothing yet\n');
    await put('agent.d/.10-hidden.yaml', 'bogus: true\n');
    await put('agent.d/README.txt', 'bogus: true\n');
    await mkdir(path.join(dir, 'agent.d/40-dir.yaml'));

    const { config, files } = await load({ path: main });
    expect(files).toEqual([main, a, c, b, empty]);
    expect(config.state_dir).toBe('/tmp/a');
    expect(config.log.level).toBe('warn');
    expect(config.serf).toEqual({ rpc_addr: '10.0.0.1:7373', rpc_auth: '', members_poll: '1s' });
    // A bare `gateway:` line keeps the settings an earlier file gave the role.
    expect(config.roles).toEqual({ gateway: { dns: 'one' }, compute: { cpus: 2 }, storage: {}, controller: {} });
    expect(config.dispatch).toEqual(DEFAULT_CONFIG.dispatch);
  });

  it('reads every *.yaml/*.yml of a directory given as the path, and no agent.d', async () => {
    const b = await put('conf/b.yaml', 'log: { level: error }\n');
    const a = await put('conf/a.yml', 'log: { level: debug }\nwatch_config: false\n');
    await put('conf/agent.d/zz.yaml', 'bogus: true\n');
    await put('agent.d/zz.yaml', 'bogus: true\n');

    const loaded = await load({ path: path.join(dir, 'conf') });
    expect(loaded.files).toEqual([a, b]);
    expect(loaded.dirs).toEqual([path.join(dir, 'conf')]);
    expect(loaded.config.log.level).toBe('error');
    expect(loaded.config.watch_config).toBe(false);
  });

  it('finds the config through MAMMATUS_CONFIG when no path is given', async () => {
    const main = await put('elsewhere.yaml', 'state_dir: /srv/m\n');
    const { config, files } = await loadConfig({ env: { MAMMATUS_CONFIG: main } });
    expect(files).toEqual([main]);
    expect(config.state_dir).toBe('/srv/m');
  });

  it('orders defaults < files < env < overrides', async () => {
    const main = await put('agent.yaml', 'serf: { rpc_addr: "10.0.0.1:1", rpc_auth: file }\nlog: { level: warn }\n');
    const env = { MAMMATUS_RPC_ADDR: '10.0.0.2:2', SERF_RPC_AUTH: 'env-secret', MAMMATUS_LOG_LEVEL: '' };

    const fromEnv = await loadConfig({ path: main, env });
    expect(fromEnv.config.serf).toEqual({ rpc_addr: '10.0.0.2:2', rpc_auth: 'env-secret', members_poll: '1s' });
    expect(fromEnv.config.log.level).toBe('warn'); // an empty variable counts as unset

    const fromFlags = await loadConfig({
      path: main,
      env: { ...env, MAMMATUS_LOG_LEVEL: 'debug' },
      overrides: { serf: { rpc_addr: '[::1]:3', rpc_auth: undefined }, state_dir: '/run/m' },
    });
    expect(fromFlags.config.serf).toEqual({ rpc_addr: '[::1]:3', rpc_auth: 'env-secret', members_poll: '1s' });
    expect(fromFlags.config.log.level).toBe('debug');
    expect(fromFlags.config.state_dir).toBe('/run/m');
  });

  it('names the file and line of a YAML syntax error', async () => {
    await put('agent.yaml', 'state_dir: /x\n');
    const bad = await put('agent.d/10-bad.yaml', 'log:\n  level: info\nserf: { rpc_addr: "a:1"\n');
    const err = await failure(load({ path: path.join(dir, 'agent.yaml') }));
    expect(err.message).toMatch(new RegExp(`^${bad}:4: invalid YAML: `));
    expect(err.file).toBe(bad);
    expect(err.line).toBe(4);
  });

  it('refuses a file whose top level is not a mapping', async () => {
    const main = await put('agent.yaml', '- state_dir: /x\n');
    const err = await failure(load({ path: main }));
    expect(err.message).toBe(`${main}: the top level must be a mapping of keys, not a list`);
    expect(err.file).toBe(main);
  });

  it('names the file and key of an unknown key', async () => {
    const main = await put('agent.yaml', 'serf: { rpc_addr: "127.0.0.1:7373" }\n');
    const extra = await put('agent.d/30-z.yaml', 'serf:\n  rpc_port: 7373\n');
    const err = await failure(load({ path: main }));
    expect(err.message).toBe(`${extra}: serf.rpc_port: unknown key`);
    expect(err).toMatchObject({ name: 'SettingsError', file: extra, key: 'serf.rpc_port' });

    await put('agent.d/30-z.yaml', 'state_dirs: /x\n');
    expect((await failure(load({ path: main }))).message).toBe(`${extra}: state_dirs: unknown key`);
  });

  it('names the agent.d file that set a bad rpc_addr', async () => {
    const main = await put('agent.yaml', 'serf: { rpc_addr: "127.0.0.1:7373" }\n');
    const culprit = await put('agent.d/10-x.yaml', 'serf:\n  rpc_addr: "no-port-here"\n');
    await put('agent.d/20-y.yaml', 'log: { level: debug }\n');
    const err = await failure(load({ path: main }));
    expect(err.message).toBe(`${culprit}: serf.rpc_addr: must match host:port`);
    expect(err).toMatchObject({ file: culprit, key: 'serf.rpc_addr' });
  });

  it('refuses an unknown role name', async () => {
    const main = await put('agent.yaml', 'roles:\n  gateway: {}\n  database: { engine: pg }\n');
    const err = await failure(load({ path: main }));
    expect(err.message).toBe(`${main}: roles.database: unknown role name (known: gateway, compute, storage, controller)`);
    expect(err.key).toBe('roles.database');
  });

  it('runs the tenant-facing services as mammatus by default, as another system user when told, never as root', async () => {
    expect((await load({ path: await put('agent.yaml', 'log: { level: info }\n') })).config.services.user).toBe('mammatus');
    expect((await load({ path: await put('agent.yaml', 'services: { user: svc-meta }\n') })).config.services.user).toBe('svc-meta');
    for (const user of ['root', 'Bad User']) {
      const err = await failure(load({ path: await put('agent.yaml', `services: { user: "${user}" }\n`) }));
      expect(err.message).toContain('services.user: must be a system user name other than root, like mammatus');
    }
  });

  it('refuses a duration that does not parse, quoting it', async () => {
    const main = await put('agent.yaml', 'dispatch: { handler_timeout: 30 }\n');
    expect((await failure(load({ path: main }))).message).toBe(`${main}: dispatch.handler_timeout: must be a string`);
    await put('agent.yaml', 'dispatch: { slow_handler: "1 s" }\n');
    expect((await failure(load({ path: main }))).message).toBe(
      `${main}: dispatch.slow_handler: invalid duration "1 s": unknown unit " s" (use ns, us, ms, s, m or h)`,
    );
    await put('agent.yaml', 'dispatch: { query_timeout: "-1s" }\n');
    expect((await failure(load({ path: main }))).message).toContain('must not be negative');
  });

  it('names the environment variable or the command line when they are at fault', async () => {
    const main = path.join(dir, 'agent.yaml');
    const fromEnv = await failure(loadConfig({ path: main, env: { MAMMATUS_LOG_LEVEL: 'loud' } }));
    expect(fromEnv.message).toBe('env:MAMMATUS_LOG_LEVEL: log.level: must be one of trace, debug, info, warn, error, fatal, silent');
    const fromFlags = await failure(load({ path: main, overrides: { serf: { rpc_addr: 'x:99999' } } }));
    expect(fromFlags.message).toBe('command line: serf.rpc_addr: must match host:port');
  });

  it('returns a deep-frozen config', async () => {
    const main = await put('agent.yaml', 'roles:\n  compute: { disks: [a, b] }\n');
    const { config } = await load({ path: main });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.serf)).toBe(true);
    expect(Object.isFrozen(config.roles.compute)).toBe(true);
    expect(Object.isFrozen(config.roles.compute?.disks)).toBe(true);
    expect(() => {
      (config.serf as { rpc_addr: string }).rpc_addr = 'x:1';
    }).toThrow(TypeError);
    expect(Object.isFrozen(DEFAULT_CONFIG.dispatch)).toBe(true);
  });
});

describe('mergeConfig', () => {
  it('merges plain objects, replaces arrays and scalars, skips undefined, changes nothing', () => {
    const base = { a: { b: 1, c: [1, 2] }, d: 'x' };
    const layer = { a: { c: [3] }, d: undefined };
    const out = mergeConfig(base, layer, { a: { b: 2 } });
    expect(out).toEqual({ a: { b: 2, c: [3] }, d: 'x' });
    expect(base).toEqual({ a: { b: 1, c: [1, 2] }, d: 'x' });
    expect(out.a.c).not.toBe(layer.a.c);
  });

  it('keeps a __proto__ key as data', () => {
    const out = mergeConfig({}, JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>);
    expect(Object.keys(out)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('validateConfig', () => {
  it('returns a frozen copy and leaves its input alone', () => {
    const input = mergeConfig(DEFAULT_CONFIG, { roles: { storage: null } });
    const config = validateConfig(input);
    expect(config.roles.storage).toEqual({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(input)).toBe(false);
  });

  it('prefixes errors with the source it is given', () => {
    expect(() => validateConfig({ ...DEFAULT_CONFIG, watch_config: 'yes' }, 'f.yaml')).toThrow(
      'f.yaml: watch_config: must be true or false',
    );
    expect(() => validateConfig({ ...DEFAULT_CONFIG, log: {} })).toThrow(/^log\.level: is required$/);
  });

  it('blames the layer that set a key, else the one that set its nearest parent', () => {
    const sources = new Map([
      ['serf', 'b.yaml'],
      ['serf.rpc_addr', 'a.yaml'],
    ]);
    const badAddr = { ...DEFAULT_CONFIG, serf: { rpc_addr: 'x', rpc_auth: '', members_poll: '1s' } };
    expect(() => validateConfig(badAddr, sources)).toThrow('a.yaml: serf.rpc_addr: must match host:port');
    const extraKey = { ...DEFAULT_CONFIG, serf: { ...DEFAULT_CONFIG.serf, port: 1 } };
    expect(() => validateConfig(extraKey, sources)).toThrow('b.yaml: serf.port: unknown key');
  });
});

describe('isHostPort', () => {
  it.each([
    ['127.0.0.1:7373', true],
    ['serf.local:1', true],
    ['[::1]:7373', true],
    ['[fe80::1%eth0]:7373', true],
    ['::1:7373', false],
    ['host', false],
    [':7373', false],
    ['host:0', false],
    ['host:65536', false],
    ['host:http', false],
    ['bad host:1', false],
  ])('%s → %s', (text, ok) => {
    expect(isHostPort(text)).toBe(ok);
  });
});

describe('config files holding secrets', () => {
  const secrets: Array<[yaml: string, key: string]> = [
    ['serf: { rpc_auth: "rpc-topsecret" }\n', 'serf.rpc_auth'],
    ['metadata: { proxy_secret: "proxy-topsecret" }\n', 'metadata.proxy_secret'],
    ['metadata: { vendor_data: { consul: { gossip_key: "gossip-topsecret" } } }\n', 'metadata.vendor_data.consul.gossip_key'],
    [
      'messaging:\n  credentials:\n    - { access_key_id: AKIDONE, secret_access_key: "messaging-topsecret" }\n',
      'messaging.credentials[0].secret_access_key',
    ],
    ['messaging: { receipt_key: "receipt-topsecret" }\n', 'messaging.receipt_key'],
  ];

  it.each(secrets)('refuses %s when group or others can read it, naming the file, the key and the fix', async (yaml, key) => {
    const main = await put('agent.yaml', 'log: { level: warn }\n', 0o644);
    for (const mode of [0o644, 0o640, 0o604]) {
      const dropIn = await put('agent.d/10-secret.yaml', yaml, mode);
      const err = await failure(load({ path: main }));
      expect(err).toMatchObject({ file: dropIn, key });
      const octal = mode.toString(8).padStart(4, '0');
      expect(err.message).toBe(
        `${dropIn}: ${key}: is a secret, but ${dropIn} is readable by others (mode ${octal}); run chmod 600 ${dropIn}`,
      );
      expect(err.message).not.toContain('topsecret');
    }
    await chmod(path.join(dir, 'agent.d/10-secret.yaml'), 0o600);
    await expect(load({ path: main })).resolves.toMatchObject({ files: [main, path.join(dir, 'agent.d/10-secret.yaml')] });
  });

  it('lets a file without secrets stay 0644, an empty rpc_auth and secret file paths included', async () => {
    const main = await put(
      'agent.yaml',
      'serf: { rpc_auth: "" }\nmetadata: { proxy_secret_file: /etc/mammatus/metadata.secret }\nroles: { gateway: { metadata: { secret_file: /etc/s } } }\n',
      0o644,
    );
    await expect(load({ path: main })).resolves.toMatchObject({ files: [main] });
  });

  it('refuses the main file too, and a whole config directory file by file', async () => {
    const main = await put('agent.yaml', 'serf: { rpc_auth: "k" }\n', 0o644);
    expect(await failure(load({ path: main }))).toMatchObject({ file: main, key: 'serf.rpc_auth' });
    expect(await failure(load({ path: dir }))).toMatchObject({ file: main, key: 'serf.rpc_auth' });
  });
});

describe('trust.operators and trust.operators_file', () => {
  const alice = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMNk8FTnRMJMhPZtIhxqhuZc6j+R6zvyn3z5JnplChbm alice@laptop';
  const bob = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXhLRg1WZ2jKDFeBIy2tP5sLeqvNnWQ+Q6hSH5sLsgc bob@desk';

  it('reads the operators of the list and of the authorized_keys file, names from the comments, one entry per key', async () => {
    const file = await put('operators', `# operators\n${bob}\n\n${alice} (again)\n`, 0o644);
    const main = await put('agent.yaml', `trust:\n  operators: ["${alice}"]\n  operators_file: ${file}\n`);
    const loaded = await load({ path: main });
    expect(loaded.operators.map((o) => o.name)).toEqual(['alice@laptop', 'bob@desk']);
  });

  it('refuses an operators file others may write (as OpenSSH StrictModes), and watches it with the config', async () => {
    const file = await put('operators', `${alice}\n`, 0o664);
    const main = await put('agent.yaml', `trust:\n  operators_file: ${file}\n`);
    expect((await failure(load({ path: main }))).message).toMatch(/must not be writable by group or others/);
    await chmod(file, 0o644);
    const loaded = await load({ path: main });
    expect(watchedFiles(loaded)).toEqual([main, file]);
  });

  it('refuses a bad key naming the file and line, a missing operators file, and a relative path', async () => {
    const file = await put('operators', `${alice}\nssh-ed25519 AAAA-not-base64 eve\n`, 0o644);
    const main = await put('agent.yaml', `trust:\n  operators_file: ${file}\n`);
    expect((await failure(load({ path: main }))).message).toMatch(new RegExp(`${file}: trust.operators_file: line 2: not an SSH key`));
    const listed = await put('agent.yaml', `trust:\n  operators: ["ssh-ed25519 AAAA-not-base64 eve"]\n`);
    expect((await failure(load({ path: listed }))).message).toMatch(/agent\.yaml: trust\.operators: line 1: not an SSH key/);
    const missing = await put('agent.yaml', `trust:\n  operators_file: ${path.join(dir, 'nope')}\n`);
    expect((await failure(load({ path: missing }))).message).toMatch(/trust\.operators_file: cannot read .*nope/);
    const relative = await put('agent.yaml', 'trust:\n  operators_file: operators\n');
    expect((await failure(load({ path: relative }))).key).toBe('trust.operators_file');
  });
});
