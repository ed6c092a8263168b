/**
 * Node certificates end to end (issue 20): a real controller (serf, its agent, its nats-server)
 * gets a CA from `mammatus ca init`; a node admitted afterwards (its credentials pin the root) gets
 * its certificate over `mammatus.ca.sign.<node>` from the controller's agent and renews it twice
 * with a lifetime of seconds; `mammatus status` and `mammatus ca status` show it, the files check
 * out with node:crypto.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREDENTIALS_FILE, readCredentials, type NodeCredentials } from '../../core/trust.js';
import type { StatusAnswer } from '../../handlers/status.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';
import { certFingerprint } from '../../src/ca/pki.js';

const exec = promisify(execFile);
const skip = skipReason() ?? (natsServerAvailable() ? undefined : 'nats-server is missing');
if (skip) console.warn(`CA node certificate test skipped: ${skip}`);

/** The node certificate lifetime the controller issues with (MAMMATUS_CA_NODE_CERT_LIFETIME). */
const LIFETIME = '12s';

describe.skipIf(Boolean(skip))('node certificates: issued by the controllers, renewed at 2/3 of their lifetime', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-it-'));
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  let ctlSerf: SerfAgent;
  let natsUrl = '';
  let ctlCreds = '';
  let fingerprint = '';
  let node: NodeCredentials;

  const cli = async (...args: string[]) =>
    exec(process.execPath, [BUNDLE, '--rpc-addr', ctlSerf.rpcAddr, '--credentials', ctlCreds, ...args], { timeout: 30_000 }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    );
  const statusOf = async (name: string): Promise<StatusAnswer> => {
    const r = await cli('status', '--json');
    const rows = JSON.parse(r.out) as { node: string; answer: StatusAnswer | null }[];
    const a = rows.find((x) => x.node === name)?.answer;
    if (!a) throw new Error(`${name} did not answer`);
    return a;
  };

  beforeAll(async () => {
    ctlSerf = await startSerfAgent({ name: 'ctl-1', dir: path.join(root, 'ctl-1', 'serf'), tags: { role: 'controller' } });
    serfs.push(ctlSerf);
    const dir = path.join(root, 'ctl-1');
    ctlCreds = path.join(dir, 'agent', 'state', CREDENTIALS_FILE);
    expect((await cli('node', 'admit', 'ctl-1', '--role', 'controller')).err).toMatch(/created a new cluster authority/);
    const [client, cluster, monitor, md] = [await freePort(), await freePort(), await freePort(), await freePort()];
    natsUrl = `nats://127.0.0.1:${client}`;
    const yaml = [
      'watch_config: false',
      // Loopback lab: plain gossip, no RPC key (test/integration/trust.test.ts covers those).
      'trust: { allow_plain_serf: true }',
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${JSON.stringify(path.join(dir, 'nats'))}, binary: nats-server }`,
      `    paths: { nats_conf: ${JSON.stringify(path.join(dir, 'nats.conf'))}, members: ${JSON.stringify(path.join(dir, 'members'))}, roster: ${JSON.stringify(path.join(dir, 'roster.json'))}, firewall: ${JSON.stringify(path.join(dir, 'firewall.rules'))} }`,
      '    firewall: { enabled: false }',
      // No CA backend here (ca-controller.test.ts runs one): its files would go to /var/lib/mammatus/ca.
      '    ca: { enabled: false }',
      `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${'cd'.repeat(32)}" }`,
    ].join('\n');
    agents.push(
      await startMammatusAgent({
        dir: path.join(dir, 'agent'),
        rpcAddr: ctlSerf.rpcAddr,
        extraYaml: yaml,
        env: { ...process.env, MAMMATUS_CA_NODE_CERT_LIFETIME: LIFETIME },
      }),
    );
    // The CA, made with the controller's credentials (which then pin it).
    const init = await eventually(async () => {
      const r = await cli('ca', 'init', '--json', '--nats', natsUrl);
      if (r.code !== 0) throw new Error(r.err);
      return r;
    }, 30_000);
    fingerprint = (JSON.parse(init.out) as { fingerprint: string }).fingerprint;
    // A node with no role, admitted after the CA: its credentials carry the pin.
    const file = path.join(root, 'node-1.json');
    const admit = await cli('node', 'admit', 'node-1', '--role', ',', '--out', file, '--nats', natsUrl);
    expect(admit, admit.err).toMatchObject({ code: 0 });
    node = (await readCredentials(file))!;
    const nodeSerf = await startSerfAgent({ name: 'node-1', dir: path.join(root, 'node-1', 'serf') });
    serfs.push(nodeSerf);
    await exec('serf', ['join', `-rpc-addr=${nodeSerf.rpcAddr}`, ctlSerf.bindAddr], { timeout: 10_000 });
    agents.push(
      await startMammatusAgent({
        dir: path.join(root, 'node-1', 'agent'),
        rpcAddr: nodeSerf.rpcAddr,
        credentials: node,
        // Where it finds the controllers' NATS (loopback test: not the default port 4222).
        extraYaml: `trust: { allow_plain_serf: true }\nroles: { storage: { registry: { nats: ["${natsUrl}"] } } }`,
      }),
    );
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('admission pinned the root, and the controller pinned it too', async () => {
    expect(node.ca_fingerprint).toBe(fingerprint);
    expect((await readCredentials(ctlCreds))?.ca_fingerprint).toBe(fingerprint);
    // Both carry the root itself (checked against the pin when read): the node never has to learn
    // it over a connection it cannot verify yet.
    expect(certFingerprint(node.ca_root!)).toBe(fingerprint);
    expect((await readCredentials(ctlCreds))?.ca_root).toBe(node.ca_root);
  });

  it('the node gets its certificate, renews it twice, and its files check out', async () => {
    const first = await eventually(async () => {
      const tls = (await statusOf('node-1')).tls;
      if (!tls?.not_after) throw new Error(`no certificate yet: ${JSON.stringify(tls)}`);
      return tls;
    }, 30_000);
    expect(first.last_error).toBeNull();
    // Two renewals: at about 8 s each for a 12 s certificate.
    const renewed = await eventually(async () => {
      const tls = (await statusOf('node-1')).tls;
      if ((tls?.issued ?? 0) < 3) throw new Error(`issued ${tls?.issued}`);
      return tls!;
    }, 45_000);
    expect(renewed.last_error).toBeNull();
    expect(Date.parse(renewed.not_after!)).toBeGreaterThan(Date.parse(first.not_after!));
    expect(Date.parse(renewed.renew_at!)).toBeLessThan(Date.parse(renewed.not_after!));

    const tls = path.join(root, 'node-1', 'agent', 'state', 'tls');
    expect(statSync(path.join(tls, 'node.key')).mode & 0o777).toBe(0o600);
    const rootCert = new X509Certificate(readFileSync(path.join(tls, 'ca.crt')));
    expect(rootCert.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(fingerprint);
    const chain = readFileSync(path.join(tls, 'node.crt'), 'utf8');
    const [leafPem, interPem] = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!;
    const leaf = new X509Certificate(leafPem);
    const inter = new X509Certificate(interPem);
    expect(leaf.subject).toBe('CN=node-1.mammatus');
    // The controller and node-1 share 127.0.0.1 here: an address two members claim goes in neither's certificate.
    expect(leaf.checkIP('127.0.0.1')).toBeUndefined();
    expect(leaf.verify(inter.publicKey) && inter.verify(rootCert.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(path.join(tls, 'node.key'))))).toBe(true);
  }, 90_000);

  it('the controller has its own certificate, and ca status lists both by next renewal', async () => {
    await eventually(async () => {
      const tls = (await statusOf('ctl-1')).tls;
      if (!tls?.not_after) throw new Error('no certificate yet');
    }, 30_000);
    const r = await cli('ca', 'status', '--json', '--nats', natsUrl);
    expect(r, r.err).toMatchObject({ code: 0 });
    const st = JSON.parse(r.out) as { fingerprint: string; nodes: { node: string; renew_at: string | null }[] };
    expect(st.fingerprint).toBe(fingerprint);
    expect(st.nodes.map((n) => n.node).sort()).toEqual(['ctl-1', 'node-1']);
    expect(st.nodes.every((n) => n.renew_at !== null)).toBe(true);
    const text = await cli('ca', 'status', '--nats', natsUrl);
    expect(text.out).toMatch(/root {10}CN=mammatus root CA, valid until/);
    expect(text.out).toMatch(/NODE\s+EXPIRES\s+RENEWS\s+LAST ERROR/);
  }, 60_000);
});
