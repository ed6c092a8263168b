/**
 * The Serf RPC client against real serf agents (Debian's serf): every command, with gossip
 * encryption and RPC auth on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerfClient, type MemberEvent, type SerfEvent } from '../../agent/serf/client.js';
import { SerfAuthError, SerfRpcError } from '../../agent/serf/errors.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';

const skip = serfAvailable() ? undefined : 'the serf binary is not on PATH (apt-get install serf)';
if (skip) console.warn(`integration tests skipped: ${skip}`);

describe.skipIf(Boolean(skip))('SerfClient against real serf agents', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-serf-'));
  const key1 = skip ? '' : execFileSync('serf', ['keygen'], { encoding: 'utf8' }).trim();
  const key2 = skip ? '' : execFileSync('serf', ['keygen'], { encoding: 'utf8' }).trim();
  const auth = 'rpc-secret';
  let a: SerfAgent;
  let b: SerfAgent;
  let c: SerfAgent;
  let ca: SerfClient;

  beforeAll(async () => {
    [a, b, c] = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        startSerfAgent({
          name,
          dir: path.join(tmp, name),
          tags: { role: name === 'a' ? 'gateway' : 'compute' },
          encryptKey: key1,
          rpcAuth: auth,
        }),
      ),
    );
    ca = await SerfClient.connect({ addr: a.rpcAddr, authKey: auth });
    expect(await ca.join([b.bindAddr, c.bindAddr])).toBe(2);
  });
  afterAll(async () => {
    ca?.close();
    await Promise.allSettled([a, b, c].map((x) => x?.stop()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses a wrong auth key with a typed error and keeps working with the right one', async () => {
    await expect(SerfClient.connect({ addr: a.rpcAddr, authKey: 'wrong' })).rejects.toBeInstanceOf(SerfAuthError);
    const members = await ca.members();
    expect(members.map((m) => m.name).sort()).toEqual(['a', 'b', 'c']);
    expect(members.find((m) => m.name === 'a')).toMatchObject({ addr: '127.0.0.1', status: 'alive', tags: { role: 'gateway' } });
  });

  it('filters members with anchored regular expressions', async () => {
    expect((await ca.membersFiltered({ tags: { role: 'comp.*' } })).map((m) => m.name).sort()).toEqual(['b', 'c']);
    expect(await ca.membersFiltered({ tags: { role: 'comp' } })).toEqual([]);
    expect((await ca.membersFiltered({ name: 'a' })).map((m) => m.name)).toEqual(['a']);
  });

  it('streams user events and queries, answers a query, and sees tag changes as member-update', async () => {
    const cb = await SerfClient.connect({ addr: b.rpcAddr, authKey: auth });
    const stream = await cb.stream('user:hello,query:who,member-update');
    const got: SerfEvent[] = [];
    const pump = (async () => {
      for await (const ev of stream) {
        got.push(ev);
        if (ev.type === 'query') await ev.respond(Buffer.from('b here'));
      }
    })();
    await ca.event('hello', Buffer.from('world'));
    // A 5 s timeout travels as int64 nanoseconds: a float would make serf drop the connection.
    const records = await ca.query({ name: 'who', requestAck: true, timeoutMs: 5000, filterNodes: ['b'] });
    const seen: string[] = [];
    for await (const r of records) {
      seen.push(r.type === 'ack' ? `ack:${r.from}` : `response:${r.from}:${r.payload.toString()}`);
      if (r.type === 'response') records.stop();
    }
    expect(seen).toEqual(['ack:b', 'response:b:b here']);
    await ca.tags({ zone: 'z1' });
    for (let i = 0; i < 50 && !got.some((e) => e.type === 'member-update'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(got.find((e) => e.type === 'user')).toMatchObject({ name: 'hello', payload: Buffer.from('world') });
    const update = got.find((e): e is MemberEvent => e.type === 'member-update');
    expect(update?.members.find((m) => m.name === 'a')?.tags.zone).toBe('z1');
    await ca.tags({}, ['zone']);
    stream.stop();
    cb.close();
    await pump;
  });

  it('reports stats, coordinates and the agent log (monitor)', async () => {
    const stats = await ca.stats();
    expect(stats.agent?.name).toBe('a');
    expect(stats.serf?.encrypted).toBe('true');
    await new Promise((r) => setTimeout(r, 500));
    expect((await ca.getCoordinate('b'))?.vec.length).toBe(8);
    expect(await ca.getCoordinate('nobody')).toBeUndefined();
    const log = await ca.monitor('info');
    const lines: string[] = [];
    for await (const line of log) {
      lines.push(line);
      if (lines.length === 2) log.stop();
    }
    expect(lines[0]).toMatch(/\[INFO\]/);
  });

  it('rotates the gossip key with install-key, use-key, list-keys and remove-key', async () => {
    const installed = await ca.installKey(key2);
    expect(installed.numErr).toBe(0);
    expect(installed.numNodes).toBe(3);
    expect(Object.keys((await ca.listKeys()).keys).sort()).toEqual([key1, key2].sort());
    expect((await ca.useKey(key2)).numErr).toBe(0);
    await expect(ca.removeKey(key2)).rejects.toBeInstanceOf(SerfRpcError); // the primary cannot go
    expect((await ca.removeKey(key1)).numErr).toBe(0);
    expect(Object.keys((await ca.listKeys()).keys)).toEqual([key2]);
    // The connection is still in step after error bodies: the next call works.
    expect((await ca.members()).length).toBe(3);
  });

  it('force-leaves a failed node (pruned: member-reap) and leaves gracefully', async () => {
    const stream = await ca.stream('member-failed,member-reap');
    const events: string[] = [];
    const pump = (async () => {
      for await (const ev of stream) events.push(`${ev.type}:${'members' in ev ? ev.members.map((m) => m.name).join() : ''}`);
    })();
    await c.kill();
    for (let i = 0; i < 100 && !events.includes('member-failed:c'); i++) await new Promise((r) => setTimeout(r, 100));
    await ca.forceLeave('c', true);
    for (let i = 0; i < 100 && !events.includes('member-reap:c'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(events).toContain('member-reap:c');
    stream.stop();
    await pump;
    const cb = await SerfClient.connect({ addr: b.rpcAddr, authKey: auth });
    await cb.leave();
    await new Promise<void>((resolve) => b.process.once('exit', () => resolve()));
    expect(b.process.exitCode ?? b.process.signalCode).not.toBeNull();
  }, 30_000);
});
