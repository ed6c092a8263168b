/**
 * A host's join end to end at a real controller (issue 19): serf with gossip encryption and an RPC
 * key, the controller's agent (its nats-server, its hosted services), `mammatus host register` and
 * `mammatus node join` as the bundled CLI, and a small HTTP server standing in for the metadata
 * service's join route. The controller agent's own host API answers with the gossip key its Serf
 * uses and its Serf address; the roster entry it writes reaches its nats-server's users, so the host
 * logs in with its own seed; the same secret a second time is refused.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_JOIN_SUBJECT } from '../../core/host-record.js';
import { connectNats } from '../../core/nats.js';
import { CREDENTIALS_FILE, readCredentials, type NodeCredentials } from '../../core/trust.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { JoinSecrets } from '../../src/hosts/joins.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`host join agent test skipped: ${skip}`);
const MAC = '52:54:00:00:02:01';

describe.skipIf(Boolean(skip))('host join at a real controller agent', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-hostjoin-agent-'));
  const rpcAuth = 'host-join-rpc-key';
  let gossipKey = '';
  let serf: SerfAgent;
  let agent: MammatusAgent;
  let natsUrl = '';
  let ctlCredsFile = '';
  let ctl: NodeCredentials;
  let nc: NatsConnection;
  let http: Server;
  let url = '';
  let hostId = '';

  const cli = (...args: string[]) =>
    exec(process.execPath, [BUNDLE, '--rpc-addr', serf.rpcAddr, '--rpc-auth', rpcAuth, '--credentials', ctlCredsFile, ...args], {
      timeout: 30_000,
    }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    );

  beforeAll(async () => {
    gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    serf = await startSerfAgent({
      name: 'ctl-1',
      dir: path.join(root, 'serf'),
      tags: { role: 'controller' },
      rpcAuth,
      encryptKey: gossipKey,
    });
    ctlCredsFile = path.join(root, 'agent', 'state', CREDENTIALS_FILE);
    expect((await cli('node', 'admit', 'ctl-1', '--role', 'controller')).code).toBe(0);
    ctl = (await readCredentials(ctlCredsFile))!;
    const [client, cluster, monitor, md] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const dir = path.join(root, 'ctl');
    natsUrl = `nats://127.0.0.1:${client}`;
    const yaml = [
      'watch_config: false',
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(path.join(dir, 'nats'))}, binary: nats-server }`,
      `    paths: { nats_conf: ${JSON.stringify(path.join(dir, 'nats.conf'))}, members: ${JSON.stringify(path.join(dir, 'members'))}, roster: ${JSON.stringify(path.join(dir, 'roster.json'))}, firewall: ${JSON.stringify(path.join(dir, 'firewall.rules'))} }`,
      '    firewall: { enabled: false }',
      `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${'cd'.repeat(32)}" }`,
    ].join('\n');
    agent = await startMammatusAgent({ dir: path.join(root, 'agent'), rpcAddr: serf.rpcAddr, rpcAuth, extraYaml: yaml });
    const reg = await eventually(async () => {
      const r = await cli('host', 'register', 'metal-1', '--mac', MAC, '--role', 'compute', '--nats', natsUrl);
      if (r.code !== 0) throw new Error(r.err);
      return r;
    }, 30_000);
    expect(reg.code).toBe(0);
    nc = await connectNats(natsUrl, { name: 'metadata-service', credentials: ctl });
    hostId = (await (await InstanceRegistry.open(nc, { bind: true })).get('metal-1')).id;
    // The metadata service's part, as the stand-in: the token, then the join for the MAC it resolved.
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'PUT') return void res.writeHead(200).end('token');
        const { secret, nkey, box } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>;
        nc.request(HOST_JOIN_SUBJECT, JSON.stringify({ host_id: hostId, mac: MAC, secret, nkey, box }), { timeout: 20_000 }).then(
          (m) => res.writeHead(200, { 'content-type': 'application/json' }).end(m.string()),
          (err: unknown) => res.writeHead(503).end(String(err)),
        );
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const a = http.address();
    url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }, 90_000);

  afterAll(async () => {
    await new Promise((r) => http?.close(r));
    await nc?.close().catch(() => undefined);
    await agent?.stop();
    await serf?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('joins with the Serf key and address of the controller; its own login works; a second join is refused', async () => {
    const secretFile = path.join(root, 'secret');
    writeFileSync(secretFile, (await (await JoinSecrets.open(nc)).get(hostId))!.secret, { mode: 0o600 });
    const dirs = (name: string) => [
      '--state-dir',
      path.join(root, name, 'state'),
      '--serf-config',
      path.join(root, name, 'serf.json'),
      '--serf-tags',
      path.join(root, name, 'tags.json'),
      '--agent-config',
      path.join(root, name, 'agent.yaml'),
    ];
    const joined = await cli('node', 'join', '--secret-file', secretFile, '--metadata-url', url, ...dirs('metal-1'), '--json');
    expect(joined, joined.err).toMatchObject({ code: 0 });
    const serfConfig = JSON.parse(readFileSync(path.join(root, 'metal-1', 'serf.json'), 'utf8')) as Record<string, unknown>;
    expect(serfConfig).toMatchObject({ encrypt_key: gossipKey, node_name: 'metal-1', retry_join: [serf.bindAddr] });
    const creds = (await readCredentials(path.join(root, 'metal-1', 'state', CREDENTIALS_FILE)))!;
    expect(creds).toMatchObject({ node: 'metal-1', roles: ['compute'], authority: ctl.authority });
    // The roster entry reached the controller's nats-server: the host logs in with its own seed.
    const asHost = await eventually(() => connectNats(natsUrl, { name: 'metal-1', timeoutMs: 2000, credentials: creds }), 15_000);
    expect((await (await InstanceRegistry.open(asHost, { bind: true })).get('metal-1')).host?.progress.joined).toBeDefined();
    await asHost.close();

    const again = await cli('node', 'join', '--secret-file', secretFile, '--metadata-url', url, ...dirs('other'));
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/refused the join: host metal-1 joined already/);
    expect(again.err + again.out + joined.out).not.toContain(readFileSync(secretFile, 'utf8'));
  }, 60_000);
});
