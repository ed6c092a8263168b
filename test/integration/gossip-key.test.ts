/**
 * The gossip key the controllers' host API hands a joining host (agent/gossip-key.ts), read from a
 * real serf agent: the key it encrypts with, nothing when its gossip is not encrypted, an error when
 * its RPC cannot be reached (a host is then refused before its secret is taken).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gossipKeyReader, primaryKey } from '../../agent/gossip-key.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';

const skip = serfAvailable() ? undefined : 'the serf binary is not on PATH (apt-get install serf)';
if (skip) console.warn(`gossip key test skipped: ${skip}`);

describe('primaryKey', () => {
  it('takes the key most nodes use, ties by text, none for none', () => {
    expect(primaryKey({ b: 3, a: 3, c: 5 })).toBe('c');
    expect(primaryKey({ b: 2, a: 2 })).toBe('a');
    expect(primaryKey({})).toBeUndefined();
  });
});

describe.skipIf(Boolean(skip))('gossipKeyReader against serf', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gossip-'));
  const serfs: SerfAgent[] = [];
  afterAll(async () => {
    await Promise.allSettled(serfs.map((s) => s.stop()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('reads the key of an encrypted Serf, nothing of a plain one, and fails without Serf', async () => {
    const key = Buffer.alloc(32, 3).toString('base64');
    const enc = await startSerfAgent({ name: 'enc', dir: path.join(tmp, 'enc'), rpcAuth: 'rpc-secret', encryptKey: key });
    serfs.push(enc);
    await expect(gossipKeyReader(() => ({ rpc_addr: enc.rpcAddr, rpc_auth: 'rpc-secret' }))()).resolves.toBe(key);
    const plain = await startSerfAgent({ name: 'plain', dir: path.join(tmp, 'plain') });
    serfs.push(plain);
    await expect(gossipKeyReader(() => ({ rpc_addr: plain.rpcAddr }))()).resolves.toBeUndefined();
    await expect(gossipKeyReader(() => ({ rpc_addr: '127.0.0.1:1' }))()).rejects.toThrow();
  });
});
