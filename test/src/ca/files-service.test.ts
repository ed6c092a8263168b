/**
 * The CA files on a controller (src/ca/files.ts, files-service.ts): the checks of a set, and the
 * hosted service against a real nats-server: the files appear after the CA is stored, follow a new
 * intermediate, and stay as they are when the buckets hold garbage or go away.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_BUCKET } from '../../../core/ca.js';
import type { HostedService } from '../../../core/contracts.js';
import { buildFileOps } from '../../../core/files.js';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { eventually } from '../../../scripts/lib/wait.js';
import { caFileWrites, checkCaFileSet, type CaFilePaths } from '../../../src/ca/files.js';
import { caFilesHostedService, syncCaFiles } from '../../../src/ca/files-service.js';
import { caRootCache, natsCaFetch } from '../../../src/metadata/vendor-data-root.js';
import { certFingerprint, makeIntermediate, makeRoot, type CertAndKey } from '../../../src/ca/pki.js';
import { CaStore, type CaPublic } from '../../../src/ca/store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const log = pino({ level: 'silent' });

const pathsIn = (dir: string): CaFilePaths => ({
  root_cert: path.join(dir, 'root.crt'),
  intermediate_cert: path.join(dir, 'intermediate.crt'),
  intermediate_key: path.join(dir, 'intermediate.key'),
});

describe('a CA set before it is written', () => {
  let root: CertAndKey;
  let inter: CertAndKey;
  let pub: CaPublic;
  beforeAll(async () => {
    root = await makeRoot();
    inter = await makeIntermediate(root);
    pub = { root: root.certPem, intermediate: inter.certPem, fingerprint: certFingerprint(root.certPem) };
  });

  it('is checked: fingerprint, signatures, the key, expiry', async () => {
    const keys = { intermediateKey: inter.keyPem };
    expect(checkCaFileSet(pub, keys).root).toBe(`${root.certPem}\n`.replace(/\n\n$/, '\n'));
    expect(() => checkCaFileSet({ ...pub, fingerprint: 'ab'.repeat(32) }, keys)).toThrow(/does not match its fingerprint/);
    expect(() => checkCaFileSet({ ...pub, root: 'garbage' }, keys)).toThrow(/root in mammatus-ca is not a PEM/);
    expect(() => checkCaFileSet({ ...pub, intermediate: root.certPem }, keys)).toThrow(/not the intermediate's/);
    expect(() => checkCaFileSet(pub, { intermediateKey: root.keyPem })).toThrow(/not the intermediate's/);
    expect(() => checkCaFileSet(pub, { intermediateKey: 'nope' })).toThrow(/not a PEM private key/);
    const other = await makeIntermediate(await makeRoot());
    expect(() => checkCaFileSet({ ...pub, intermediate: other.certPem }, keys)).toThrow(/not a CA signed by the root/);
    expect(() => checkCaFileSet(pub, keys, new Date(Date.now() + 2 * 365 * 24 * 3600_000))).toThrow(/intermediate expired/);
  });

  it('writes only what differs, and the key again when its mode is wrong', () => {
    const set = checkCaFileSet(pub, { intermediateKey: inter.keyPem });
    const paths = pathsIn('/x');
    expect(caFileWrites(paths, set, () => ({})).map((w) => [w.path, w.mode])).toEqual([
      ['/x/intermediate.key', 0o600],
      ['/x/intermediate.crt', 0o644],
      ['/x/root.crt', 0o644],
    ]);
    const same = (p: string) => ({
      content: p.endsWith('.key') ? set.intermediateKey : p.endsWith('root.crt') ? set.root : set.intermediate,
      mode: p.endsWith('.key') ? 0o600 : 0o644,
    });
    expect(caFileWrites(paths, set, same)).toEqual([]);
    expect(caFileWrites(paths, set, (p) => ({ ...same(p), mode: 0o644 })).map((w) => w.path)).toEqual(['/x/intermediate.key']);
  });

  it('syncCaFiles writes the set, hands the key over, and leaves files alone without a CA or with a bad one', async () => {
    const dir = path.join(tmp, 'sync');
    const paths = pathsIn(dir);
    const chowned: string[] = [];
    const io = {
      files: buildFileOps(),
      keyOwner: () => ({ uid: 4242, gid: 4243 }),
      chown: async (p: string, uid: number, gid: number) => void chowned.push(`${p}:${uid}:${gid}`),
      log,
    };
    const keys = { intermediateKey: inter.keyPem };
    expect(await syncCaFiles({}, paths, io)).toEqual({ outcome: 'no-ca' });
    expect(existsSync(paths.root_cert)).toBe(false);
    expect((await syncCaFiles({ pub, keys }, paths, io)).outcome).toBe('written');
    expect(statSync(paths.intermediate_key).mode & 0o777).toBe(0o600);
    expect(statSync(paths.root_cert).mode & 0o777).toBe(0o644);
    expect(chowned).toEqual([`${paths.intermediate_key}:4242:4243`]);
    expect((await syncCaFiles({ pub, keys }, paths, io)).outcome).toBe('unchanged');
    const bad = await syncCaFiles({ pub: { ...pub, intermediate: 'garbage' }, keys }, paths, io);
    expect(bad).toMatchObject({ outcome: 'refused', error: expect.stringMatching(/intermediate/) });
    expect(readFileSync(paths.intermediate_cert, 'utf8').trim()).toBe(inter.certPem.trim());
  });
});

describe.skipIf(!natsServerAvailable())('the CA files service on JetStream', () => {
  let nats: NatsServer;
  let admin: NatsConnection;
  let service: HostedService;
  const paths = pathsIn(path.join(tmp, 'live', 'ca'));
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'ca-files', dir: path.join(tmp, 'nats') });
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
    service = caFilesHostedService({ credentials: () => nats.credentials, paths: () => paths, resyncMs: 1000, retryMs: 200 });
    // Started before any CA exists, as on a fresh cluster.
    await service.start({ node: 'ctl-1', natsUrl: nats.url, members: [], log });
  });
  afterAll(async () => {
    await service?.stop();
    await admin?.close();
    await nats?.stop();
  });

  it('writes the files once the CA is stored, and follows a new intermediate', async () => {
    await new Promise((r) => setTimeout(r, 500));
    expect(read(paths.root_cert)).toBeUndefined();
    const root = await makeRoot();
    const first = await makeIntermediate(root);
    const store = await CaStore.open(admin);
    await store.write(root.certPem, first, root.keyPem);
    await eventually(async () => {
      if (read(paths.intermediate_key)?.trim() !== first.keyPem.trim()) throw new Error('no key yet');
      if (read(paths.root_cert)?.trim() !== root.certPem.trim()) throw new Error('no root yet');
    }, 10_000);
    expect(read(paths.intermediate_cert)?.trim()).toBe(first.certPem.trim());
    expect(statSync(paths.intermediate_key).mode & 0o777).toBe(0o600);

    const second = await makeIntermediate(root);
    await store.write(root.certPem, second, root.keyPem);
    await eventually(async () => {
      if (read(paths.intermediate_cert)?.trim() !== second.certPem.trim()) throw new Error('old intermediate');
    }, 10_000);
    expect(read(paths.intermediate_key)?.trim()).toBe(second.keyPem.trim());
  });

  it('the metadata service reads the root for vendor-data from mammatus-ca (natsCaFetch + caRootCache)', async () => {
    const root = await caRootCache({ fetch: natsCaFetch(nats.url, nats.credentials), log })();
    expect(root?.trim()).toBe(read(paths.root_cert)?.trim());
  });

  it('keeps good files when the bucket holds a bad PEM, and when the buckets are deleted', async () => {
    const before = read(paths.intermediate_cert);
    const kv = await new Kvm(admin).open(CA_BUCKET);
    await kv.put('intermediate', '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
    // Two resyncs: the bad value was seen and refused.
    await new Promise((r) => setTimeout(r, 2500));
    expect(read(paths.intermediate_cert)).toBe(before);
    await kv.destroy();
    await new Promise((r) => setTimeout(r, 1500));
    expect(read(paths.intermediate_cert)).toBe(before);
    expect(read(paths.root_cert)).toBeDefined();
    expect(read(paths.intermediate_key)).toBeDefined();
  });
});

describe('caRootCache', () => {
  it('serves the checked root, refreshes after its TTL, keeps the last good one through errors and bad values', async () => {
    const root = await makeRoot();
    const pub = { root: root.certPem, intermediate: '', fingerprint: certFingerprint(root.certPem) };
    let answer: () => Promise<CaPublic | undefined> = async () => undefined;
    let calls = 0;
    let clock = 0;
    const get = caRootCache({ fetch: () => (calls++, answer()), ttlMs: 1000, now: () => clock, log });
    expect(await get()).toBeUndefined();
    answer = async () => pub;
    expect(await get()).toBeUndefined(); // still fresh: no second read
    expect(calls).toBe(1);
    clock = 1500;
    await get(); // stale: served as is while it refreshes
    await new Promise((r) => setTimeout(r, 10));
    expect(await get()).toBe(root.certPem);
    clock = 3000;
    answer = async () => {
      throw new Error('nats down');
    };
    await get();
    await new Promise((r) => setTimeout(r, 10));
    expect(await get()).toBe(root.certPem);
    clock = 4500;
    answer = async () => ({ ...pub, fingerprint: 'ab'.repeat(32) });
    await get();
    await new Promise((r) => setTimeout(r, 10));
    expect(await get()).toBe(root.certPem);
  });
});
