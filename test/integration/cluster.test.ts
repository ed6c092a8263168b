/**
 * A real four-node loopback cluster (serf agents + mammatus agent processes from the bundle),
 * driven with the real `serf` CLI and the `mammatus` CLI.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/lib/ports.js';
import { skipReason, startCluster, type TestCluster } from './harness.js';
import { TestTrust } from '../../scripts/lib/nats-server.js';

const skip = skipReason();
if (skip) console.warn(`integration tests skipped: ${skip}`);

/**
 * A controller's settings for a node of this one-address cluster: its own free ports and files in
 * `dir`, so it never touches /etc or /var/lib. (Its route to the other controller is its own
 * address, so each nats-server runs alone; test/integration/controller.test.ts clusters them.)
 */
async function controllerYaml(dir: string, nats: string): Promise<string> {
  const [client, cluster, monitor, metadata] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const at = (name: string) => JSON.stringify(path.join(dir, name));
  return [
    'roles:',
    '  controller:',
    `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${at('nats')}, binary: ${JSON.stringify(nats)} }`,
    `    paths: { nats_conf: ${at('nats-server.conf')}, members: ${at('members')}, roster: ${at('roster.json')}, firewall: ${at('firewall.rules')} }`,
    // The host's firewall stays untouched; this Serf has no RPC key (test/integration/trust.test.ts covers both).
    '    firewall: { enabled: false }',
    `metadata: { listen: "127.0.0.1:${metadata}" }`,
    'trust: { allow_plain_serf: true }',
  ].join('\n');
}

describe.skipIf(Boolean(skip))('a loopback cluster', () => {
  let c: TestCluster;
  let controllers = '';
  // The cluster's authority: the two controllers are admitted with it.
  const trust = new TestTrust();
  beforeAll(async () => {
    controllers = mkdtempSync(path.join(os.tmpdir(), 'mammatus-it-ctl-'));
    // Debian puts nats-server in /usr/sbin, which a non-root PATH often lacks.
    const nats = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
    c = await startCluster([
      // No node is a gateway here: that role changes the machine's firewall and belongs in a network
      // namespace (test/integration/gateway.test.ts).
      {
        name: 'gw',
        tags: { role: 'compute,controller' },
        extraYaml: await controllerYaml(path.join(controllers, 'gw'), nats ?? 'nats-server'),
        credentials: trust.mint('gw', ['compute', 'controller']),
      },
      { name: 'cp', tags: { role: 'compute' } },
      { name: 'st', tags: { role: 'storage,bogus' }, rpcAuth: 'st-secret' },
      {
        name: 'ct',
        tags: { role: 'controller' },
        extraYaml: await controllerYaml(path.join(controllers, 'ct'), nats ?? 'nats-server'),
        credentials: trust.mint('ct', ['controller']),
      },
      { name: 'bare', agent: false },
    ]);
    // Every agent has set its `mammatus` tag once ready; wait until gossip shows all of them.
    await c.eventually(async () => {
      const out = JSON.parse(await c.serf('gw', ['members', '-format=json'])) as { members: { tags: Record<string, string> }[] };
      expect(out.members.filter((m) => m.tags.mammatus).length).toBe(4);
    });
  });
  afterAll(async () => {
    await c?.stop();
    if (controllers && !process.env.KEEP_TEST_DIRS) rmSync(controllers, { recursive: true, force: true });
  });

  it('answers serf query mammatus.ping from every agent, and only compute nodes with -tag', async () => {
    const all = JSON.parse(await c.serf('cp', ['query', '-format=json', 'mammatus.ping'])) as { Responses: Record<string, string> };
    expect(all.Responses).toEqual({ gw: 'pong', cp: 'pong', st: 'pong', ct: 'pong' });
    const compute = JSON.parse(await c.serf('gw', ['query', '-format=json', '-tag', 'role=^compute$', 'mammatus.ping'])) as {
      Responses: Record<string, string>;
    };
    expect(compute.Responses).toEqual({ cp: 'pong' });
  });

  it('mammatus status lists every member with its roles and returns before the query timeout', async () => {
    const started = Date.now();
    const r = await c.mammatus('gw', ['status']);
    const elapsed = Date.now() - started;
    // st reports the unknown role "bogus" as an error, so the exit code says "something is wrong".
    expect(r.code).toBe(1);
    // TRUST is `?`: this CLI has no credentials to check trust tags with.
    expect(r.stdout).toMatch(/^gw\s.*alive\s+compute,controller\s+\?\s+0\.1\.0\s+\d+s\s+ok$/m);
    expect(r.stdout).toMatch(/^cp\s.*compute.*ok$/m);
    expect(r.stdout).toMatch(/^st\s.*storage.*storage:ok bogus:error$/m);
    expect(r.stdout).toMatch(/^ct\s.*controller.*ok$/m);
    expect(r.stdout).toMatch(/^bare\s.*\(no agent\)$/m);
    expect(r.stdout).toContain('st bogus: unknown role');
    expect(elapsed).toBeLessThan(3000);

    const json = await c.mammatus('cp', ['status', '--json', '--tag', 'role=^compute$']);
    const rows = JSON.parse(json.stdout) as { node: string; answer: { roles: string[] } }[];
    expect(rows.map((x) => x.node)).toEqual(['cp']);
    expect(rows[0].answer.roles).toEqual(['compute']);
  });

  it('delivers serf event mammatus.reconcile to the agents of other nodes', async () => {
    await c.serf('gw', ['event', 'mammatus.reconcile', 'compute']);
    await c.node('cp').agent!.waitForLog((l) => l.msg === 'reconcile queued' && l.reason === 'mammatus.reconcile');
    await c.serf('gw', ['event', 'mammatus.reconcile']);
    for (const n of ['gw', 'ct']) {
      await c.node(n).agent!.waitForLog((l) => l.msg === 'reconcile queued' && l.reason === 'mammatus.reconcile');
    }
  });

  it('works the same through the mammatus CLI (query, event, members) and with RPC auth', async () => {
    const q = await c.mammatus('st', ['query', 'mammatus.ping', '--tag', 'role=stor', '--timeout', '2s']);
    expect(q.code).toBe(0);
    expect(q.stdout).toContain("Response from 'st': pong");
    const e = await c.mammatus('st', ['event', 'mammatus.reconcile', 'gateway']);
    expect(e.stdout).toContain("Event 'mammatus.reconcile' dispatched");
    const m = await c.mammatus('gw', ['members', '--json']);
    expect((JSON.parse(m.stdout) as unknown[]).length).toBe(5);
    const bad = await c.mammatus('gw', ['query', 'mammatus.ping', '--timeout', 'soon']);
    expect(bad.code).toBe(2);
  });

  it('moves a node to its new role when its role tag changes at run time', async () => {
    await c.serf('cp', ['tags', '-set', 'role=storage,compute']);
    await c.node('cp').agent!.waitForLog((l) => l.msg === 'role added to this node' && l.role === 'storage');
    await c.eventually(async () => {
      const r = await c.mammatus('gw', ['status', '--json', '--tag', 'role=storage']);
      const rows = JSON.parse(r.stdout) as { node: string; answer: { roles: string[] } | null }[];
      expect(rows.find((x) => x.node === 'cp')?.answer?.roles).toEqual(['compute', 'storage']);
    });
    await c.serf('cp', ['tags', '-set', 'role=compute']);
    await c.node('cp').agent!.waitForLog((l) => l.msg === 'role removed from this node; stopping it' && l.role === 'storage');
  });

  it('reconnects when its serf agent is killed and restarted, and handles events again', async () => {
    const n = c.node('ct');
    const spec = n.serf.spec;
    const { bindPort, rpcPort } = n.serf;
    await n.serf.kill();
    await n.agent!.waitForLog((l) => l.msg === 'serf RPC unavailable; reconnecting');
    const { startSerfAgent } = await import('../../scripts/lib/serf-agent.js');
    n.serf = await startSerfAgent({ ...spec, bindPort, rpcPort });
    await c.eventually(() => {
      expect(n.agent!.logLines().filter((l) => l.msg === 'connected to serf').length).toBeGreaterThanOrEqual(2);
    });
    // The snapshot makes serf re-join by itself; then queries reach the reconnected agent again.
    await c.eventually(async () => {
      const out = JSON.parse(await c.serf('gw', ['query', '-format=json', '-node', 'ct', '-timeout', '2s', 'mammatus.ping'])) as {
        Responses: Record<string, string>;
      };
      expect(out.Responses).toEqual({ ct: 'pong' });
    }, 30_000);
  });

  it('keeps the last good config when a changed config file is invalid, and reloads a valid one', async () => {
    const agent = c.node('gw').agent!;
    const good = readFileSync(agent.configPath, 'utf8');
    writeFileSync(agent.configPath, good + 'dispatch: { handler_timeout: [oops\n');
    await agent.waitForLog((l) => l.msg === 'config reload failed; keeping the last good config');
    const ping = JSON.parse(await c.serf('gw', ['query', '-format=json', '-node', 'gw', '-timeout', '1s', 'mammatus.ping'])) as {
      Responses: Record<string, string>;
    };
    expect(ping.Responses).toEqual({ gw: 'pong' });
    writeFileSync(agent.configPath, good);
    // Not `roles:`: gw's file has that key already (its controller settings), and YAML refuses two.
    appendFileSync(agent.configPath, 'dispatch: { slow_handler: 2s }\n');
    agent.process.kill('SIGHUP');
    await agent.waitForLog((l) => l.msg === 'config reloaded');
  });

  it('stops cleanly on SIGTERM and clears its mammatus tag', async () => {
    const agent = c.node('ct').agent!;
    expect(await agent.stop()).toBe(0);
    expect(agent.logLines().some((l) => l.msg === 'agent stopped')).toBe(true);
    await c.eventually(async () => {
      const out = JSON.parse(await c.serf('gw', ['members', '-format=json', '-name', 'ct'])) as {
        members: { tags: Record<string, string> }[];
      };
      expect(out.members[0].tags.mammatus).toBeUndefined();
    });
    const r = await c.mammatus('gw', ['status']);
    expect(r.stdout).toMatch(/^ct\s.*\(no agent\)$/m);
  });
});
