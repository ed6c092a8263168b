/**
 * Launching from anywhere, without LXD: two compute nodes (in-process agents on real serf agents,
 * each with a simulated LXD on a unix socket) follow the registry on a real nats-server; the CLI
 * runs against a third serf node. `mammatus.capacity` answers, launches spread over the nodes,
 * the live status comes back into the registry, and the faults of the compute issue: the same name
 * twice, an LXD error, a node that is not a compute node or has left, a node that returns after
 * its instances changed while it was away.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { surveyCapacity } from '../../agent/cli/placement.js';
import { runCli } from '../../agent/cli/program.js';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildRun } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { SerfClient } from '../../agent/serf/client.js';
import { buildComputeRole } from '../../roles/compute/index.js';
import { openComputeRegistry } from '../../src/registry/compute-link.js';
import { serveNodeWrites } from '../../src/registry/node-writes.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { eventually } from '../../scripts/lib/wait.js';
import { startLxdSim, type LxdSim } from '../helpers/lxd-sim.js';

const skip = (serfAvailable() ? undefined : 'serf is missing') ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`compute placement test skipped: ${skip}`);

interface ComputeNode {
  name: string;
  serf: SerfAgent;
  sim: LxdSim;
  agent?: Agent;
  configPath: string;
}

describe.skipIf(Boolean(skip))('compute: choosing a node, live status, faults (simulated LXD, real serf and NATS)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-place-'));
  const log = pino({ level: 'silent' });
  let nats: NatsServer;
  let entry: SerfAgent;
  const nodes: ComputeNode[] = [];
  let registry: InstanceRegistry;
  let nc: Awaited<ReturnType<typeof connectNats>>;
  const node = (name: string) => nodes.find((n) => n.name === name)!;

  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(
      ['--rpc-addr', entry.rpcAddr, '--credentials', nats.credentialsFile, ...argv],
      { out: (l) => void out.push(l), err: (l) => void err.push(l) },
      {},
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  async function startAgent(n: ComputeNode): Promise<void> {
    const opts = { path: n.configPath, env: {} };
    const identity = { node: n.name, credentials: await nats.admit(n.name, ['compute']) };
    n.agent = createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log,
      run: buildRun(),
      files: buildFileOps(),
      roles: {
        compute: buildComputeRole({
          instanceFeed: (servers, onChange, l) => openComputeRegistry(servers, onChange, l, identity),
          pollMs: 300,
          lxd: { requestTimeoutMs: 2000, operationTimeoutMs: 2000 },
        }),
      },
      version: '0.0.0-test',
    });
    await n.agent.start();
  }

  async function startNode(name: string, spec?: SerfAgent['spec'] & { bindPort?: number; rpcPort?: number }): Promise<ComputeNode> {
    const dir = path.join(tmp, name);
    const serf = await startSerfAgent(spec ?? { name, dir: path.join(dir, 'serf'), tags: { role: 'compute' } });
    const existing = nodes.find((n) => n.name === name);
    const sim = existing?.sim ?? (await startLxdSim());
    const configPath = path.join(dir, 'agent.yaml');
    writeFileSync(
      configPath,
      [
        `state_dir: ${path.join(dir, 'state')}`,
        `serf: { rpc_addr: "${serf.rpcAddr}" }`,
        'dispatch: { query_timeout: 2s }',
        'watch_config: false',
        `roles: { compute: { parent: lan0, lxd: { socket: ${sim.socketPath} }, registry: { nats: ["${nats.url}"] }, paths: { preseed: ${path.join(dir, 'etc/preseed.yaml')} } } }`,
        '',
      ].join('\n'),
    );
    const n: ComputeNode = existing ?? { name, serf, sim, configPath };
    n.serf = serf;
    if (!existing) nodes.push(n);
    await startAgent(n);
    return n;
  }

  const join = async (agent: SerfAgent) => {
    const c = await SerfClient.connect({ addr: entry.rpcAddr });
    await c.join([agent.bindAddr]);
    c.close();
  };
  const launch = (name: string, ...extra: string[]) =>
    cli('instance', 'launch', name, '--image', 'debian-12', '--nats', nats.url, ...extra);

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'n1', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    registry = await InstanceRegistry.open(nc);
    // The controllers' write API for compute nodes (what a controller hosts).
    serveNodeWrites(nc, async () => registry, log);
    entry = await startSerfAgent({ name: 'ops', dir: path.join(tmp, 'ops'), tags: { role: '' } });
    for (const name of ['cn1', 'cn2']) await join((await startNode(name)).serf);
    // Ready: both agents tagged, and both compute roles following the registry.
    await eventually(async () => {
      const c = await SerfClient.connect({ addr: entry.rpcAddr });
      const members = await c.members().finally(() => c.close());
      expect(
        members
          .filter((m) => m.tags.mammatus)
          .map((m) => m.name)
          .sort(),
      ).toEqual(['cn1', 'cn2']);
    });
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) await n.agent?.stop();
    for (const n of nodes) await n.serf.stop();
    for (const n of nodes) await n.sim.close();
    await entry?.stop();
    await nc?.close().catch(() => undefined);
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('every compute node answers mammatus.capacity; other nodes stay silent', async () => {
    const c = await SerfClient.connect({ addr: entry.rpcAddr });
    try {
      const answers = await eventually(async () => {
        const got: Record<string, Record<string, unknown>> = {};
        for await (const r of await c.query({ name: 'mammatus.capacity', timeoutMs: 1500 })) {
          if (r.type === 'response') got[r.from] = JSON.parse(r.payload.toString()) as Record<string, unknown>;
        }
        expect(Object.keys(got).sort()).toEqual(['cn1', 'cn2']);
        expect(got.cn1).toMatchObject({ ready: true });
        return got;
      });
      expect(answers.cn2).toMatchObject({ node: 'cn2', ready: true, instances: 0, running: 0 });
      expect(answers.cn2.cpus).toBeGreaterThan(0);
      expect(answers.cn2.mem_available_mb).toBeGreaterThan(0);
    } finally {
      c.close();
    }
  });

  it('ten --node checks at once through one serf agent all get their answer, though serf gives some two queries one LTime', async () => {
    // Serf stamps a query with its clock before advancing it: concurrent queries can share an
    // LTime, and the sending agent then drops every reply to all but one of them (and logs this).
    const collisions = () =>
      readFileSync(entry.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('query reply ID mismatch')).length;
    const before = collisions();
    const missed: string[] = [];
    let slowest = 0;
    let rounds = 0;
    for (; rounds < 30 && (rounds < 8 || collisions() - before < 2); rounds++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const target = i % 2 ? 'cn2' : 'cn1';
          const started = Date.now();
          const s = await surveyCapacity({ rpcAddr: entry.rpcAddr }, { node: target, timeoutMs: 2000 });
          slowest = Math.max(slowest, Date.now() - started);
          return s.answers.has(target) ? undefined : `round ${rounds}: ${target} (${Date.now() - started} ms)`;
        }),
      );
      missed.push(...results.filter((r) => r !== undefined));
    }
    expect(missed, `unanswered in ${rounds} rounds of 10; slowest answer ${slowest} ms`).toEqual([]);
    if (collisions() === before) console.warn(`no LTime collision arose in ${rounds} rounds: the second ask was not exercised`);
  });

  it('launch without --node spreads instances over the ready nodes; each is created and its live status recorded', async () => {
    const placed: string[] = [];
    for (const name of ['a1', 'a2', 'a3', 'a4']) {
      const r = await launch(name);
      expect(r.code, r.err).toBe(0);
      placed.push((await registry.get(name)).node!);
    }
    expect(placed.filter((n) => n === 'cn1')).toHaveLength(2);
    expect(placed.filter((n) => n === 'cn2')).toHaveLength(2);
    await eventually(async () => {
      for (const name of ['a1', 'a2', 'a3', 'a4']) expect((await registry.get(name)).observed?.status).toBe('running');
    });
    expect(node('cn1').sim.instances.size + node('cn2').sim.instances.size).toBe(4);
    const list = await cli('instance', 'list', '--nats', nats.url);
    expect(list.out).toMatch(/^NAME\s+ID\s+NODE\s+MAC\s+IP\s+STATE\s+STATUS$/m);
    expect(list.out).toMatch(/^a1\s.*\srunning\s+running$/m);
  });

  it("mammatus status shows each compute node's instances and unknown containers", async () => {
    node('cn1').sim.instances.set('by-hand', { name: 'by-hand', config: {}, profiles: ['default'], status: 'Stopped', ips: [] });
    await eventually(async () => {
      const st = await cli('status');
      expect(st.out).toMatch(/^ {2}cn1 compute: 3 instances \(2 running\), 1 unmanaged$/m);
      expect(st.out).toMatch(/^ {2}cn2 compute: 2 instances \(2 running\)$/m);
    });
    node('cn1').sim.instances.delete('by-hand');
  });

  it('the same name twice: the second launch fails and the first instance is untouched', async () => {
    const before = await registry.get('a1');
    const r = await launch('a1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: name a1 is already used by i-[0-9a-f]{17}$/);
    expect(await registry.get('a1')).toEqual(before);
  });

  it('an LXD error is recorded on the instance and shown by list and show; delete still cleans up', async () => {
    const r = await cli('instance', 'launch', 'bad', '--image', 'missing', '--node', 'cn1', '--nats', nats.url);
    expect(r.code, r.err).toBe(0);
    await eventually(async () =>
      expect((await registry.get('bad')).observed).toMatchObject({
        status: 'error',
        error: expect.stringMatching(/^create: .*Image alias not found/),
      }),
    );
    const list = await cli('instance', 'list', '--nats', nats.url);
    expect(list.out).toMatch(/^bad\s.*\srunning\s+error$/m);
    expect(list.out).toMatch(/^ {2}! bad: create: .*Image alias not found/m);
    expect((await cli('instance', 'show', 'bad', '--nats', nats.url)).out).toMatch(/^error: {7}create: /m);
    // --wait ends at the node's error, not at its timeout.
    const waited = await cli('instance', 'launch', 'bad2', '--image', 'missing', '--node', 'cn1', '--nats', nats.url, '--wait', '30s');
    expect(waited.code).toBe(1);
    expect(waited.err).toMatch(/^error: bad2: create: .*Image alias not found/m);
    expect((await cli('instance', 'delete', 'bad2', '--nats', nats.url)).code).toBe(0);
    expect((await cli('instance', 'delete', 'bad', '--nats', nats.url)).code).toBe(0);
    await eventually(async () => expect(await registry.find('bad')).toBeUndefined());
  });

  it('--node must name an alive compute node', async () => {
    const notCompute = await launch('x1', '--node', 'ops');
    expect(notCompute).toMatchObject({ code: 1, err: 'error: cannot launch on ops: does not have the compute role' });
    const unknown = await launch('x1', '--node', 'nowhere');
    expect(unknown).toMatchObject({ code: 1, err: 'error: cannot launch on nowhere: not a member of the cluster' });
    expect(await registry.find('x1')).toBeUndefined();
  });

  it('a node that left: its instances show it, launches avoid it, and it catches up when it returns', async () => {
    const cn2 = node('cn2');
    const onCn2 = (await registry.list()).filter((r) => r.node === 'cn2').map((r) => r.name);
    await cn2.agent!.stop();
    await cn2.serf.stop(); // a graceful leave
    await eventually(async () =>
      expect((await cli('instance', 'list', '--nats', nats.url)).out).toMatch(new RegExp(`^${onCn2[0]}\\s.*\\snode left$`, 'm')),
    );
    const refused = await launch('x2', '--node', 'cn2');
    expect(refused).toMatchObject({ code: 1, err: 'error: cannot launch on cn2: not alive (serf: left)' });
    expect((await launch('x2')).code).toBe(0);
    expect((await registry.get('x2')).node).toBe('cn1');
    // While it is away, one of its instances is stopped and another deleted (the records say so).
    expect((await cli('instance', 'stop', onCn2[0], '--nats', nats.url)).code).toBe(0);
    expect((await cli('instance', 'delete', onCn2[1], '--nats', nats.url)).code).toBe(0);
    // It returns (same ports, same LXD): the restart reconcile brings LXD to the records.
    const back = await startNode('cn2', { ...cn2.serf.spec, bindPort: cn2.serf.bindPort, rpcPort: cn2.serf.rpcPort });
    await join(back.serf);
    await eventually(async () => {
      expect(back.sim.instances.get(onCn2[0])?.status).toBe('Stopped');
      expect(back.sim.instances.has(onCn2[1])).toBe(false);
      expect(await registry.find(onCn2[1])).toBeUndefined();
      expect((await registry.get(onCn2[0])).observed?.status).toBe('stopped');
    });
  }, 60_000);

  it('without a serf agent, launch needs --node (and then warns that it could not check it)', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
    expect(
      await runCli(['--rpc-addr', '127.0.0.1:1', 'instance', 'launch', 'y1', '--image', 'debian-12', '--nats', nats.url], io, {}),
    ).toBe(1);
    expect(err.join('\n')).toMatch(/^error: choosing a compute node needs the local serf agent .*; or name one with --node$/);
    expect(
      await runCli(
        [
          '--rpc-addr',
          '127.0.0.1:1',
          '--credentials',
          nats.credentialsFile,
          'instance',
          'launch',
          'y1',
          '--image',
          'debian-12',
          '--node',
          'cn1',
          '--nats',
          nats.url,
        ],
        io,
        {},
      ),
    ).toBe(0);
    expect(err.join('\n')).toMatch(/warning: cannot check cn1 with serf .*recording the launch anyway/);
  });
});
