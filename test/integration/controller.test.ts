/**
 * The controller role end to end: three real serf agents and three real mammatus agents (the
 * bundle), each running its own nats-server. Every node has a loopback address of its own
 * (127.0.0.2-4: Linux routes all of 127/8 to lo), so the routes built from Serf addresses are right
 * with the default ports, as on a real LAN. One controller runs JetStream alone; the second and third
 * join and every server routes to the others; an R3 bucket takes writes; a killed nats-server comes
 * back; with one whole controller stopped the other two still take writes.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerfClient } from '../../agent/serf/client.js';
import { signFor } from '../helpers/metadata-sign.js';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { TestTrust, natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { skipReason } from './harness.js';
import { readCredentials, type NodeCredentials } from '../../core/trust.js';
import { connectNats } from '../../core/nats.js';
import { eventually } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);
const SECRET = Buffer.alloc(32, 5);
const AKID = 'AKIDCONTROLLERTEST';
const SECRET_KEY = 'controller-test-secret';
const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
const PORTS = [4222, 6222, 8222, 8775, 9324] as const;
// Debian puts nats-server in /usr/sbin, which a non-root PATH often lacks.
const NATS_BIN = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p)) ?? 'nats-server';

/** Can this machine bind every port the test needs on every node address? A reason when not. */
async function cannotBind(): Promise<string | undefined> {
  for (const ip of IPS) {
    for (const port of PORTS) {
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        const srv = net.createServer();
        srv.once('error', (e) => resolve(e));
        srv.listen(port, ip, () => srv.close(() => resolve(undefined)));
      });
      if (err?.code === 'EADDRNOTAVAIL') return `cannot bind ${ip} (this kernel does not route 127.0.0.0/8 to lo)`;
      if (err) return `${ip}:${port} is busy (${err.code}); the test needs the default NATS ports on 127.0.0.2-4`;
    }
  }
  return undefined;
}

const skip =
  skipReason() ??
  (natsServerAvailable() ? undefined : 'nats-server is not installed (apt-get install nats-server)') ??
  (await cannotBind());
if (skip) console.warn(`controller tests skipped: ${skip}`);

interface Node {
  readonly name: string;
  readonly ip: string;
  readonly dir: string;
  serf: SerfAgent;
  agent: MammatusAgent;
}

describe.skipIf(Boolean(skip))('the controller role: NATS JetStream clustered from Serf membership', () => {
  let root = '';
  const nodes: Node[] = [];
  const serfs: SerfAgent[] = [];
  const natsPids = new Set<number>();
  const monitor = (n: Node, p: string) =>
    fetch(`http://${n.ip}:8222${p}`).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
  const natsUrl = (n: Node) => `nats://${n.ip}:4222`;
  // One authority for the cluster; each controller is admitted with it, tests connect as `admin`.
  const trust = new TestTrust();
  const creds = new Map<string, NodeCredentials>();
  /** A controller's credentials file (what its agent runs with). */
  const credsFile = (n: Node) => path.join(n.dir, 'agent', 'state', 'credentials.json');

  async function withNats<T>(n: Node, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
    const nc = await connect({
      servers: natsUrl(n),
      timeout: 3000,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(creds.get(n.name)!.seed)),
    });
    try {
      return await fn(nc);
    } finally {
      await nc.close();
    }
  }

  /** The PID of the nats-server the node's agent started last (from its log). */
  function natsPid(n: Node): number {
    const started = n.agent.logLines().filter((l) => l.msg === 'nats-server started');
    const pid = started.at(-1)?.nats_pid;
    if (typeof pid !== 'number') throw new Error(`${n.name}: no nats-server started yet`);
    natsPids.add(pid);
    return pid;
  }

  async function startNode(k: number): Promise<Node> {
    const name = `ctl-${k + 1}`;
    const ip = IPS[k];
    const dir = path.join(root, name);
    const serf = await startSerfAgent({ name, dir: path.join(dir, 'serf'), tags: { role: 'controller' }, bindIp: ip });
    serfs.push(serf); // stopped in afterAll even if its agent fails to start
    if (nodes.length > 0) {
      const first = await SerfClient.connect({ addr: nodes[0].serf.rpcAddr });
      try {
        await first.join([serf.bindAddr]);
      } finally {
        first.close();
      }
    }
    const files = path.join(dir, 'controller');
    const agent = await startMammatusAgent({
      dir: path.join(dir, 'agent'),
      rpcAddr: serf.rpcAddr,
      credentials: creds.get(name) ?? creds.set(name, trust.mint(name, ['controller'])).get(name),
      extraYaml: [
        'watch_config: false',
        // Serf here runs without encryption and RPC auth (test-auth.test.ts covers the refusal).
        'trust: { allow_plain_serf: true }',
        // The host's own firewall stays untouched (the firewall has a test in a network namespace).
        'roles:',
        '  controller:',
        `    nats: { listen: "${ip}:4222", cluster_listen: "${ip}:6222", monitor_listen: "${ip}:8222", store_dir: ${JSON.stringify(path.join(files, 'nats'))}, binary: ${JSON.stringify(NATS_BIN)} }`,
        `    paths: { nats_conf: ${JSON.stringify(path.join(files, 'nats-server.conf'))}, members: ${JSON.stringify(path.join(files, 'members'))}, roster: ${JSON.stringify(path.join(files, 'roster.json'))}, firewall: ${JSON.stringify(path.join(files, 'firewall.rules'))} }`,
        '    firewall: { enabled: false }',
        // The hosted metadata service; its registry wants three replicas, so it is readable once
        // three controllers form the cluster (and 503 before).
        `metadata: { listen: "${ip}:8775", proxy_secret: "${SECRET.toString('hex')}", registry_replicas: 3 }`,
        // The SQS/SNS API on the 2nd and 3rd controller only (R3 streams cannot exist on a lone
        // server; the role retries the service at its next reconcile, when the third one joins).
        ...(k > 0
          ? [
              `messaging: { listen: "${ip}:9324", replicas: 3, credentials: [{ access_key_id: ${AKID}, secret_access_key: ${SECRET_KEY} }] }`,
            ]
          : []),
      ].join('\n'),
    });
    const node: Node = { name, ip, dir, serf, agent };
    nodes.push(node);
    return node;
  }

  /** server_id of every node, from the monitor. */
  async function serverIds(of: readonly Node[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for (const n of of) ids.set(n.name, String((await monitor(n, '/varz')).body.server_id));
    return ids;
  }

  beforeAll(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ctl-'));
    await startNode(0);
  });

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.agent.stop()));
    await Promise.allSettled(serfs.map((serf) => serf.stop()));
    // The agents stop their nats-servers; make sure by PID, never by name.
    for (const pid of natsPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone, as it should be
      }
    }
    if (root && !process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('runs JetStream on a lone controller: healthz ok, a KV bucket works, status says ok', async () => {
    const [n1] = nodes as [Node];
    await eventually(async () => expect((await monitor(n1, '/healthz?js-enabled-only=true')).status).toBe(200));
    natsPid(n1);
    const varz = (await monitor(n1, '/varz')).body as { server_name: string; cluster: Record<string, unknown>; max_payload: number };
    expect(varz.server_name).toBe('ctl-1');
    expect(varz.cluster).toEqual({}); // standalone: one controller has no cluster block
    expect(varz.max_payload).toBe(2 * 1024 * 1024);
    const value = await withNats(n1, async (nc) => {
      const kv = await new Kvm(nc).create('solo', { replicas: 1 });
      await kv.put('greeting', 'hello');
      return (await kv.get('greeting'))?.string();
    });
    expect(value).toBe('hello');
    const { stdout } = await exec(process.execPath, [BUNDLE, '--rpc-addr', n1.serf.rpcAddr, 'status', '--json'], { timeout: 30_000 });
    const rows = JSON.parse(stdout) as { node: string; answer: { role_status: Record<string, { state: string }> } }[];
    expect(rows[0].answer.role_status.controller?.state).toBe('ok');
    // The hosted metadata service is up; its R3 registry cannot exist on a lone server yet.
    await eventually(async () => expect((await fetch(`http://${n1.ip}:8775/healthz`)).status).toBe(503));
  });

  it('clusters the second and third controller: every server routes to the two others, an R3 bucket takes writes', async () => {
    await startNode(1);
    await startNode(2);
    const ids = await eventually(() => serverIds(nodes));
    for (const n of nodes) {
      await eventually(async () => {
        const routez = (await monitor(n, '/routez')).body as { routes: { remote_id: string }[] };
        const others = nodes.filter((o) => o !== n).map((o) => ids.get(o.name));
        expect(new Set(routez.routes.map((r) => r.remote_id))).toEqual(new Set(others));
      });
    }
    // Every rendered config names the other two controllers' Serf addresses at port 6222 (NATS
    // gossips routes too, so /routez may be complete a moment before a node's file is).
    for (const n of nodes) {
      await eventually(async () => {
        const text = readFileSync(path.join(n.dir, 'controller', 'nats-server.conf'), 'utf8');
        const conf = JSON.parse(text.replace(/^#.*\n/, '')) as { cluster: { name: string; routes: string[] } };
        expect(conf.cluster.name).toBe('mammatus');
        // Each route carries the route secret (user:password@), the same on every controller.
        expect(conf.cluster.routes.map((r) => r.replace(/\/\/mammatus-route:[^@]+@/, '//'))).toEqual(
          nodes.filter((o) => o !== n).map((o) => `nats-route://${o.ip}:6222`),
        );
      });
    }
    for (const n of nodes) await eventually(async () => expect((await monitor(n, '/healthz?js-server-only=true')).status).toBe(200));
    const info = await eventually(() =>
      withNats(nodes[0], async (nc) => {
        const kv = await new Kvm(nc).create('tri', { replicas: 3 });
        await kv.put('k', 'v1');
        return (await kv.status()).streamInfo;
      }),
    );
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas?.length).toBe(2);
    const read = await withNats(nodes[2], async (nc) => (await (await new Kvm(nc).open('tri')).get('k'))?.string());
    expect(read).toBe('v1');
    // Every controller's metadata service reads the one registry: an instance registered through
    // the first controller's NATS is served by the third.
    for (const n of nodes) await eventually(async () => expect((await fetch(`http://${n.ip}:8775/healthz`)).status).toBe(200), 45_000);
    await exec(
      process.execPath,
      [
        BUNDLE,
        '--credentials',
        credsFile(nodes[0]),
        'instance',
        'register',
        'web-1',
        '--mac',
        '02:00:00:00:00:21',
        '--ip',
        '10.20.0.21',
        '--nats',
        natsUrl(nodes[0]),
      ],
      { timeout: 30_000 },
    );
    await eventually(async () => {
      const url = '/latest/meta-data/local-hostname';
      const res = await fetch(`http://${nodes[2].ip}:8775${url}`, {
        headers: signFor(SECRET, `http://${nodes[2].ip}:8775`, url, { ip: '10.20.0.21', mac: '02:00:00:00:00:21' }, Date.now()),
      });
      expect(await res.text()).toBe('web-1');
    });
    // The SQS API hosted by two controllers: a message sent through one is received through the other.
    const sqs = (n: Node) =>
      new SQSClient({
        endpoint: `http://${n.ip}:9324`,
        region: 'us-east-1',
        credentials: { accessKeyId: AKID, secretAccessKey: SECRET_KEY },
      });
    const url = await eventually(async () => (await sqs(nodes[1]).send(new CreateQueueCommand({ QueueName: 'jobs' }))).QueueUrl!, 45_000);
    await sqs(nodes[1]).send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'hello from ctl-2' }));
    // Each controller's API starts on its own once JetStream can hold R3 streams: wait for ctl-3's.
    const got = await eventually(
      () => sqs(nodes[2]).send(new ReceiveMessageCommand({ QueueUrl: url.replace(nodes[1].ip, nodes[2].ip), WaitTimeSeconds: 5 })),
      45_000,
    );
    expect(got.Messages?.[0]?.Body).toBe('hello from ctl-2');
    // nats-server 2.9 keeps a bucket made by a lone server out of the cluster it later joins
    // (docs/controller.md): the stream is not found until someone creates it again.
    await withNats(nodes[1], async (nc) =>
      expect((await jetstreamManager(nc)).streams.info('KV_solo')).rejects.toThrow(/stream not found/),
    );
  });

  it('admits a node through one controller and every controller lets it in; revoked, every controller drops it within 5 s', async () => {
    const file = path.join(root, 'gw-x.json');
    await exec(
      process.execPath,
      [
        BUNDLE,
        '--credentials',
        credsFile(nodes[0]),
        'node',
        'admit',
        'gw-x',
        '--role',
        'gateway',
        '--out',
        file,
        '--nats',
        natsUrl(nodes[0]),
      ],
      { timeout: 30_000 },
    );
    const gw = (await readCredentials(file))!;
    // The roster is replicated; each controller renders the new user from its own copy.
    const conns = await Promise.all(
      nodes.map((n) => eventually(() => connectNats(natsUrl(n), { name: 'gw-x', timeoutMs: 2000, credentials: gw }), 15_000)),
    );
    const closed = conns.map((nc) => nc.closed().then(() => performance.now()));
    const dropped = conns.map(
      (nc) =>
        new Promise<number>((resolve) => {
          void (async () => {
            for await (const s of nc.status()) if (s.type === 'disconnect') return resolve(performance.now());
          })().catch(() => undefined);
        }),
    );
    const t0 = performance.now();
    await exec(process.execPath, [BUNDLE, '--credentials', credsFile(nodes[2]), 'node', 'revoke', 'gw-x', '--nats', natsUrl(nodes[2])], {
      timeout: 30_000,
    });
    const times = await Promise.all(dropped.map((p, i) => Promise.race([p, closed[i]])));
    const worst = Math.max(...times) - t0;
    console.log(`revoked gw-x: dropped by all ${nodes.length} controllers within ${Math.round(worst)} ms of \`node revoke\``);
    expect(worst).toBeLessThan(5000);
    for (const n of nodes) {
      await expect(connectNats(natsUrl(n), { name: 'gw-x-again', timeoutMs: 10_000, credentials: gw })).rejects.toThrow(
        /Authorization Violation/,
      );
    }
    await Promise.all(conns.map((nc) => nc.close().catch(() => undefined)));
  });

  it('restarts a nats-server that was SIGKILLed; writes go on through the others meanwhile', async () => {
    const n3 = nodes[2];
    const pid = natsPid(n3);
    process.kill(pid, 'SIGKILL');
    const killed = Date.now();
    // If the dead server led the bucket's stream, a write waits for the two others to elect a new
    // leader (a few seconds); then it succeeds while the third is still down or restarting.
    await eventually(() =>
      withNats(nodes[0], async (nc) => {
        const kv = await new Kvm(nc).open('tri', { timeout: 2000 });
        await kv.put('k', 'v2');
        expect((await kv.get('k'))?.string()).toBe('v2');
      }),
    );
    console.log(`write accepted ${Date.now() - killed} ms after SIGKILL of ctl-3's nats-server`);
    await n3.agent.waitForLog((l) => l.msg === 'nats-server exited; restarting it');
    await eventually(async () => expect(natsPid(n3)).not.toBe(pid));
    await eventually(async () => {
      const value = await withNats(n3, async (nc) => (await (await new Kvm(nc).open('tri')).get('k'))?.string());
      expect(value).toBe('v2');
    });
  });

  it('with one whole controller stopped, the two others still take writes', async () => {
    const n3 = nodes[2];
    const pid = natsPid(n3);
    await n3.agent.stop();
    // The agent stopped its nats-server on the way out.
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    const stopped = Date.now();
    for (const [i, n] of [nodes[0], nodes[1]].entries()) {
      await eventually(() =>
        withNats(n, async (nc) => {
          const kv = await new Kvm(nc).open('tri', { timeout: 2000 });
          await kv.put('k', `after-stop-${i}`);
          expect((await kv.get('k'))?.string()).toBe(`after-stop-${i}`);
        }),
      );
    }
    console.log(`writes on both remaining controllers within ${Date.now() - stopped} ms of stopping ctl-3`);
    // The registry keeps serving with two of three servers.
    await eventually(async () => {
      const url = '/latest/meta-data/instance-id';
      const res = await fetch(`http://${nodes[1].ip}:8775${url}`, {
        headers: signFor(SECRET, `http://${nodes[1].ip}:8775`, url, { ip: '10.20.0.21', mac: '02:00:00:00:00:21' }, Date.now()),
      });
      expect(res.status).toBe(200);
    });
  });
});
