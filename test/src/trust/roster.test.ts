/**
 * The roster feed's cache (src/trust/roster.ts): a controller restarted while NATS cannot answer
 * (no quorum) serves the roster it last read, so its admitted nodes keep their users; an unreadable
 * cache is logged and waited out. The live roster is covered with real servers in
 * test/integration/trust.test.ts and controller.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { admittedNode } from '../../../core/trust.js';
import { watchRoster } from '../../../src/trust/roster.js';
import { fixedCredentials } from '../../helpers/trust.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-roster-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
const creds = fixedCredentials('ctl', ['controller']);
// Nothing listens on port 1: NATS never answers during these tests.
const NOWHERE = ['nats://127.0.0.1:1'];

describe('the roster cache', () => {
  it('serves the last copy at once while NATS does not answer', async () => {
    const file = path.join(tmp, 'roster.json');
    const nodes = [admittedNode(fixedCredentials('gw', ['gateway'], 1)), admittedNode(creds)];
    writeFileSync(file, JSON.stringify(nodes));
    const feed = watchRoster(NOWHERE, creds, () => undefined, log, file);
    expect(feed.snapshot()).toEqual(nodes);
    await feed.stop();
  });

  it('has nothing to serve without a cache, or with one it cannot read', async () => {
    const bad = path.join(tmp, 'bad.json');
    writeFileSync(bad, '{');
    for (const file of [undefined, path.join(tmp, 'missing.json'), bad]) {
      const feed = watchRoster(NOWHERE, creds, () => undefined, log, file);
      expect(feed.snapshot()).toBeUndefined();
      await feed.stop();
    }
  });
});
