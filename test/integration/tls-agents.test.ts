/**
 * TLS on NATS through the real agents (issue 20): a controller (serf, its agent, its nats-server)
 * gets a CA from `mammatus ca init`; once its agent holds the node certificate the controller role
 * renders TLS into nats.conf and restarts nats-server with it; every connection of ours (the agent's
 * services, a node agent admitted afterwards, the CLI) is then over TLS (the server's connz says so),
 * a plain client is refused, and two renewals (12 s lifetime) reach nats-server as reloads while a
 * subscription stays connected.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../core/nats.js';
import { CREDENTIALS_FILE, readCredentials, type NodeCredentials } from '../../core/trust.js';
import type { StatusAnswer } from '../../handlers/status.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { natsServedSerial } from '../../scripts/lib/tls-test-pki.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`TLS agents test skipped: ${skip}`);

/** The node certificate lifetime the controller issues with (MAMMATUS_CA_NODE_CERT_LIFETIME). */
const LIFETIME = '12s';

interface Connz {
  connections: { name?: string; tls_version?: string; cid: number }[];
}

describe.skipIf(Boolean(skip))('NATS over TLS between the agents: turned on by the first certificate, reloaded at each renewal', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-tls-agents-'));
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  const ctlDir = path.join(root, 'ctl-1');
  const ctlTls = path.join(ctlDir, 'agent', 'state', 'tls');
  let ctlSerf: SerfAgent;
  let natsUrl = '';
  let natsPort = 0;
  let monitor = 0;
  let ctlCreds = '';
  let admin: NodeCredentials;

  const cli = async (...args: string[]) =>
    exec(process.execPath, [BUNDLE, '--rpc-addr', ctlSerf.rpcAddr, '--credentials', ctlCreds, ...args], { timeout: 30_000 }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    );
  const tlsOf = async (name: string): Promise<NonNullable<StatusAnswer['tls']>> => {
    const r = await cli('status', '--json');
    const rows = JSON.parse(r.out) as { node: string; answer: StatusAnswer | null }[];
    const tls = rows.find((x) => x.node === name)?.answer?.tls;
    if (!tls?.not_after) throw new Error(`${name}: no certificate yet (${JSON.stringify(tls)})`);
    return tls;
  };
  const rootPem = () => readFileSync(path.join(ctlTls, 'ca.crt'), 'utf8');
  const connz = async () => (await (await fetch(`http://127.0.0.1:${monitor}/connz`)).json()) as Connz;

  beforeAll(async () => {
    ctlSerf = await startSerfAgent({ name: 'ctl-1', dir: path.join(ctlDir, 'serf'), tags: { role: 'controller' } });
    serfs.push(ctlSerf);
    ctlCreds = path.join(ctlDir, 'agent', 'state', CREDENTIALS_FILE);
    expect((await cli('node', 'admit', 'ctl-1', '--role', 'controller')).err).toMatch(/created a new cluster authority/);
    const [client, cluster, md] = [await freePort(), await freePort(), await freePort()];
    monitor = await freePort();
    natsPort = client;
    natsUrl = `nats://127.0.0.1:${client}`;
    const q = JSON.stringify;
    const yaml = [
      'watch_config: false',
      'trust: { allow_plain_serf: true }',
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${q(path.join(ctlDir, 'nats'))}, binary: nats-server }`,
      `    paths: { nats_conf: ${q(path.join(ctlDir, 'nats.conf'))}, members: ${q(path.join(ctlDir, 'members'))}, roster: ${q(path.join(ctlDir, 'roster.json'))}, firewall: ${q(path.join(ctlDir, 'firewall.rules'))} }`,
      // The agent's own files (its state_dir is not the default /var/lib/mammatus here).
      `    tls: { cert: ${q(path.join(ctlTls, 'node.crt'))}, key: ${q(path.join(ctlTls, 'node.key'))}, ca: ${q(path.join(ctlTls, 'ca.crt'))} }`,
      '    firewall: { enabled: false }',
      // Not the ACME backend: its default data directory (/var/lib/mammatus/ca/data) is shared with
      // whatever else runs caddy on this machine, whose bbolt lock would make it (and the role) fail.
      // Node certificates come from the agents' signing service, which runs without it.
      '    ca: { enabled: false }',
      `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${'cd'.repeat(32)}" }`,
    ].join('\n');
    agents.push(
      await startMammatusAgent({
        dir: path.join(ctlDir, 'agent'),
        rpcAddr: ctlSerf.rpcAddr,
        extraYaml: yaml,
        env: { ...process.env, MAMMATUS_CA_NODE_CERT_LIFETIME: LIFETIME },
      }),
    );
    await eventually(async () => {
      const r = await cli('ca', 'init', '--json', '--nats', natsUrl);
      if (r.code !== 0) throw new Error(r.err);
    }, 30_000);
    admin = (await readCredentials(ctlCreds))!;
    // A node admitted after the CA (its credentials pin the root), with a role that follows NATS.
    const file = path.join(root, 'node-1.json');
    const admit = await eventually(async () => {
      const r = await cli('node', 'admit', 'node-1', '--role', ',', '--out', file, '--nats', natsUrl);
      if (r.code !== 0) throw new Error(r.err);
      return r;
    }, 30_000);
    expect(admit.code).toBe(0);
    const nodeSerf = await startSerfAgent({ name: 'node-1', dir: path.join(root, 'node-1', 'serf') });
    serfs.push(nodeSerf);
    await exec('serf', ['join', `-rpc-addr=${nodeSerf.rpcAddr}`, ctlSerf.bindAddr], { timeout: 10_000 });
    agents.push(
      await startMammatusAgent({
        dir: path.join(root, 'node-1', 'agent'),
        rpcAddr: nodeSerf.rpcAddr,
        credentials: (await readCredentials(file))!,
        extraYaml: `trust: { allow_plain_serf: true }\nroles: { storage: { registry: { nats: ["${natsUrl}"] } } }`,
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('the first certificate turns TLS on: nats.conf serves it, a plain client is refused, ours verify it', async () => {
    await eventually(() => tlsOf('ctl-1'), 30_000);
    await eventually(() => expect(readFileSync(path.join(ctlDir, 'nats.conf'), 'utf8')).toMatch(/"cert_file"/), 30_000);
    await eventually(() => natsServedSerial(natsPort, rootPem()), 30_000);
    await expect(connectNats(natsUrl, { name: 'plain', credentials: admin, tls: 'plain', timeoutMs: 2000 })).rejects.toThrow();
    const nc = await eventually(
      () => connectNats(natsUrl, { name: 'tls', credentials: admin, tls: { ca: rootPem() }, timeoutMs: 2000 }),
      20_000,
    );
    await nc.close();
  }, 60_000);

  it('the node agent gets its certificate through the TLS server, and every connection is TLS', async () => {
    // Its admission carried the root: ca.crt is there before its first connection, which verifies.
    expect((await readCredentials(path.join(root, 'node-1.json')))?.ca_root).toBe(rootPem());
    await eventually(() => tlsOf('node-1'), 45_000);
    // The CLI itself (root beside its credentials) talks TLS too.
    const st = await cli('ca', 'status', '--json', '--nats', natsUrl);
    expect(st, st.err).toMatchObject({ code: 0 });
    const conns = await eventually(async () => {
      const c = (await connz()).connections;
      if (c.length < 3) throw new Error(`only ${c.length} connections`);
      // The metadata service runs as a child process: the root reached it after it had started plain.
      if (!c.some((x) => x.name === 'mammatus-metadata')) throw new Error('the metadata service is not connected');
      return c;
    }, 30_000);
    expect(conns.filter((c) => !c.tls_version)).toEqual([]);
  }, 90_000);

  it('two renewals reload nats-server (new serial served) while a subscription stays connected', async () => {
    const nc = await connectNats(natsUrl, { name: 'watcher', credentials: admin, tls: { ca: rootPem() }, timeoutMs: 3000 });
    const events: string[] = [];
    (async () => {
      for await (const s of nc.status()) events.push(s.type);
    })().catch(() => undefined);
    const got: string[] = [];
    nc.subscribe('tls.renew.watch', { callback: (_e, m) => void got.push(m.string()) });
    await nc.flush();
    const start = (await tlsOf('ctl-1')).issued ?? 0;
    const serials = new Set([await natsServedSerial(natsPort, rootPem())]);
    for (let round = 1; round <= 2; round++) {
      await eventually(
        async () => {
          if (((await tlsOf('ctl-1')).issued ?? 0) < start + round) throw new Error('not renewed yet');
          serials.add(await natsServedSerial(natsPort, rootPem()));
          if (serials.size < round + 1) throw new Error('nats-server still serves the old certificate');
        },
        30_000,
        500,
      );
      const pub = await connectNats(natsUrl, { name: 'pub', credentials: admin, tls: { ca: rootPem() }, timeoutMs: 3000 });
      pub.publish('tls.renew.watch', `round ${round}`);
      await pub.flush();
      await pub.close();
      await eventually(() => expect(got).toContain(`round ${round}`), 10_000);
    }
    expect(serials.size).toBe(3);
    expect(events.filter((e) => e === 'disconnect' || e === 'reconnect')).toEqual([]);
    expect(nc.isClosed()).toBe(false);
    await nc.close();
  }, 90_000);
});
