/**
 * The CA buckets, `mammatus ca init|status` and the node signing service against a real nats-server
 * with the real permissions (scripts/lib/nats-server.ts renders roles/controller/permissions.ts):
 * a node gets a certificate for its own names only, whatever it asks.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_SIGN_SUBJECT, type CaSignAnswer } from '../../../core/ca.js';
import { connectNats } from '../../../core/nats.js';
import { readCredentials } from '../../../core/trust.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { certFingerprint, makeNodeKeyAndCsr, splitPemCerts } from '../../../src/ca/pki.js';
import { nodeCertLifetime, serveCaSign } from '../../../src/ca/sign-service.js';
import { CaStore, fetchCaPublic } from '../../../src/ca/store.js';
import { Roster } from '../../../src/trust/roster.js';
import { cliRunner } from '../../helpers/run-cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let credentials: string[] = [];
const cli = cliRunner(() => credentials);
let natsUrl = '';
const run = (...argv: string[]) => cli(...argv, '--nats', natsUrl);
const log = pino({ level: 'silent' });

async function ask(nc: NatsConnection, node: string, body: unknown): Promise<CaSignAnswer> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  const msg = await nc.request(`${CA_SIGN_SUBJECT}.${node}`, data, { timeout: 3000 });
  return msg.json<CaSignAnswer>();
}

describe.skipIf(!natsServerAvailable())('the CA on JetStream', () => {
  let nats: NatsServer;
  let admin: NatsConnection;
  let nodeA: NatsConnection;
  let service: { close(): void };
  let credsB: Awaited<ReturnType<NatsServer['admit']>>;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'ca', dir: path.join(tmp, 'nats') });
    natsUrl = nats.url;
    credentials = ['--credentials', nats.credentialsFile];
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
    const a = await nats.admit('node-a', ['compute']);
    credsB = await nats.admit('node-b', ['gateway']);
    nodeA = await connectNats(nats.url, { name: 'node-a', credentials: a });
    service = serveCaSign(admin, { addresses: (n) => (n === 'node-a' ? ['127.0.0.1'] : []), lifetimeMs: () => 120_000, log });
  });
  afterAll(async () => {
    service?.close();
    await nodeA?.close();
    await admin?.close();
    await nats?.stop();
  });

  it('answers "no CA yet" before ca init, and ca status says so', async () => {
    const { csrPem } = await makeNodeKeyAndCsr('node-a');
    expect(await ask(nodeA, 'node-a', { csr: csrPem })).toEqual({ ok: false, error: 'the cluster has no CA yet (mammatus ca init)' });
    const st = await run('ca', 'status');
    expect(st.code).toBe(1);
    expect(st.err).toMatch(/no CA yet: mammatus ca init/);
  });

  it('ca init makes the CA, keeps the root key off the cluster with --root-key-out, refuses to overwrite without --force', async () => {
    const keyFile = path.join(tmp, 'root.key');
    const r = await run('ca', 'init', '--root-key-out', keyFile, '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { fingerprint: string; root_key: string; pinned?: string };
    expect(out.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(out.root_key).toBe(keyFile);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    // The admin (a controller) pins the new root in its own credentials.
    expect(out.pinned).toBe(nats.credentialsFile);
    expect((await readCredentials(nats.credentialsFile))?.ca_fingerprint).toBe(out.fingerprint);
    const store = (await CaStore.bind(admin))!;
    expect((await store.keyParts())?.rootKey).toBeUndefined();
    const pub = (await store.publicParts())!;
    expect(certFingerprint(pub.root)).toBe(out.fingerprint);

    const again = await run('ca', 'init');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already has a CA \(root [0-9a-f]{64}\); --force replaces it/);
    expect((await store.publicParts())!.fingerprint).toBe(out.fingerprint);
    // --root-key-out never overwrites a file.
    expect((await run('ca', 'init', '--force', '--root-key-out', keyFile)).code).toBe(2);

    const st = await run('ca', 'status', '--json');
    expect(st.code).toBe(0);
    const status = JSON.parse(st.out) as {
      fingerprint: string;
      root: { subject: string };
      intermediate: { issuer: string };
      nodes: unknown;
    };
    expect(status).toMatchObject({ fingerprint: out.fingerprint, root: { subject: 'CN=mammatus root CA' }, nodes: null });
    expect(status.intermediate.issuer).toBe('CN=mammatus root CA');
  });

  it('ca init --force replaces the CA and stores the root key when not taken off', async () => {
    const before = (await fetchCaPublic(admin))!.fingerprint;
    const r = await run('ca', 'init', '--force');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/root fingerprint \(SHA-256\): [0-9a-f]{64}/);
    expect(r.out).toMatch(/admit every node again/);
    const after = (await fetchCaPublic(admin))!;
    expect(after.fingerprint).not.toBe(before);
    expect((await (await CaStore.bind(admin))!.keyParts())?.rootKey).toMatch(/BEGIN PRIVATE KEY/);
  });

  it('node admit pins the root in the credentials it mints', async () => {
    await Roster.open(admin);
    const out = path.join(tmp, 'cn-7.json');
    const r = await run('node', 'admit', 'cn-7', '--role', 'compute', '--out', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const creds = await readCredentials(out);
    expect(creds?.ca_fingerprint).toBe((await fetchCaPublic(admin))!.fingerprint);
  });

  it('lets any admitted node read mammatus-ca, and no non-controller mammatus-ca-keys', async () => {
    const b = await connectNats(nats.url, { name: 'node-b', credentials: credsB });
    try {
      const pub = await fetchCaPublic(b);
      expect(pub?.fingerprint).toBe((await fetchCaPublic(admin))!.fingerprint);
      // Binding is lazy: the first read of the keys bucket is what the server refuses.
      await expect((await CaStore.bind(b))!.keyParts()).rejects.toThrow(/permission|timeout|TIMEOUT/i);
      await expect((await CaStore.bind(b))!.intermediate()).rejects.toThrow(/permission|timeout|TIMEOUT/i);
      // ca status reads only the public bucket: a gateway's credentials will do.
      const file = await nats.trust.writeCredentials(credsB, path.join(tmp, 'node-b.json'));
      const st = await cliRunner(() => ['--credentials', file])('ca', 'status', '--json', '--nats', natsUrl);
      expect(st, st.err).toMatchObject({ code: 0 });
      expect((JSON.parse(st.out) as { fingerprint: string }).fingerprint).toBe(pub?.fingerprint);
    } finally {
      await b.close();
    }
  });

  it("signs node A's own CSR; the chain verifies up to the root", async () => {
    const pub = (await fetchCaPublic(admin))!;
    const { csrPem } = await makeNodeKeyAndCsr('node-a', ['127.0.0.1']);
    const answer = await ask(nodeA, 'node-a', { csr: csrPem });
    if (!answer.ok) throw new Error(answer.error);
    const [leaf, inter] = splitPemCerts(answer.chain).map((p) => new X509Certificate(p));
    const root = new X509Certificate(pub.root);
    expect(leaf.subject).toBe('CN=node-a.mammatus');
    expect(leaf.checkIssued(inter) && leaf.verify(inter.publicKey)).toBe(true);
    expect(inter.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const life = Date.parse(answer.not_after) - Date.now();
    expect(life).toBeGreaterThan(100_000);
    expect(life).toBeLessThanOrEqual(120_000);
  });

  it("refuses node A asking for B: by the subject permission, and by the CSR's names on its own subject", async () => {
    const forB = await makeNodeKeyAndCsr('node-b');
    // A may not publish on B's subject at all: the server drops it, no answer comes.
    await expect(ask(nodeA, 'node-b', { csr: forB.csrPem })).rejects.toThrow(/permission|timeout|TIMEOUT|no responders/i);
    // On its own subject, a CSR for B's names is refused by the service.
    const answer = await ask(nodeA, 'node-a', { csr: forB.csrPem });
    expect(answer).toEqual({ ok: false, error: 'the CSR subject CN=node-b.mammatus is not node-a.mammatus' });
    // An address that is not node-a's.
    const ip = await makeNodeKeyAndCsr('node-a', ['10.9.9.9']);
    expect(await ask(nodeA, 'node-a', { csr: ip.csrPem })).toMatchObject({ ok: false, error: expect.stringMatching(/IP 10.9.9.9/) });
  });

  it('answers bad requests with a clear error and bounds their size', async () => {
    expect(await ask(nodeA, 'node-a', 'not json')).toEqual({ ok: false, error: 'request is not JSON' });
    expect(await ask(nodeA, 'node-a', { csr: 'garbage' })).toEqual({
      ok: false,
      error: 'the CSR is not a PEM PKCS#10 certificate request',
    });
    expect(await ask(nodeA, 'node-a', { csr: 'x', extra: 1 })).toEqual({ ok: false, error: 'request: unknown field extra' });
    expect(await ask(nodeA, 'node-a', { csr: 'x'.repeat(100_000) })).toEqual({ ok: false, error: 'request larger than 8192 bytes' });
    // The service still answers after all that.
    const { csrPem } = await makeNodeKeyAndCsr('node-a');
    expect((await ask(nodeA, 'node-a', { csr: csrPem })).ok).toBe(true);
  });
});

describe('the node certificate lifetime', () => {
  it('comes from roles.controller.ca.node_cert_lifetime, the environment overriding it (tests), else 24 h', () => {
    expect(nodeCertLifetime(undefined, {})).toBe(24 * 3600_000);
    expect(nodeCertLifetime('30m', {})).toBe(30 * 60_000);
    expect(nodeCertLifetime('30m', { MAMMATUS_CA_NODE_CERT_LIFETIME: '12s' })).toBe(12_000);
    expect(nodeCertLifetime('30m', { MAMMATUS_CA_NODE_CERT_LIFETIME: '1s' })).toBe(10_000);
    expect(nodeCertLifetime('30m', { MAMMATUS_CA_NODE_CERT_LIFETIME: 'soon' })).toBe(30 * 60_000);
  });
});
