/**
 * The rebuild read of `QueueLog` over fake JetStream replicas: nats-server places the ephemeral
 * consumer of a read on a random replica of the stream (2.9: even on a server that is down, where
 * its creation never answers), and a follower may not yet have applied the last acknowledged
 * write. The rebuild must read what the stream leader holds.
 */
import type { ConsumerInfo, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { expect, test } from 'vitest';
import { encodeHeaders, encodeStates, type SeqState } from '../../../../src/messaging/engine/codec.js';
import { SQS_STATE_STREAM, SQS_STREAM, subjects } from '../../../../src/messaging/engine/layout.js';
import { QueueLog } from '../../../../src/messaging/engine/queue-log.js';
import { readBack } from '../js-harness.js';

interface Stored {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers?: ReturnType<typeof encodeHeaders>;
}

const QUEUE = 'q1';

function matches(filter: string, subject: string): boolean {
  return filter.endsWith('.>') ? subject.startsWith(filter.slice(0, -1)) : subject === filter;
}

/**
 * Three replicas of both streams: `c1` is the leader, `c2` has not applied the last state record
 * yet, `c3` is down. `placements` says where each consumer lands, `infoLeaders` which leader each
 * stream info names (then `c1`), `leaderNow` which replica answers leader-only message reads.
 */
function cluster(placements: string[], opts: { infoLeaders?: string[]; leaderNow?: string } = {}) {
  const messages: Stored[] = [];
  for (let seq = 1; seq <= 10; seq += 1) {
    messages.push({
      seq,
      subject: subjects.message(QUEUE),
      data: new Uint8Array(),
      headers: encodeHeaders({ sentAt: 1000, visibleAt: 1000, senderId: 'me' }),
    });
  }
  const batch: SeqState[] = messages.map((m) => ({ seq: m.seq, receiveCount: 1, firstReceiveAt: 2000, visibleAt: 9e15 }));
  const record: Stored = { seq: 7, subject: subjects.stateBatch(QUEUE, 'w', 1), data: encodeStates(batch) };
  const replicas: Record<string, Record<string, Stored[]>> = {
    c1: { [SQS_STREAM]: messages, [SQS_STATE_STREAM]: [record] },
    c2: { [SQS_STREAM]: messages, [SQS_STATE_STREAM]: [] },
  };
  const consumers = new Map<string, { stream: string; filter: string; replica: string; next: number }>();
  const created: string[] = [];
  const jsm = {
    streams: {
      info: async () => ({ cluster: { leader: opts.infoLeaders?.shift() ?? 'c1' } }),
      getMessage: async (stream: string, q: { last_by_subj: string }) => {
        const held = (replicas[opts.leaderNow ?? 'c1']?.[stream] ?? []).filter((m) => matches(q.last_by_subj, m.subject));
        const last = held[held.length - 1];
        if (!last) throw Object.assign(new Error('no message found'), { api_error: { err_code: 10037 } });
        return last;
      },
      deleteMessage: async () => true,
    },
    consumers: {
      add: async (stream: string, cfg: { name: string; filter_subject: string }): Promise<Partial<ConsumerInfo>> => {
        const replica = placements.shift() ?? 'c1';
        created.push(replica);
        // A consumer on a server that is down: the creation request times out.
        if (!replicas[replica]) throw new Error('TimeoutError: timeout');
        consumers.set(cfg.name, { stream, filter: cfg.filter_subject, replica, next: 0 });
        const pending = (replicas[replica]?.[stream] ?? []).filter((m) => matches(cfg.filter_subject, m.subject)).length;
        return { name: cfg.name, num_pending: pending, cluster: { name: 'c', leader: replica } };
      },
      delete: async (_stream: string, name: string) => consumers.delete(name),
    },
  };
  const js = {
    consumers: {
      get: async (_stream: string, name: string) => ({
        fetch: async ({ max_messages }: { max_messages: number }) => {
          const c = consumers.get(name);
          if (!c) throw new Error('consumer not found');
          const held = (replicas[c.replica]?.[c.stream] ?? []).filter((m) => matches(c.filter, m.subject));
          const out = held.slice(c.next, c.next + max_messages);
          c.next += out.length;
          const left = held.length - c.next;
          return (async function* () {
            let i = 0;
            for (const m of out) {
              i += 1;
              yield { ...m, info: { pending: left + out.length - i } } as unknown as JsMsg;
            }
          })();
        },
      }),
    },
  };
  const log = new QueueLog(js as unknown as JetStreamClient, jsm as unknown as JetStreamManager, QUEUE);
  return { log, created };
}

test('a rebuild reads from the stream leader: consumers on a server that is down or on a lagging follower are dropped', async () => {
  const { log, created } = cluster(['c3', 'c2', 'c2', 'c1', 'c3', 'c2', 'c1']);
  const rebuilt = await readBack(log);
  expect(rebuilt.messages).toHaveLength(10);
  // Every message is in flight, as the last receive batch's record (only applied on c1) says.
  expect(rebuilt.messages.every((m) => m.receiveCount === 1 && m.visibleAt === 9e15)).toBe(true);
  expect([...rebuilt.records.keys()]).toEqual([7]);
  expect(created).toEqual(['c3', 'c2', 'c2', 'c1', 'c3', 'c2', 'c1']);
});

test('a read that ends before the last message the leader holds is done again', async () => {
  // The stream infos named c2 leader, but by the end of the state read c1 leads and holds one more record.
  const { log, created } = cluster(['c2', 'c2', 'c1'], { infoLeaders: ['c2', 'c2'] });
  const rebuilt = await readBack(log);
  expect(rebuilt.messages.every((m) => m.receiveCount === 1)).toBe(true);
  expect(created).toEqual(['c2', 'c2', 'c1']);
});
