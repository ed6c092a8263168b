/**
 * Trust, tested as an attacker on the LAN would try it (issue 15): a real controller (serf with
 * gossip encryption and an RPC key, its agent, its nats-server) admits a gateway and two compute
 * nodes with the CLI; then anonymous clients, forged keys and each node's own credentials try what
 * they must not do, a member tagged controller without admission is listed as untrusted and gets no
 * route, a node admitted as compute cannot become a controller by its tag, a controller refuses to
 * run on a Serf without an RPC key, and a revoked node is refused within 5 s.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createUser } from '@nats-io/nkeys';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../core/nats.js';
import { CREDENTIALS_FILE, readCredentials, type NodeCredentials } from '../../core/trust.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { requestNodeWrite } from '../../src/registry/node-writes.js';
import { InstanceRegistry, registryKeys } from '../../src/registry/registry.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`trust test skipped: ${skip}`);

describe.skipIf(Boolean(skip))('trust: NATS auth, least privilege, pinned controllers, revocation', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-trust-'));
  const rpcAuth = 'trust-test-rpc-key';
  let gossipKey = '';
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  let ctlSerf: SerfAgent;
  let natsUrl = '';
  let ctlCreds = '';
  const creds: Record<string, NodeCredentials> = {};
  const opened: NatsConnection[] = [];

  /** The CLI as the controller (its credentials, its serf). */
  const cli = async (...args: string[]) =>
    exec(process.execPath, [BUNDLE, '--rpc-addr', ctlSerf.rpcAddr, '--rpc-auth', rpcAuth, '--credentials', ctlCreds, ...args], {
      timeout: 30_000,
    }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    );
  /** A client as `node` (retrying while the controller reloads its users after an admission). */
  const as = async (node: string) => {
    const nc = await eventually(() => connectNats(natsUrl, { name: `as-${node}`, timeoutMs: 2000, credentials: creds[node] }), 10_000);
    opened.push(nc);
    return nc;
  };
  const serfNode = async (name: string, tags: Record<string, string>, secure = true) => {
    const s = await startSerfAgent({
      name,
      dir: path.join(root, name, 'serf'),
      tags,
      ...(secure ? { rpcAuth, encryptKey: gossipKey } : {}),
    });
    serfs.push(s);
    return s;
  };
  const controllerYaml = async (dir: string) => {
    const [client, cluster, monitor, md] = [await freePort(), await freePort(), await freePort(), await freePort()];
    return {
      url: `nats://127.0.0.1:${client}`,
      yaml: [
        'watch_config: false',
        'roles:',
        '  controller:',
        `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(path.join(dir, 'nats'))}, binary: nats-server }`,
        `    paths: { nats_conf: ${JSON.stringify(path.join(dir, 'nats.conf'))}, members: ${JSON.stringify(path.join(dir, 'members'))}, roster: ${JSON.stringify(path.join(dir, 'roster.json'))}, firewall: ${JSON.stringify(path.join(dir, 'firewall.rules'))} }`,
        // The host's own firewall stays untouched (controller-firewall.test.ts runs it in a namespace).
        '    firewall: { enabled: false }',
        `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${'cd'.repeat(32)}" }`,
      ].join('\n'),
    };
  };

  beforeAll(async () => {
    gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    ctlSerf = await serfNode('ctl-1', { role: 'controller' });
    const dir = path.join(root, 'ctl-1');
    ctlCreds = path.join(dir, 'agent', 'state', CREDENTIALS_FILE);
    // A new cluster: its first controller admits itself, offline.
    const boot = await cli('node', 'admit', 'ctl-1', '--role', 'controller');
    expect(boot.err).toMatch(/created a new cluster authority/);
    const ctl = await controllerYaml(dir);
    natsUrl = ctl.url;
    agents.push(await startMammatusAgent({ dir: path.join(dir, 'agent'), rpcAddr: ctlSerf.rpcAddr, rpcAuth, extraYaml: ctl.yaml }));
    for (const [node, role] of [
      ['gw1', 'gateway'],
      ['cn1', 'compute'],
      ['cn2', 'compute'],
    ] as const) {
      const file = path.join(root, `${node}.json`);
      const r = await cli('node', 'admit', node, '--role', role, '--out', file, '--nats', natsUrl);
      expect(r, r.err).toMatchObject({ code: 0 });
      creds[node] = (await readCredentials(file))!;
    }
    const reg = await cli(
      'instance',
      'register',
      'web',
      '--mac',
      '02:00:00:00:00:31',
      '--ip',
      '10.9.0.31',
      '--node',
      'cn2',
      '--nats',
      natsUrl,
    );
    expect(reg, reg.err).toMatchObject({ code: 0 });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(opened.map((nc) => nc.close()));
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  });

  it('will not start with credentials others can read, as ssh will not use such a key', async () => {
    const dir = path.join(root, 'loose');
    mkdirSync(path.join(dir, 'state'), { recursive: true });
    writeFileSync(path.join(dir, 'state', CREDENTIALS_FILE), JSON.stringify(creds.cn2), { mode: 0o644 });
    chmodSync(path.join(dir, 'state', CREDENTIALS_FILE), 0o644);
    writeFileSync(path.join(dir, 'agent.yaml'), `state_dir: ${JSON.stringify(path.join(dir, 'state'))}\n`);
    const r = await exec(process.execPath, [BUNDLE, 'agent', '--config', path.join(dir, 'agent.yaml')], { timeout: 10_000 }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(r).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/credentials\.json is readable by others \(mode 0644\); run chmod 600/),
    });
    // The controller's agent published the authority's public key for everyone's `mammatus status`.
    expect(statSync(path.join(root, 'ctl-1', 'agent', 'state', 'authority.pub')).mode & 0o777).toBe(0o644);
  });

  it('refuses anonymous clients and keys it never admitted', async () => {
    await expect(connect({ servers: natsUrl, timeout: 10_000, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization Violation/);
    const stranger = createUser();
    await expect(
      connect({ servers: natsUrl, timeout: 10_000, maxReconnectAttempts: 0, authenticator: nkeyAuthenticator(stranger.getSeed()) }),
    ).rejects.toThrow(/Authorization Violation/);
  });

  it('lets a gateway read the registry and nothing else: no write, no messaging buckets, no stream list', async () => {
    const nc = await as('gw1');
    const registry = await InstanceRegistry.open(nc, { bind: true });
    expect((await registry.list()).map((r) => r.name)).toEqual(['web']);
    await expect(registry.kv.put(registryKeys.record('i-00000000000000001'), '{}')).rejects.toThrow(/Permissions Violation/);
    await expect(registry.kv.delete(registryKeys.name('web'))).rejects.toThrow(/Permissions Violation/);
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await expect(jsm.streams.list().next()).rejects.toThrow(/Permissions Violation/);
    // The messaging state (SNS signing keys, receipts, messages) lives in other streams.
    await expect(new Kvm(nc).open('mammatus_messaging').then((kv) => kv.get('x'))).rejects.toThrow(/Permissions Violation|not found/);
    // Its connection survives the refusals: the registry is still readable.
    expect(await registry.find('web')).toBeDefined();
  });

  it("keeps a compute node to the records placed on it: another node's record, a forged subject and direct writes are refused", async () => {
    const nc = await as('cn1');
    const registry = await InstanceRegistry.open(nc, { bind: true });
    const web = (await registry.find('web'))!;
    await expect(registry.kv.put(registryKeys.record(web.id), JSON.stringify({ ...web, state: 'deleting' }))).rejects.toThrow(
      /Permissions Violation/,
    );
    await expect(requestNodeWrite(nc, 'cn1', { op: 'ips', id: web.id, ips: ['10.9.0.66'] })).rejects.toThrow(/not placed on cn1/);
    await expect(requestNodeWrite(nc, 'cn1', { op: 'remove', id: web.id })).rejects.toThrow(/not placed on cn1/);
    // Posing as cn2 on the wire: the server refuses the subject.
    await expect(requestNodeWrite(nc, 'cn2', { op: 'remove', id: web.id }, 2000)).rejects.toThrow(/Permissions Violation|timeout/i);
    // cn2 itself may set what it observes and its addresses, but not remove a record that is not deleting.
    const cn2 = await as('cn2');
    await requestNodeWrite(cn2, 'cn2', { op: 'observed', id: web.id, observed: { status: 'running' } });
    await requestNodeWrite(cn2, 'cn2', { op: 'ips', id: web.id, ips: ['10.9.0.32'] });
    await expect(requestNodeWrite(cn2, 'cn2', { op: 'remove', id: web.id })).rejects.toThrow(
      /running, not deleting|registered, not deleting/,
    );
    const after = (await registry.find('web'))!;
    expect(after.ips).toEqual(['10.9.0.32']);
    expect(after.observed?.status).toBe('running');
    expect(after.state).not.toBe('deleting');
    // Bad requests get an error and change nothing.
    await expect(requestNodeWrite(cn2, 'cn2', { op: 'ips', id: web.id, ips: ['not an ip'] })).rejects.toThrow(/refused/);
    const raw = await cn2.request('mammatus.registry.node.cn2', 'x'.repeat(20_000), { timeout: 10_000 });
    expect(raw.string()).toMatch(/larger than/);
  });

  it('lists a member tagged controller without admission as untrusted, and routes nothing to it', async () => {
    const evil = await serfNode('0evil', { role: 'controller' });
    const c = await exec('serf', ['join', `-rpc-addr=${ctlSerf.rpcAddr}`, `-rpc-auth=${rpcAuth}`, evil.bindAddr]);
    expect(c.stdout).toMatch(/Successfully joined/);
    await eventually(async () => {
      const r = await cli('status');
      if (!/untrusted/.test(r.out)) console.log(r.out, r.err);
      expect(r.out).toMatch(/^0evil\s.*controller\s+untrusted\s/m);
      expect(r.out).toMatch(/^ctl-1\s.*controller\s+admitted\s.*ok$/m);
      expect(r.out).toContain('0evil trust: no proof of admission for controller');
    }, 20_000);
    const conf = readFileSync(path.join(root, 'ctl-1', 'nats.conf'), 'utf8');
    // ctl-1 is the only admitted controller: a route of any kind would be one to 0evil.
    expect(conf).not.toContain('nats-route://');
  });

  it('does not make a node admitted as compute a controller when its tag says so', async () => {
    const s = await serfNode('cn1', { role: 'controller,compute' });
    const dir = path.join(root, 'cn1-agent');
    const ctl = await controllerYaml(dir);
    const agent = await startMammatusAgent({ dir, rpcAddr: s.rpcAddr, rpcAuth, extraYaml: ctl.yaml, credentials: creds.cn1 });
    agents.push(agent);
    await eventually(async () => {
      const r = await exec(process.execPath, [BUNDLE, '--rpc-addr', s.rpcAddr, '--rpc-auth', rpcAuth, 'status', '--json']).catch(
        (e: { stdout: string }) => e,
      );
      const rows = JSON.parse(r.stdout) as { node: string; answer: { role_status: Record<string, { state: string; error?: string }> } }[];
      const self = rows.find((row) => row.node === 'cn1')!;
      expect(self.answer.role_status.controller).toMatchObject({ state: 'error', error: expect.stringMatching(/not admitted/) });
    }, 20_000);
    // It started no nats-server: nothing listens where its controller config says.
    await expect(connect({ servers: ctl.url, timeout: 1000, maxReconnectAttempts: 0 })).rejects.toThrow();
  });

  it('refuses the controller role on a Serf without an RPC key or gossip encryption', async () => {
    const file = path.join(root, 'plain.json');
    expect((await cli('node', 'admit', 'plain', '--role', 'controller', '--out', file, '--nats', natsUrl)).code).toBe(0);
    const s = await serfNode('plain', { role: 'controller' }, false);
    const dir = path.join(root, 'plain-agent');
    const ctl = await controllerYaml(dir);
    const agent = await startMammatusAgent({ dir, rpcAddr: s.rpcAddr, extraYaml: ctl.yaml, credentials: (await readCredentials(file))! });
    agents.push(agent);
    await eventually(async () => {
      const r = await exec(process.execPath, [BUNDLE, '--rpc-addr', s.rpcAddr, 'status']).catch((e: { stdout: string }) => e);
      if (!/plain trust/.test(r.stdout)) console.log(r.stdout);
      expect(r.stdout).toMatch(/plain controller: refused: Serf gossip is not encrypted.*; Serf RPC has no auth key/);
      expect(r.stdout).toMatch(/plain trust: Serf RPC has no auth key/);
    }, 20_000);
  });

  it('refuses a revoked node within 5 s: its connection is dropped and it cannot come back', async () => {
    const nc = await connectNats(natsUrl, { name: 'victim', persistent: true, credentials: creds.gw1 });
    opened.push(nc);
    let dropped = 0;
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'disconnect' && !dropped) dropped = performance.now();
    })().catch(() => undefined);
    const t0 = performance.now();
    const r = await cli('node', 'revoke', 'gw1', '--nats', natsUrl);
    expect(r, r.err).toMatchObject({ code: 0 });
    await eventually(() => expect(dropped).toBeGreaterThan(0), 5000, 20);
    expect(dropped - t0).toBeLessThan(5000);
    await expect(connectNats(natsUrl, { name: 'again', timeoutMs: 10_000, credentials: creds.gw1 })).rejects.toThrow(
      /Authorization Violation/,
    );
    const list = await cli('node', 'list', '--json', '--nats', natsUrl);
    expect((JSON.parse(list.out) as { node: string }[]).map((n) => n.node)).not.toContain('gw1');
    console.log(`revoked gw1: its connection dropped ${Math.round(dropped - t0)} ms after \`node revoke\` started`);
  });
});
