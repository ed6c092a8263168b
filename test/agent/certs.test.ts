/**
 * The node certificate keeper (agent/certs.ts) against a real nats-server with the real
 * permissions and the controllers' signing service: files and modes, the pinned root, renewal at
 * two thirds of a short lifetime, failures kept in the status, a restart taking up the files.
 * The servers here are plain: the keeper's connection is made plain on purpose, and the test checks
 * the TLS it asked for (the root from the credentials). TLS itself: certs-attack.test.ts and
 * test/integration/tls-agents.test.ts.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeCertificates, type NodeCertDeps } from '../../agent/certs.js';
import { backoffMs, certServers, renewAt, tlsPaths } from '../../agent/certs-plan.js';
import type { Member } from '../../core/contracts.js';
import { buildFileOps } from '../../core/files.js';
import { connectNats } from '../../core/nats.js';
import type { NodeCredentials } from '../../core/trust.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { certFingerprint, inspectCert, makeIntermediate, makeNodeKey, makeRoot } from '../../src/ca/pki.js';
import { serveCaSign } from '../../src/ca/sign-service.js';
import { CaStore } from '../../src/ca/store.js';

const log = pino({ level: 'silent' });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-certs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const member = (name: string, addr: string, role = '', trusted?: string[]): Member => ({
  name,
  addr,
  port: 7946,
  tags: role ? { role } : {},
  status: 'alive',
  ...(trusted ? { trusted } : {}),
});

describe('certificate decisions', () => {
  it('renews at 2/3 of the lifetime, ±10 %', () => {
    const from = new Date(0);
    const to = new Date(300_000);
    expect(renewAt(from, to, 0.5).getTime()).toBe(200_000);
    expect(renewAt(from, to, 0).getTime()).toBe(180_000);
    expect(renewAt(from, to, 0.999999).getTime()).toBeGreaterThan(219_000);
    expect(renewAt(from, to, 0.999999).getTime()).toBeLessThanOrEqual(220_000);
  });

  it('backs off from 2 s to 5 min, faster near expiry', () => {
    expect([1, 2, 3, 9, 50].map((n) => backoffMs(n))).toEqual([2000, 4000, 8000, 300_000, 300_000]);
    expect(backoffMs(9, 60_000)).toBe(6000);
    expect(backoffMs(1, 500)).toBe(1000);
  });

  it('asks its own server on a controller, a configured registry, else the admitted controllers', () => {
    const ctl = { roles: ['controller'] } as unknown as NodeCredentials;
    const cn = { roles: ['compute'] } as unknown as NodeCredentials;
    expect(certServers({}, ctl, [])).toEqual(['nats://127.0.0.1:4222']);
    expect(certServers({ controller: { nats: { listen: '10.0.0.1:4333' } } }, ctl, [])).toEqual(['nats://10.0.0.1:4333']);
    expect(certServers({ compute: { registry: { nats: ['nats://10.0.0.9:4222'] } } }, cn, [])).toEqual(['nats://10.0.0.9:4222']);
    const members = [member('c1', '10.0.0.2', 'controller', ['controller']), member('x', '10.0.0.3', 'controller', [])];
    expect(certServers({}, cn, members)).toEqual(['nats://10.0.0.2:4222']);
  });
});

describe.skipIf(!natsServerAvailable())('the node certificate keeper', () => {
  let nats: NatsServer;
  let admin: NatsConnection;
  let service: { close(): void };
  let fingerprint = '';
  /** What admission gives a node of this cluster: the root's fingerprint and the root. */
  let pin: { ca_fingerprint: string; ca_root: string };
  /** The TLS each keeper's connection asked for, by node. */
  const askedTls = new Map<string, unknown[]>();
  let lifetime = 3000;
  const keepers: NodeCertificates[] = [];

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'certs', dir: path.join(tmp, 'nats') });
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
    const root = await makeRoot();
    fingerprint = (await (await CaStore.open(admin)).write(root.certPem, await makeIntermediate(root))).fingerprint;
    pin = { ca_fingerprint: fingerprint, ca_root: `${root.certPem.trim()}\n` };
    service = serveCaSign(admin, { addresses: () => ['127.0.0.1'], lifetimeMs: () => lifetime, log });
  });
  afterAll(async () => {
    for (const k of keepers) k.stop();
    service?.close();
    await admin?.close();
    await nats?.stop();
  });

  function keeper(node: string, creds: NodeCredentials, stateDir: string, over: Partial<NodeCertDeps> = {}): NodeCertificates {
    const k = new NodeCertificates({
      files: buildFileOps(),
      stateDir: () => stateDir,
      node: () => node,
      credentials: () => creds,
      members: () => [member(node, '127.0.0.1')],
      servers: () => [nats.url],
      log,
      connect: (servers, c, tls) => {
        askedTls.set(node, [...(askedTls.get(node) ?? []), tls]);
        return connectNats(servers, { name: 'mammatus-certs', timeoutMs: 5000, credentials: c, tls: 'plain' });
      },
      ...over,
    });
    keepers.push(k);
    return k;
  }

  /**
   * The keeper's status once it means something: nats-server may apply the reload that lets a just
   * admitted node in after its first try (then the first status is an authorization failure).
   */
  function settled(k: NodeCertificates) {
    const s = k.status();
    return s && !/Authorization Violation/.test(s.last_error ?? '') ? s : undefined;
  }

  async function until<T>(check: () => T | undefined, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = check();
      if (v) return v;
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('gets a certificate for a pinned node, writes the files with their modes, and renews it twice', async () => {
    const creds = { ...(await nats.admit('gw-1', ['gateway'])), ...pin };
    const dir = path.join(tmp, 'gw-1');
    const k = keeper('gw-1', creds, dir);
    k.start();
    const p = tlsPaths(dir);
    const first = await until(() => k.status()?.not_after ?? undefined);
    expect(statSync(p.key).mode & 0o777).toBe(0o600);
    expect(statSync(p.cert).mode & 0o777).toBe(0o644);
    const leaf = inspectCert(
      await buildFileOps()
        .read(p.cert)
        .then((t) => t!),
    );
    expect(leaf.dnsNames).toEqual(['gw-1.mammatus']);
    expect(leaf.ips).toEqual(['127.0.0.1']);
    expect(inspectCert((await buildFileOps().read(p.ca))!).fingerprint).toBe(fingerprint);
    // Every connection asked to verify the server against the root the credentials carry.
    expect(new Set(askedTls.get('gw-1')!.map((t) => JSON.stringify(t)))).toEqual(new Set([JSON.stringify({ ca: pin.ca_root })]));
    const key = await buildFileOps().read(p.key);
    // Two renewals of a 3 s certificate, each at about 2 s.
    const s = await until(() => ((k.status()?.issued ?? 0) >= 3 ? k.status() : undefined));
    expect(s.last_error).toBeNull();
    expect(Date.parse(s.not_after!)).toBeGreaterThan(Date.parse(first));
    expect(Date.parse(s.renew_at!)).toBeLessThan(Date.parse(s.not_after!));
    // The key never changes: only the certificate is renewed.
    expect(await buildFileOps().read(p.key)).toBe(key);
    k.stop();
  });

  it('takes up valid files after a restart instead of asking again', async () => {
    lifetime = 600_000;
    try {
      const creds = { ...(await nats.admit('gw-9', ['gateway'])), ...pin };
      const dir = path.join(tmp, 'gw-9');
      const k = keeper('gw-9', creds, dir);
      k.start();
      const first = await until(() => k.status()?.not_after ?? undefined);
      k.stop();
      const again = keeper('gw-9', creds, dir);
      again.start();
      const s = await until(() => settled(again));
      expect(s).toMatchObject({ not_after: first, issued: 0, last_error: null });
      again.stop();
    } finally {
      lifetime = 3000;
    }
  });

  it('refuses a CA whose root is not the pinned one, and says so in its status', async () => {
    const another = (await makeRoot()).certPem;
    const creds = { ...(await nats.admit('cn-1', ['compute'])), ca_fingerprint: certFingerprint(another), ca_root: another };
    const dir = path.join(tmp, 'cn-1');
    const k = keeper('cn-1', creds, dir);
    k.start();
    const s = await until(() => settled(k));
    expect(s).toMatchObject({ not_after: null, renew_at: null });
    expect(s.last_error).toMatch(`is not the one pinned at admission (${creds.ca_fingerprint.slice(0, 16)}…)`);
    expect(await buildFileOps().read(tlsPaths(dir).cert)).toBeUndefined();
  });

  it('never connects with a pin but no root (credentials older than ca_root): re-admit', async () => {
    const creds = { ...(await nats.admit('st-2', ['storage'])), ca_fingerprint: fingerprint };
    const k = keeper('st-2', creds, path.join(tmp, 'st-2'));
    k.start();
    expect((await until(() => k.status())).last_error).toMatch(/do not carry it, and ca.crt does not hold it: re-admit the node/);
    k.stop();
    expect(askedTls.get('st-2')).toBeUndefined();
  });

  it('renews with a pin but no root when ca.crt holds the pinned root (a certificate from before ca_root)', async () => {
    const creds = { ...(await nats.admit('st-3', ['storage'])), ca_fingerprint: fingerprint };
    const dir = path.join(tmp, 'st-3');
    await buildFileOps().write(tlsPaths(dir).ca, pin.ca_root, 0o644);
    const k = keeper('st-3', creds, dir);
    k.start();
    await until(() => k.status()?.not_after ?? undefined);
    k.stop();
    expect(askedTls.get('st-3')![0]).toEqual({ ca: `${pin.ca_root.trim()}\n` });
  });

  it('needs a pin unless it is a controller', async () => {
    const creds = await nats.admit('st-1', ['storage']);
    const k = keeper('st-1', creds, path.join(tmp, 'st-1'));
    k.start();
    expect((await until(() => settled(k))).last_error).toMatch(/no CA fingerprint was pinned at admission/);
    const ctl = keeper('admin', nats.credentials, path.join(tmp, 'admin'));
    ctl.start();
    expect(await until(() => ctl.status()?.not_after ?? undefined)).toBeTruthy();
  });

  it('does not ask for an address another member claims (the controllers would refuse it)', async () => {
    lifetime = 600_000;
    try {
      const creds = { ...(await nats.admit('gw-8', ['gateway'])), ...pin };
      const dir = path.join(tmp, 'gw-8');
      const k = keeper('gw-8', creds, dir, { members: () => [member('gw-8', '127.0.0.1'), member('ctl', '127.0.0.1')] });
      k.start();
      await until(() => k.status()?.not_after ?? undefined);
      k.stop();
      const leaf = inspectCert((await buildFileOps().read(tlsPaths(dir).cert))!);
      expect(leaf.ips).toEqual([]);
    } finally {
      lifetime = 3000;
    }
  });

  it('says why a node name with capitals gets no certificate', async () => {
    const creds = { ...(await nats.admit('GW-11', ['gateway'])), ...pin };
    const k = keeper('GW-11', creds, path.join(tmp, 'GW-11'));
    k.start();
    const s = await until(() => settled(k));
    k.stop();
    expect(s.last_error).toMatch(/GW-11 has capitals: DNS names ignore case/);
  });

  it('tightens a node key left readable by others to 0600', async () => {
    const creds = { ...(await nats.admit('gw-12', ['gateway'])), ...pin };
    const dir = path.join(tmp, 'gw-12');
    const key = await makeNodeKey();
    await buildFileOps().write(tlsPaths(dir).key, key, 0o644);
    const k = keeper('gw-12', creds, dir);
    k.start();
    await until(() => k.status()?.not_after ?? undefined);
    k.stop();
    expect(statSync(tlsPaths(dir).key).mode & 0o777).toBe(0o600);
    expect(await buildFileOps().read(tlsPaths(dir).key)).toBe(key);
  });

  it('keeps a refusal as last_error (a name the controllers do not sign)', async () => {
    const creds = { ...(await nats.admit('gw-2', ['gateway'])), ...pin };
    // The member list says another address: the CSR's IP is not one of the node's.
    const k = keeper('gw-2', creds, path.join(tmp, 'gw-2'), { members: () => [member('gw-2', '10.1.2.3')] });
    k.start();
    expect((await until(() => settled(k))).last_error).toMatch(/the controllers refused: the CSR asks for IP 10.1.2.3/);
  });

  it('reports unreachable controllers only where TLS is expected (a pinned root)', async () => {
    const closed = () => ['nats://127.0.0.1:1'];
    const pinned = { ...nats.trust.mint('gw-4', ['gateway']), ...pin };
    const k = keeper('gw-4', pinned, path.join(tmp, 'gw-4'), { servers: closed });
    k.start();
    expect((await until(() => settled(k))).last_error).toMatch(/refused|ECONNREFUSED/i);
    k.stop();
    const unpinned = nats.trust.mint('gw-5', ['gateway']);
    const quiet = keeper('gw-5', unpinned, path.join(tmp, 'gw-5'), { servers: closed });
    quiet.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect(quiet.status()).toBeUndefined();
    quiet.stop();
  });

  it("trusts only the root its credentials carry; a controller without one refuses the bucket's bundle (a second root would be trusted too)", async () => {
    const other = await startNatsServer({ name: 'bundle', dir: path.join(tmp, 'bundle'), trust: nats.trust });
    try {
      const otherAdmin = await connectNats(other.url, { name: 'admin', credentials: other.credentials });
      const root = await makeRoot();
      const extra = await makeRoot({ commonName: 'someone else' });
      // The first certificate is the pinned one: its fingerprint matches, the second rides along.
      const bundlePin = (await (await CaStore.open(otherAdmin)).write(`${root.certPem}\n${extra.certPem}`, await makeIntermediate(root)))
        .fingerprint;
      const svc = serveCaSign(otherAdmin, { addresses: () => ['127.0.0.1'], lifetimeMs: () => 600_000, log });
      try {
        const creds = { ...nats.trust.mint('gw-6', ['gateway']), ca_fingerprint: bundlePin, ca_root: root.certPem };
        await other.reload();
        const node = keeper('gw-6', creds, path.join(tmp, 'gw-6'), { servers: () => [other.url] });
        node.start();
        await until(() => node.status()?.not_after ?? undefined);
        node.stop();
        expect(await buildFileOps().read(tlsPaths(path.join(tmp, 'gw-6')).ca)).toBe(`${root.certPem.trim()}\n`);
        const dir = path.join(tmp, 'ctl-6');
        const k = keeper('admin', other.credentials, dir, { servers: () => [other.url] });
        k.start();
        // The first tries may come before the reload lets the new user in: wait for a verdict on the root.
        const s = await until(() => {
          const st = k.status();
          return st && (st.not_after || /root holds/.test(st.last_error ?? '')) ? st : undefined;
        });
        k.stop();
        expect(s.last_error).toMatch(/root holds 2 certificates/);
        expect(await buildFileOps().read(tlsPaths(dir).ca)).toBeUndefined();
      } finally {
        svc.close();
        await otherAdmin.close();
      }
    } finally {
      await other.stop();
    }
  });

  it('does not renew in a tight loop when a new certificate is already due (clock ahead, intermediate expiring)', async () => {
    lifetime = 60_000;
    try {
      const creds = { ...(await nats.admit('gw-7', ['gateway'])), ...pin };
      // This node's clock runs 50 s ahead of the controller's: a 60 s certificate is due for renewal at once.
      const k = keeper('gw-7', creds, path.join(tmp, 'gw-7'), { now: () => new Date(Date.now() + 50_000) });
      k.start();
      await until(() => k.status()?.not_after ?? undefined);
      await new Promise((r) => setTimeout(r, 1500));
      const s = k.status()!;
      k.stop();
      // One issue, then a retry a second at most: never hundreds.
      expect(s.issued).toBeLessThanOrEqual(3);
      expect(s.last_error).toMatch(/due for renewal already/);
    } finally {
      lifetime = 3000;
    }
  });

  it('asks again at once when it is admitted again with a new root pinned (ca init --force), not at the next renewal', async () => {
    const other = await startNatsServer({ name: 'newca', dir: path.join(tmp, 'newca'), trust: nats.trust });
    try {
      const otherAdmin = await connectNats(other.url, { name: 'admin', credentials: other.credentials });
      const root = await makeRoot();
      const newPin = (await (await CaStore.open(otherAdmin)).write(root.certPem, await makeIntermediate(root))).fingerprint;
      const newRoot = root.certPem;
      const svc = serveCaSign(otherAdmin, { addresses: () => ['127.0.0.1'], lifetimeMs: () => 600_000, log });
      lifetime = 600_000;
      try {
        let creds = { ...(await nats.admit('gw-10', ['gateway'])), ...pin };
        let url = nats.url;
        await other.reload();
        const dir = path.join(tmp, 'gw-10');
        const k = keeper('gw-10', creds, dir, { credentials: () => creds, servers: () => [url] });
        k.start();
        await until(() => k.status()?.not_after ?? undefined);
        // The cluster's CA was replaced and this node admitted again: its credentials pin the new root.
        creds = { ...creds, ca_fingerprint: newPin, ca_root: newRoot };
        url = other.url;
        k.kick();
        await until(() => ((k.status()?.issued ?? 0) >= 2 ? true : undefined), 5000);
        k.stop();
        expect(inspectCert((await buildFileOps().read(tlsPaths(dir).ca))!).fingerprint).toBe(newPin);
      } finally {
        lifetime = 3000;
        svc.close();
        await otherAdmin.close();
      }
    } finally {
      await other.stop();
    }
  });

  it('stays silent while the cluster has no CA', async () => {
    const other = await startNatsServer({ name: 'noca', dir: path.join(tmp, 'noca'), trust: nats.trust });
    try {
      const creds = { ...nats.trust.mint('gw-3', ['gateway']), ...pin };
      await other.reload();
      const k = keeper('gw-3', creds, path.join(tmp, 'gw-3'), { servers: () => [other.url] });
      k.start();
      await new Promise((r) => setTimeout(r, 1000));
      expect(k.status()).toBeUndefined();
      k.stop();
    } finally {
      await other.stop();
    }
  });
});
