/**
 * PurgeQueue fencing on a real nats-server: an owner that lost its queue (paused past its lease)
 * and then finishes a PurgeQueue must not delete what the next owner stored since it took over.
 * Two `QueueLog`s of one queue play the old and the new owner; JetStream, not our code, refuses
 * the old owner's marker.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { openMessagingStore } from '../../src/messaging/engine/layout.js';
import { QueueLog, StaleTermError } from '../../src/messaging/engine/queue-log.js';
import { connectNats } from '../../core/nats.js';
import { Cleanup, readBack, startNats, tempDir } from '../src/messaging/js-harness.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

const fields = (n: number) => ({ sentAt: n, visibleAt: n, senderId: 'me' });
const payload = (body: string) => ({ body, attributes: {} });

describe.skipIf(!natsServerAvailable())('owner terms', () => {
  test('a stale owner purges nothing; the current owner purges what was stored before its purge only', { timeout: 60_000 }, async () => {
    const server = await startNats(cleanup, tempDir(cleanup));
    const nc = await connectNats(server.url, { name: 'term-test', credentials: server.credentials });
    cleanup.add(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await openMessagingStore(nc, jsm, { replicas: 1, leaseMs: 10_000, snsAckWaitMs: 30_000 });
    const js = jetstream(nc);
    // Separate instances, as on two controllers (no shared body cache).
    const oldOwner = new QueueLog(js, jsm, 'q1');
    const newOwner = new QueueLog(js, jsm, 'q1');
    const bodies = async () => {
      const { messages } = await readBack(newOwner);
      return Promise.all(messages.map(async (m) => (await newOwner.read(m.seq))?.payload.body));
    };

    // On a fresh deployment the first owner's marker is the stream's first message (sequence 1).
    const oldTerm = await oldOwner.beginTerm();
    expect(oldTerm.messageSeq).toBe(1);
    expect((await jsm.streams.getMessage('MESSAGING_SQS', { last_by_subj: 'mammatus.sqs.m.q1.term' }))?.seq).toBe(1);
    await oldOwner.append(fields(1), payload('before the takeover'));
    const oldRecord = await oldOwner.saveStates([{ seq: 1, receiveCount: 1, firstReceiveAt: 1, visibleAt: 9e15 }]);
    expect(oldRecord).toBeGreaterThan(0);

    // The next owner takes over (its lease came after the old one expired) and stores a message.
    const newTerm = await newOwner.beginTerm();
    const { seq: kept } = await newOwner.append(fields(2), payload('after the takeover'));
    await newOwner.saveStates([{ seq: kept, receiveCount: 1, firstReceiveAt: 2, visibleAt: 9e15 }]);

    // An old owner's late write with an idempotency key: the new owner's retry of it is a
    // duplicate that names the stored original (what QueueOwner adopts).
    const late = await oldOwner.append(fields(3), payload('late'), 'q1:i:key');
    expect(await newOwner.append(fields(3), payload('late'), 'q1:i:key')).toEqual({ seq: late.seq, duplicate: true });
    await newOwner.remove(late.seq);

    // The old owner wakes up and finishes a PurgeQueue: refused by JetStream, nothing deleted.
    await expect(oldOwner.purgeFenced(oldTerm)).rejects.toBeInstanceOf(StaleTermError);
    expect((await bodies()).sort()).toEqual(['after the takeover', 'before the takeover']);
    const rebuilt = await readBack(newOwner);
    expect(rebuilt.messages.find((m) => m.seq === kept)).toMatchObject({ receiveCount: 1 });

    // The current owner's purge removes both messages and their states; later sends stay, and it
    // can purge again with the term the purge returned.
    const term2 = await newOwner.purgeFenced(newTerm);
    expect(await bodies()).toEqual([]);
    await newOwner.append(fields(3), payload('after the purge'));
    expect(await bodies()).toEqual(['after the purge']);
    await newOwner.purgeFenced(term2);
    expect(await bodies()).toEqual([]);
    // The old term stays refused after the new owner's purges too.
    await expect(oldOwner.purgeFenced(oldTerm)).rejects.toBeInstanceOf(StaleTermError);
    // Only the latest marker is kept on the message stream's term subject.
    const info = await jsm.streams.info('MESSAGING_SQS', { subjects_filter: 'mammatus.sqs.m.q1.term' });
    expect(info.state.subjects).toEqual({ 'mammatus.sqs.m.q1.term': 1 });
  });
});
