/**
 * The cluster CA wired end to end on a real controller (issue 20), with our own PKI: serf, the
 * agent, its nats-server; `mammatus ca init` stores the CA, the agent's ca-files service writes the
 * CA files (the key 0600, owned by `caddy`), the controller role notices them and starts Debian's
 * caddy as the CA backend, and the ACME directory answers over TLS to a client trusting only the
 * root and checking the name `ca.mammatus`. The controller's own node certificate has the lifetime
 * `roles.controller.ca.node_cert_lifetime` sets, and the controller's metadata service (its child
 * process) puts the root into an instance's vendor-data (cloud-init `ca_certs`). ACME http-01 issuance with this PKI is proven in
 * network namespaces by ca-acme.test.ts (its PKI is `ca init`'s).
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../core/nats.js';
import { CREDENTIALS_FILE, readCredentials } from '../../core/trust.js';
import { findPasswdUser } from '../../core/users.js';
import type { StatusAnswer } from '../../handlers/status.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { freePort } from '../../scripts/lib/ports.js';
import { startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { eventually, sleep } from '../../scripts/lib/wait.js';
import { makeRoot } from '../../src/ca/pki.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { signFor } from '../helpers/metadata-sign.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip =
  skipReason() ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (findOnPath('caddy') ? undefined : 'caddy is not installed (Debian package caddy)') ??
  (process.geteuid?.() === 0 ? undefined : 'needs root: the CA backend runs as the caddy user');
if (skip) console.warn(`CA controller end-to-end test skipped: ${skip}`);

/** GET `url` over TLS trusting only `ca`, checking the certificate's name against `servername`. */
function get(
  url: string,
  ca: string,
  servername: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; peer: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, servername, timeout: 3000, headers }, (res) => {
      let body = '';
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate(false)?.subjectaltname ?? '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(Boolean(skip))('the CA on a controller: ca init → files → caddy → ACME over TLS', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-ctl-'));
  // The caddy user must reach its files below here (as on a real controller's /var/lib/mammatus).
  chmodSync(root, 0o755);
  const caDir = path.join(root, 'ca');
  const paths = {
    root_cert: path.join(caDir, 'root.crt'),
    intermediate_cert: path.join(caDir, 'intermediate.crt'),
    intermediate_key: path.join(caDir, 'intermediate.key'),
    config: path.join(caDir, 'etc'),
    data_dir: path.join(caDir, 'data'),
  };
  const serfs: SerfAgent[] = [];
  const agents: MammatusAgent[] = [];
  let ctlSerf: SerfAgent;
  let ctlCreds = '';
  let natsUrl = '';
  let caPort = 0;
  let fingerprint = '';
  let mdBase = '';
  const proxySecret = 'ef'.repeat(32);

  const cli = async (...args: string[]) =>
    exec(process.execPath, [BUNDLE, '--rpc-addr', ctlSerf.rpcAddr, '--credentials', ctlCreds, ...args], { timeout: 30_000 }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: e.stdout ?? '', err: e.stderr ?? '' }),
    );

  beforeAll(async () => {
    mkdirSync(caDir, { mode: 0o755 });
    ctlSerf = await startSerfAgent({ name: 'ctl-1', dir: path.join(root, 'ctl-1', 'serf'), tags: { role: 'controller' } });
    serfs.push(ctlSerf);
    const dir = path.join(root, 'ctl-1');
    chmodSync(dir, 0o755);
    ctlCreds = path.join(dir, 'agent', 'state', CREDENTIALS_FILE);
    expect((await cli('node', 'admit', 'ctl-1', '--role', 'controller')).err).toMatch(/created a new cluster authority/);
    const [client, cluster, monitor, md] = [await freePort(), await freePort(), await freePort(), await freePort()];
    caPort = await freePort();
    // HTTPS once the controller holds its node certificate (TLS on internal links).
    mdBase = `https://127.0.0.1:${md}`;
    natsUrl = `nats://127.0.0.1:${client}`;
    const q = JSON.stringify;
    const yaml = [
      'watch_config: false',
      'trust: { allow_plain_serf: true }',
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${q(path.join(dir, 'nats'))}, binary: nats-server }`,
      `    paths: { nats_conf: ${q(path.join(dir, 'nats.conf'))}, members: ${q(path.join(dir, 'members'))}, roster: ${q(path.join(dir, 'roster.json'))}, firewall: ${q(path.join(dir, 'firewall.rules'))} }`,
      '    firewall: { enabled: false }',
      `    ca: { backend: caddy, listen: "127.0.0.1:${caPort}", node_cert_lifetime: 30m, paths: ${q(paths)} }`,
      `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${proxySecret}" }`,
    ].join('\n');
    // No MAMMATUS_CA_NODE_CERT_LIFETIME: the lifetime comes from the config.
    const { MAMMATUS_CA_NODE_CERT_LIFETIME: _unused, ...env } = process.env;
    void _unused;
    agents.push(await startMammatusAgent({ dir: path.join(dir, 'agent'), rpcAddr: ctlSerf.rpcAddr, extraYaml: yaml, env }));
    const init = await eventually(async () => {
      const r = await cli('ca', 'init', '--json', '--nats', natsUrl);
      if (r.code !== 0) throw new Error(r.err);
      return r;
    }, 30_000);
    fingerprint = (JSON.parse(init.out) as { fingerprint: string }).fingerprint;
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(serfs.map((s) => s.stop()));
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('the agent writes the CA files from the buckets: the pinned root, the key 0600 for caddy', async () => {
    await eventually(async () => {
      for (const p of [paths.root_cert, paths.intermediate_cert, paths.intermediate_key]) if (!existsSync(p)) throw new Error(`no ${p}`);
    }, 15_000);
    const rootCert = new X509Certificate(readFileSync(paths.root_cert));
    expect(rootCert.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(fingerprint);
    expect(new X509Certificate(readFileSync(paths.intermediate_cert)).verify(rootCert.publicKey)).toBe(true);
    const key = statSync(paths.intermediate_key);
    expect(key.mode & 0o777).toBe(0o600);
    const caddy = findPasswdUser(readFileSync('/etc/passwd', 'utf8'), 'caddy');
    if (caddy) expect(key.uid).toBe(caddy.uid);
  });

  it('the role starts caddy, and the ACME directory answers over TLS trusting only the root as ca.mammatus', async () => {
    const rootPem = readFileSync(paths.root_cert, 'utf8');
    const url = `https://127.0.0.1:${caPort}/acme/acme/directory`;
    // The role checks the files every 15 s, validates caddy with them, starts it and probes it.
    const r = await eventually(async () => {
      const res = await get(url, rootPem, 'ca.mammatus');
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      return res;
    }, 60_000);
    expect(JSON.parse(r.body)).toMatchObject({ newNonce: expect.stringContaining('/acme/acme/new-nonce') });
    expect(r.peer).toContain('DNS:ca.mammatus');
    // Trusting another certificate than the root fails; caddy has no certificate for another name.
    await expect(get(url, readFileSync(paths.intermediate_cert, 'utf8'), 'ca.mammatus')).rejects.toThrow();
    await expect(get(url, rootPem, 'example.com')).rejects.toThrow();
  }, 70_000);

  it("the controller's node certificate lives roles.controller.ca.node_cert_lifetime (30m)", async () => {
    const tls = await eventually(async () => {
      const r = await cli('status', '--json');
      const rows = JSON.parse(r.out) as { node: string; answer: StatusAnswer | null }[];
      const t = rows.find((x) => x.node === 'ctl-1')?.answer?.tls;
      if (!t?.not_after) throw new Error('no certificate yet');
      return t;
    }, 30_000);
    const chain = readFileSync(path.join(root, 'ctl-1', 'agent', 'state', 'tls', 'node.crt'), 'utf8');
    const leaf = new X509Certificate(chain);
    const minutes = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 60_000;
    // Backdated by up to a minute against clock skew.
    expect(minutes).toBeGreaterThanOrEqual(30);
    expect(minutes).toBeLessThanOrEqual(31);
    expect(Date.parse(tls.not_after!)).toBe(Date.parse(leaf.validTo));
    expect(leaf.subjectAltName).not.toMatch(/DNS:ctl-1(,|$)/);
  }, 40_000);

  it("puts the root into an instance's vendor-data: cloud-init ca_certs and the ACME directory", async () => {
    const creds = (await readCredentials(ctlCreds))!;
    const rootPem = readFileSync(paths.root_cert, 'utf8').trim();
    // The controller's NATS serves its node certificate (TLS on internal links): trust the root.
    const nc = await eventually(() => connectNats(natsUrl, { name: 'test', credentials: creds, tls: { ca: rootPem } }), 30_000);
    try {
      const registry = await InstanceRegistry.open(nc);
      await registry.register({ name: 'web-1', macs: ['02:00:00:00:00:51'], ips: ['10.9.0.51'] });
    } finally {
      await nc.close();
    }
    const doc = await eventually(async () => {
      const url = '/nocloud/vendor-data';
      const headers = signFor(Buffer.from(proxySecret, 'hex'), mdBase, url, { ip: '10.9.0.51', mac: '02:00:00:00:00:51' });
      const res = await get(`${mdBase}${url}`, rootPem, 'ctl-1.mammatus', headers);
      const text = res.body;
      if (res.status !== 200 || !text.includes('mammatus-ca.cfg')) throw new Error(`${res.status}: no CA part yet`);
      return text;
    }, 90_000);
    expect(doc).toContain('ca_certs:');
    // The root as cloud-config indents it, and verbatim in the script.
    expect(doc).toContain(rootPem.split('\n')[1]);
    expect(doc).toContain(`${rootPem}\nMAMMATUS_CA_PEM`);
    expect(doc).toContain("'https://ca.mammatus:9000/acme/acme/directory'");
  }, 100_000);

  it('ca rotate: a new intermediate under the same root reaches the CA files and caddy; a wrong root key is refused', async () => {
    const wrongKey = path.join(root, 'wrong-root.key');
    writeFileSync(wrongKey, (await makeRoot()).keyPem, { mode: 0o600 });
    const refused = await cli('ca', 'rotate', '--root-key', wrongKey, '--nats', natsUrl);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("is not the key of the cluster's root");
    const before = new X509Certificate(readFileSync(paths.intermediate_cert));

    const r = await cli('ca', 'rotate', '--json', '--nats', natsUrl);
    expect(r.err).toBe('');
    const out = JSON.parse(r.out) as { fingerprint: string; old_intermediate: { serial: string }; intermediate: { serial: string } };
    expect(out.fingerprint).toBe(fingerprint);
    expect(out.old_intermediate.serial.toLowerCase()).toBe(before.serialNumber.toLowerCase());
    expect(out.intermediate.serial).not.toBe(out.old_intermediate.serial);
    // The agent's ca-files service writes the new pair; the root file stays the pinned root.
    const after = await eventually(async () => {
      const c = new X509Certificate(readFileSync(paths.intermediate_cert));
      if (c.serialNumber.toLowerCase() !== out.intermediate.serial.toLowerCase()) throw new Error('old intermediate still on disk');
      return c;
    }, 20_000);
    const rootCert = new X509Certificate(readFileSync(paths.root_cert));
    expect(rootCert.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(fingerprint);
    expect(after.verify(rootCert.publicKey)).toBe(true);
    expect(after.checkPrivateKey(createPrivateKey(readFileSync(paths.intermediate_key)))).toBe(true);
    // The role restarts caddy with the new files (its poll runs every 15 s); clients trusting the root see no change.
    await sleep(16_000);
    const res = await eventually(async () => {
      const x = await get(`https://127.0.0.1:${caPort}/acme/acme/directory`, rootCert.toString(), 'ca.mammatus');
      if (x.status !== 200) throw new Error(`status ${x.status}`);
      return x;
    }, 40_000);
    expect(JSON.parse(res.body)).toHaveProperty('newOrder');
  }, 90_000);
});
