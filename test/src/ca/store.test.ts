/**
 * The fingerprint an admission pins (src/ca/store.ts fingerprintToPin) against a real nats-server:
 * the admitting controller's own pin, else the bucket's, none without a CA; a bucket that cannot
 * be read fails the admission instead of admitting without a pin (such a node never gets a
 * certificate until it is admitted again).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer } from '../../../scripts/lib/nats-server.js';
import { makeIntermediate, makeRoot } from '../../../src/ca/pki.js';
import { CaStore, fingerprintToPin } from '../../../src/ca/store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-ca-store-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!natsServerAvailable())('the fingerprint an admission pins', () => {
  it("is the controller's own pin, else the bucket's, none without a CA, and an error when the bucket cannot be read", async () => {
    const nats = await startNatsServer({ name: 'pin', dir: path.join(tmp, 'nats') });
    try {
      const nc = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
      const own = 'b'.repeat(64);
      expect(await fingerprintToPin({ ca_fingerprint: own }, nc)).toBe(own);
      expect(await fingerprintToPin({}, nc)).toBeUndefined();
      expect(await fingerprintToPin({})).toBeUndefined();
      const root = await makeRoot();
      const stored = await (await CaStore.open(nc)).write(root.certPem, await makeIntermediate(root));
      expect(await fingerprintToPin({}, nc)).toBe(stored.fingerprint);
      // A gateway may not read the keys, but it reads mammatus-ca: use a connection that is gone instead.
      await nc.close();
      await expect(fingerprintToPin({}, nc)).rejects.toThrow(/CA bucket/);
    } finally {
      await nats.stop();
    }
  });
});
