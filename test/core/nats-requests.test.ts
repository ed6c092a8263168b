/**
 * core/nats-requests.ts against a real nats-server: JetStream acks and errors as nats.js gives
 * them, deletes, timeouts and no responders, with the connection's inbox prefix (a controller's
 * NATS permissions).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { jetstream, jetstreamManager, JetStreamApiError, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../core/nats.js';
import { JetStreamRequests, SharedInboxRequester } from '../../core/nats-requests.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';

const STREAM = 'FASTREQ';

describe.skipIf(!natsServerAvailable())('shared-inbox JetStream requests', () => {
  let dir: string;
  let srv: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let fast: JetStreamRequests;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mammatus-fastreq-'));
    srv = await startNatsServer({ name: 'n1', dir: path.join(dir, 'n1') });
    nc = await connectNats(srv.url, { name: 'fastreq-test', credentials: srv.credentials, tls: 'plain' });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: STREAM, subjects: ['mammatus.fastreq.>'], storage: StorageType.File });
    const made = JetStreamRequests.of(jetstream(nc), jsm);
    if (!made) throw new Error('nats.js clients not recognised');
    fast = made;
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes with headers and answers the ack nats.js would; a repeated Nats-Msg-Id is a duplicate', async () => {
    const h = headers();
    h.set('Sqs-Sent', '1');
    h.set('Nats-Msg-Id', 'm-1');
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fast.publish('mammatus.fastreq.a', Buffer.from(`body ${i}`), undefined, 5000)),
    );
    expect(new Set(acks.map((a) => a.seq)).size).toBe(20);
    expect(acks.every((a) => a.stream === STREAM && a.duplicate === false)).toBe(true);
    const first = await fast.publish('mammatus.fastreq.a', Buffer.from('x'), h, 5000);
    const again = await fast.publish('mammatus.fastreq.a', Buffer.from('x'), h, 5000);
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    const stored = await jsm.streams.getMessage(STREAM, { seq: first.seq });
    expect(stored?.header.get('Sqs-Sent')).toBe('1');
  });

  it('deletes by sequence; a second delete fails as JetStream says (not found)', async () => {
    const { seq } = await fast.publish('mammatus.fastreq.b', Buffer.from('gone soon'), undefined, 5000);
    expect(await fast.deleteMessage(STREAM, seq, 5000)).toBe(true);
    const err = await fast.deleteMessage(STREAM, seq, 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamApiError);
    expect(String((err as Error).message)).toMatch(/not found/i);
  });

  it('fails fast when nobody answers, and after the timeout when the answer never comes', async () => {
    await expect(fast.publish('mammatus.unstored.x', Buffer.from('x'), undefined, 5000)).rejects.toThrow(/no responders/);
    const requester = new SharedInboxRequester(nc);
    const sub = nc.subscribe('mammatus.fastreq-silent'); // listens, never answers
    try {
      const started = Date.now();
      await expect(requester.request('mammatus.fastreq-silent', new Uint8Array(), 300)).rejects.toThrow(/timeout/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      sub.unsubscribe();
    }
  });

  it('times out on the monotonic clock: a wall clock stepped forward (NTP on a board without RTC) fails nothing early', async () => {
    const requester = new SharedInboxRequester(nc);
    const sub = nc.subscribe('mammatus.fastreq-late');
    // Answers after 600 ms, well within the 5 s timeout; meanwhile the wall clock jumps a minute.
    const answering = (async () => {
      for await (const m of sub) setTimeout(() => m.respond(Buffer.from('late but in time')), 600);
    })();
    const pending = requester.request('mammatus.fastreq-late', new Uint8Array(), 5000);
    const wall = vi.spyOn(Date, 'now').mockImplementation(() => performance.timeOrigin + performance.now() + 60_000);
    try {
      const reply = await pending;
      expect(Buffer.from(reply.data).toString()).toBe('late but in time');
    } finally {
      wall.mockRestore();
      sub.unsubscribe();
      await answering;
    }
  });
});
