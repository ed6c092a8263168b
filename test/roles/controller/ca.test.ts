/**
 * The controller's CA backend without a real one: the renderers' rules (the goldens are in
 * render.test.ts), the provisioner key, which backend runs, and the backend's life through the role
 * with fakes (a recording runner, in-memory files, a fake spawner, a scripted directory probe).
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { applyRole } from '../../../roles/apply.js';
import { parseControllerConfig } from '../../../roles/controller/config.js';
import {
  CA_NAME,
  caConfigPaths,
  caNames,
  provisionerKey,
  renderCaFiles,
  renderCaddyConfig,
  renderStepCaConfig,
  stepCaPassword,
} from '../../../roles/controller/ca-render.js';
import { CaBackend, backendArgv, chooseBackend, localDirectoryUrl, type DirectoryProbe } from '../../../roles/controller/ca-backend.js';
import { buildControllerRole } from '../../../roles/controller/index.js';
import type { DesiredState } from '../../../roles/types.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { fixedCredentials } from '../../helpers/trust.js';

const log = pino({ level: 'silent' });
const SEED = fixedCredentials('c1', ['controller']).authority_seed!;
const ca = (raw: Record<string, unknown> = {}) => parseControllerConfig({ ca: raw }).ca;
const PKI = {
  '/var/lib/mammatus/ca/root.crt': 'ROOT PEM\n',
  '/var/lib/mammatus/ca/intermediate.crt': 'INTERMEDIATE PEM\n',
  '/var/lib/mammatus/ca/intermediate.key': { content: 'KEY PEM\n', mode: 0o600 },
};
const directoryOk: DirectoryProbe = async () => ({ status: 200, body: '{"newOrder":"https://ca.mammatus:9000/acme/acme/new-order"}' });

describe('the CA renderers', () => {
  it('names ca.mammatus and the node, lower-cased, when the node name is a DNS label', () => {
    expect(caNames('CTL-1')).toEqual([CA_NAME, 'ctl-1.mammatus']);
    expect(caNames('ctl_1')).toEqual([CA_NAME]);
    expect(caNames('ca')).toEqual([CA_NAME]);
  });

  it('caddy: the CA id is the provisioner (the URL segment), the intermediate key stands in for the root key, no admin', () => {
    const conf = JSON.parse(renderCaddyConfig('c1', ca({ provisioner: 'svc', listen: ':9443' }))) as {
      admin: unknown;
      apps: { pki: { certificate_authorities: Record<string, { root: { private_key: string } }> }; http: { servers: { ca: unknown } } };
    };
    expect(conf.admin).toEqual({ disabled: true, config: { persist: false } });
    expect(Object.keys(conf.apps.pki.certificate_authorities)).toEqual(['svc']);
    expect(conf.apps.pki.certificate_authorities.svc.root.private_key).toBe('/var/lib/mammatus/ca/intermediate.key');
    expect(conf.apps.http.servers.ca).toMatchObject({
      listen: [':9443'],
      routes: [{ match: [{ path: ['/acme/svc/*'] }], handle: [{ handler: 'acme_server', ca: 'svc' }] }],
      automatic_https: { disable: true },
    });
  });

  it('step-ca: cluster names only; ACME and JWK provisioners, bbolt, short claims; the ACME default lifetime is cert_lifetime', () => {
    const conf = JSON.parse(renderStepCaConfig('c1', ca({ cert_lifetime: '2h', node_cert_lifetime: '30m' }), SEED)) as {
      db: unknown;
      authority: {
        claims: unknown;
        policy: unknown;
        provisioners: { type: string; name: string; claims: unknown; key?: { kid: string } }[];
      };
    };
    expect(conf.db).toEqual({ type: 'bbolt', dataSource: '/var/lib/mammatus/ca/data/step-ca.db' });
    expect(conf.authority.claims).toEqual({ minTLSCertDuration: '5m', maxTLSCertDuration: '168h', defaultTLSCertDuration: '24h' });
    const [acme, jwk] = conf.authority.provisioners;
    expect(acme).toEqual({ type: 'ACME', name: 'acme', claims: { defaultTLSCertDuration: '2h' } });
    expect(conf.authority.policy).toEqual({ x509: { allow: { dns: ['*.mammatus'] } } });
    expect(jwk).toMatchObject({ type: 'JWK', name: 'mammatus', claims: { defaultTLSCertDuration: '30m' } });
    expect(jwk.key!.kid).toBe(provisionerKey(SEED).publicJwk.kid);
  });

  it('derives one working P-256 provisioner key per authority seed (same on every controller)', () => {
    const a = provisionerKey(SEED);
    expect(provisionerKey(SEED)).toEqual(a);
    expect(provisionerKey(`${SEED}x`).publicJwk.x).not.toBe(a.publicJwk.x);
    // node:crypto accepts the pair, and what the private half signs the public half verifies.
    const { use: _use, alg: _alg, kid: _kid, ...pub } = a.publicJwk;
    const priv = createPrivateKey({ key: { ...pub, d: a.d }, format: 'jwk' });
    const signature = sign('sha256', Buffer.from('token'), priv);
    expect(verify('sha256', Buffer.from('token'), createPublicKey({ key: pub, format: 'jwk' }), signature)).toBe(true);
    expect(stepCaPassword(SEED)).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
  });

  it('renders per backend: caddy, step-ca (password 0600), both for auto, none when disabled or without a seed', () => {
    const paths = (raw: Record<string, unknown>, seed: string | null = SEED) =>
      renderCaFiles('c1', ca(raw), seed ?? undefined).map((f) => `${f.path} ${f.mode!.toString(8)}`);
    expect(paths({ backend: 'caddy' })).toEqual(['/etc/mammatus/controller/ca/caddy.json 644']);
    expect(paths({ backend: 'step-ca' })).toEqual([
      '/etc/mammatus/controller/ca/ca.json 644',
      '/etc/mammatus/controller/ca/password.txt 600',
    ]);
    expect(paths({})).toHaveLength(3);
    expect(paths({}, null)).toEqual(['/etc/mammatus/controller/ca/caddy.json 644']);
    expect(paths({ enabled: false })).toEqual([]);
  });
});

describe('choosing and running the backend', () => {
  it('auto runs step-ca when its binary is found, else caddy; an explicit choice stands', () => {
    expect(chooseBackend(ca(), (p) => (p === 'step-ca' ? '/usr/bin/step-ca' : undefined))).toBe('step-ca');
    expect(chooseBackend(ca(), () => undefined)).toBe('caddy');
    expect(chooseBackend(ca({ backend: 'caddy' }), () => '/x')).toBe('caddy');
  });

  it('starts each backend with its config and data directory; probes loopback for a wildcard address', () => {
    expect(backendArgv('caddy', ca())).toEqual([
      'env',
      [
        'XDG_DATA_HOME=/var/lib/mammatus/ca/data',
        'HOME=/var/lib/mammatus/ca/data/caddy',
        'caddy',
        'run',
        '--config',
        '/etc/mammatus/controller/ca/caddy.json',
      ],
    ]);
    expect(backendArgv('step-ca', ca())).toEqual([
      'step-ca',
      ['/etc/mammatus/controller/ca/ca.json', '--password-file', '/etc/mammatus/controller/ca/password.txt'],
    ]);
    expect(localDirectoryUrl(ca())).toBe('https://127.0.0.1:9000/acme/acme/directory');
    expect(localDirectoryUrl(ca({ listen: '10.0.0.5:9443', provisioner: 'svc' }))).toBe('https://10.0.0.5:9443/acme/svc/directory');
  });

  function backendWith(
    files: ReturnType<typeof memoryFiles>,
    opts: { root?: boolean; probe?: DirectoryProbe; which?: string[]; closed?: string } = {},
  ) {
    const spawn = fakeSpawn();
    const run = recordingRun();
    const which = opts.which ?? ['caddy'];
    const backend = new CaBackend({
      spawn,
      run,
      files,
      log,
      probe: opts.probe ?? directoryOk,
      which: (p) => (which.includes(p) ? `/usr/bin/${p}` : undefined),
      euid: () => (opts.root ? 0 : 1000),
      passwd: () => 'caddy:x:994:994::/var/lib/caddy:/usr/sbin/nologin\n',
      // Every directory open (0755, root's), except `closed` (0700).
      stat: async (dir) => ({ uid: 0, gid: 0, mode: dir === opts.closed ? 0o700 : 0o755 }),
      healthTimeoutMs: 300,
    });
    return { backend, spawn, run };
  }

  it('waits for the CA files, then runs as caddy (the key and data handed over), and restarts only on change', async () => {
    const files = memoryFiles({ '/etc/mammatus/controller/ca/caddy.json': renderCaddyConfig('c1', ca()) });
    const t = backendWith(files, { root: true });
    await t.backend.apply(ca());
    expect(t.backend.state).toMatchObject({ state: 'waiting', backend: 'caddy' });
    expect(t.spawn.started).toHaveLength(0);
    for (const [p, v] of Object.entries(PKI)) await files.write(p, typeof v === 'string' ? v : v.content, 0o600);
    await t.backend.apply(ca());
    expect(t.backend.state).toEqual({ state: 'running', backend: 'caddy' });
    expect(t.spawn.started[0]).toMatchObject({ file: 'env', user: 'caddy' });
    expect(t.run.calls).toContainEqual(['chown', '994:994', '/var/lib/mammatus/ca/intermediate.key']);
    expect(t.run.calls).toContainEqual(['chown', '-R', '994:994', '/var/lib/mammatus/ca/data']);
    await t.backend.apply(ca());
    expect(t.spawn.started).toHaveLength(1);
    // A rotated intermediate: a restart.
    await files.write('/var/lib/mammatus/ca/intermediate.crt', 'NEW INTERMEDIATE\n');
    await t.backend.apply(ca());
    expect(t.spawn.started).toHaveLength(2);
    expect(t.spawn.started[0].signals).toEqual(['SIGTERM']);
    await t.backend.stop();
    expect(t.backend.state).toEqual({ state: 'off' });
  });

  it("validates (as root) with a scratch directory of its own, outside the data directory caddy's user owns", async () => {
    const files = memoryFiles({ ...PKI, '/etc/mammatus/controller/ca/caddy.json': renderCaddyConfig('c1', ca()) });
    let env: Record<string, string | undefined> | undefined;
    const run = recordingRun((argv, options) => {
      if (argv[0] === 'caddy' && argv[1] === 'validate') env = options?.env;
      return undefined;
    });
    const backend = new CaBackend({
      spawn: fakeSpawn(),
      run,
      files,
      log,
      probe: directoryOk,
      which: (p) => (p === 'caddy' ? '/usr/bin/caddy' : undefined),
      euid: () => 0,
      passwd: () => 'caddy:x:994:994::/var/lib/caddy:/usr/sbin/nologin\n',
      stat: async () => ({ uid: 0, gid: 0, mode: 0o755 }),
      healthTimeoutMs: 300,
    });
    await backend.apply(ca());
    await backend.validate(ca());
    // caddy validate opens acme_server's database under XDG_DATA_HOME: in a directory caddy's user
    // owns (chown -R data_dir), that user could plant symlinks for root to create files through.
    const data = ca().paths.data_dir;
    expect(env?.XDG_DATA_HOME).toBeDefined();
    expect(`${env!.XDG_DATA_HOME}/`.startsWith(`${data}/`)).toBe(false);
    expect(run.calls.filter((c) => c[0] === 'chown' && c.includes(env!.XDG_DATA_HOME!))).toEqual([]);
    await backend.stop();
  });

  it("a directory the caddy user may not enter on the way to its files: the agent's user runs it", async () => {
    const files = memoryFiles({ ...PKI, '/etc/mammatus/controller/ca/caddy.json': renderCaddyConfig('c1', ca()) });
    const t = backendWith(files, { root: true, closed: '/var/lib/mammatus/ca' });
    await t.backend.apply(ca());
    expect(t.backend.state).toEqual({ state: 'running', backend: 'caddy' });
    expect(t.spawn.started[0].user).toBeUndefined();
    expect(t.run.calls.filter((c) => c[0] === 'chown')).toEqual([]);
    await t.backend.stop();
  });

  it('a backend that never answers is an error (rejected), a missing binary only a status', async () => {
    const files = memoryFiles({ ...PKI, '/etc/mammatus/controller/ca/caddy.json': renderCaddyConfig('c1', ca()) });
    const t = backendWith(files, { probe: async () => ({ status: 404, body: 'not found' }) });
    await expect(t.backend.apply(ca())).rejects.toThrow(/not healthy after .*HTTP 404 not found/);
    expect(t.backend.state).toMatchObject({ state: 'error', backend: 'caddy' });
    await t.backend.stop();
    const none = backendWith(files, { which: [] });
    await none.backend.apply(ca());
    expect(none.backend.state).toMatchObject({ state: 'error', error: expect.stringContaining('caddy is not installed') });
    expect(none.spawn.started).toHaveLength(0);
  });
});

describe('the CA through the controller role', () => {
  const member: Member = { name: 'c1', addr: '10.0.0.1', port: 7946, tags: { role: 'controller' }, status: 'alive' };
  const desired = (ca: Record<string, unknown>): DesiredState => ({
    node: 'c1',
    config: { firewall: { enabled: false }, ca },
    members: [member],
    credentials: fixedCredentials('c1', ['controller']),
  });

  it('a config caddy validate refuses is rolled back: the running backend keeps the last good one', async () => {
    let refuse = false;
    const run = recordingRun((argv) =>
      refuse && argv[0] === 'caddy' && argv[1] === 'validate' ? commandFailed(argv, 1, 'Error: loading pki app module: bad') : undefined,
    );
    const files = memoryFiles(PKI);
    const spawn = fakeSpawn();
    const role = buildControllerRole({
      spawn,
      probe: async () => ({ status: 200, body: '{"status":"ok"}' }),
      healthTimeoutMs: 100,
      natsUser: { euid: () => 1000 },
      ca: { probe: directoryOk, which: (p) => (p === 'caddy' ? '/usr/bin/caddy' : undefined), euid: () => 1000, healthTimeoutMs: 300 },
    });
    const first = await applyRole(role, desired({ backend: 'caddy' }), { run, files, log });
    expect(first).toMatchObject({ ok: true });
    expect(run.calls).toContainEqual(['caddy', 'validate', '--config', '/etc/mammatus/controller/ca/caddy.json']);
    const caddy = spawn.started.find((p) => p.file === 'env')!;
    expect(caddy.args).toContain('/etc/mammatus/controller/ca/caddy.json');
    expect(role.facts?.(undefined)?.summary).toBe('ca caddy running');

    refuse = true;
    const good = await files.read('/etc/mammatus/controller/ca/caddy.json');
    const bad = await applyRole(role, desired({ backend: 'caddy', listen: ':9443' }), { run, files, log, previous: first.owned });
    expect(bad).toMatchObject({ ok: false, rolledBack: true, error: expect.stringContaining('caddy validate rejected') });
    expect(await files.read('/etc/mammatus/controller/ca/caddy.json')).toBe(good);
    expect(caddy.exitedYet).toBe(false);
    await role.stop!();
    expect(caddy.exitedYet).toBe(true);
  });

  it('a backend that does not come up is an error of the CA alone: NATS stays, nothing is rolled back', async () => {
    const files = memoryFiles(PKI);
    const spawn = fakeSpawn();
    const down: DirectoryProbe = async () => ({ status: 503, body: 'data directory locked' });
    const role = buildControllerRole({
      spawn,
      probe: async () => ({ status: 200, body: '{"status":"ok"}' }),
      healthTimeoutMs: 100,
      natsUser: { euid: () => 1000 },
      ca: { probe: down, which: (p) => (p === 'caddy' ? '/usr/bin/caddy' : undefined), euid: () => 1000, healthTimeoutMs: 200 },
    });
    const report = await applyRole(role, desired({ backend: 'caddy' }), { run: recordingRun(), files, log });
    expect(report).toMatchObject({ ok: true });
    const nats = spawn.started.find((p) => p.file === 'nats-server')!;
    expect(nats.exitedYet).toBe(false);
    expect(role.facts?.(undefined)?.summary).toMatch(/^ca caddy error: .*not healthy/);
    await role.stop!();
  });

  it('disabled: no files and no backend', async () => {
    const files = memoryFiles(PKI);
    const spawn = fakeSpawn();
    const role = buildControllerRole({ spawn, probe: async () => ({ status: 200, body: '{}' }), natsUser: { euid: () => 1000 } });
    const report = await applyRole(role, desired({ enabled: false }), { run: recordingRun(), files, log });
    expect(report.owned.filter((p) => Object.values(caConfigPaths(ca())).includes(p))).toEqual([]);
    expect(spawn.started.map((p) => p.file)).toEqual(['nats-server']);
    await role.stop!();
  });
});
