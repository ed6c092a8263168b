/**
 * The node certificate keeper (agent/certs.ts) against a real nats-server with the real
 * permissions and the controllers' signing service: files and modes, the pinned root, renewal at
 * two thirds of a short lifetime, failures kept in the status, a restart taking up the files.
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
import { inspectCert, makeIntermediate, makeRoot } from '../../src/ca/pki.js';
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
  let lifetime = 3000;
  const keepers: NodeCertificates[] = [];

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'certs', dir: path.join(tmp, 'nats') });
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
    const root = await makeRoot();
    fingerprint = (await (await CaStore.open(admin)).write(root.certPem, await makeIntermediate(root))).fingerprint;
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
      ...over,
    });
    keepers.push(k);
    return k;
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
    const creds = { ...(await nats.admit('gw-1', ['gateway'])), ca_fingerprint: fingerprint };
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
      const creds = { ...(await nats.admit('gw-9', ['gateway'])), ca_fingerprint: fingerprint };
      const dir = path.join(tmp, 'gw-9');
      const k = keeper('gw-9', creds, dir);
      k.start();
      const first = await until(() => k.status()?.not_after ?? undefined);
      k.stop();
      const again = keeper('gw-9', creds, dir);
      again.start();
      const s = await until(() => again.status());
      expect(s).toMatchObject({ not_after: first, issued: 0, last_error: null });
      again.stop();
    } finally {
      lifetime = 3000;
    }
  });

  it('refuses a root that is not the pinned one, and says so in its status', async () => {
    const creds = { ...(await nats.admit('cn-1', ['compute'])), ca_fingerprint: 'a'.repeat(64) };
    const dir = path.join(tmp, 'cn-1');
    const k = keeper('cn-1', creds, dir);
    k.start();
    const s = await until(() => k.status());
    expect(s).toMatchObject({ not_after: null, renew_at: null });
    expect(s.last_error).toMatch(/is not the one pinned at admission \(aaaaaaaaaaaaaaaa…\)/);
    expect(await buildFileOps().read(tlsPaths(dir).cert)).toBeUndefined();
  });

  it('needs a pin unless it is a controller', async () => {
    const creds = await nats.admit('st-1', ['storage']);
    const k = keeper('st-1', creds, path.join(tmp, 'st-1'));
    k.start();
    expect((await until(() => k.status())).last_error).toMatch(/no CA fingerprint was pinned at admission/);
    const ctl = keeper('admin', nats.credentials, path.join(tmp, 'admin'));
    ctl.start();
    expect(await until(() => ctl.status()?.not_after ?? undefined)).toBeTruthy();
  });

  it('keeps a refusal as last_error (a name the controllers do not sign)', async () => {
    const creds = { ...(await nats.admit('gw-2', ['gateway'])), ca_fingerprint: fingerprint };
    // The member list says another address: the CSR's IP is not one of the node's.
    const k = keeper('gw-2', creds, path.join(tmp, 'gw-2'), { members: () => [member('gw-2', '10.1.2.3')] });
    k.start();
    expect((await until(() => k.status())).last_error).toMatch(/the controllers refused: the CSR asks for IP 10.1.2.3/);
  });

  it('reports unreachable controllers only where TLS is expected (a pinned root)', async () => {
    const closed = () => ['nats://127.0.0.1:1'];
    const pinned = { ...nats.trust.mint('gw-4', ['gateway']), ca_fingerprint: fingerprint };
    const k = keeper('gw-4', pinned, path.join(tmp, 'gw-4'), { servers: closed });
    k.start();
    expect((await until(() => k.status())).last_error).toMatch(/refused|ECONNREFUSED/i);
    k.stop();
    const unpinned = nats.trust.mint('gw-5', ['gateway']);
    const quiet = keeper('gw-5', unpinned, path.join(tmp, 'gw-5'), { servers: closed });
    quiet.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect(quiet.status()).toBeUndefined();
    quiet.stop();
  });

  it('stays silent while the cluster has no CA', async () => {
    const other = await startNatsServer({ name: 'noca', dir: path.join(tmp, 'noca'), trust: nats.trust });
    try {
      const creds = { ...nats.trust.mint('gw-3', ['gateway']), ca_fingerprint: fingerprint };
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
