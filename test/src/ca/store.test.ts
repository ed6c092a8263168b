/**
 * What an admission pins (src/ca/store.ts rootToPin) against a real nats-server: the admitting
 * controller's own root and pin, or (credentials older than `ca_root`) its pin with the bucket's
 * root when they match, else the bucket's; none without a CA; a bucket that cannot be read, or
 * that holds another root than the controller pins, fails the admission instead of admitting
 * without the root (such a node could never verify its servers until it is admitted again).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer } from '../../../scripts/lib/nats-server.js';
import { certFingerprint, makeIntermediate, makeRoot } from '../../../src/ca/pki.js';
import { CaStore, rootToPin } from '../../../src/ca/store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-store-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!natsServerAvailable())('what an admission pins', () => {
  it("is the controller's own root, else the bucket's checked against its pin, none without a CA, and an error when the bucket cannot be read", async () => {
    const nats = await startNatsServer({ name: 'pin', dir: path.join(tmp, 'nats') });
    try {
      const nc = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
      const mine = (await makeRoot()).certPem;
      const own = { ca_fingerprint: certFingerprint(mine), ca_root: mine };
      expect(await rootToPin(own, nc)).toEqual({ ca_fingerprint: own.ca_fingerprint, ca_root: `${mine.trim()}\n` });
      // An own root that does not match the own pin is never handed on.
      await expect(rootToPin({ ...own, ca_fingerprint: 'b'.repeat(64) }, nc)).rejects.toThrow(/does not match/);
      expect(await rootToPin({}, nc)).toBeUndefined();
      expect(await rootToPin({})).toBeUndefined();
      // A pin without its root, and no CA to read it from: no admission.
      await expect(rootToPin({ ca_fingerprint: 'b'.repeat(64) }, nc)).rejects.toThrow(/holds none/);
      const root = await makeRoot();
      const stored = await (await CaStore.open(nc)).write(root.certPem, await makeIntermediate(root));
      const fromBucket = { ca_fingerprint: stored.fingerprint, ca_root: `${root.certPem.trim()}\n` };
      expect(await rootToPin({}, nc)).toEqual(fromBucket);
      expect(await rootToPin({ ca_fingerprint: stored.fingerprint }, nc)).toEqual(fromBucket);
      await expect(rootToPin({ ca_fingerprint: 'b'.repeat(64) }, nc)).rejects.toThrow(/pins the CA root bbbbbbbb/);
      // A gateway may not read the keys, but it reads mammatus-ca: use a connection that is gone instead.
      await nc.close();
      await expect(rootToPin({}, nc)).rejects.toThrow(/CA bucket/);
    } finally {
      await nats.stop();
    }
  });
});
