/**
 * `queryUntilAnswered` against a fake Serf that reproduces what a real one does when two queries
 * sent through it at the same moment get the same LTime: the sending node keeps one pending query
 * per LTime, so the other query gets no ack and no answer at all, only `done` at its timeout
 * ("query reply ID mismatch" in serf's log). The nodes that stay silent must be asked again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queryUntilAnswered } from '../../../agent/cli/common.js';
import { SerfClient } from '../../../agent/serf/client.js';
import { startFakeSerf, type FakeClient, type FakeRequest, type FakeSerf } from '../../helpers/fake-serf.js';

/** What the fake's nodes do with the n-th query (0-based): per node, ack/answer delays or silence. */
type Plan = Record<string, { ackMs?: number; answerMs?: number } | 'lost'>;
type Script = (n: number, body: Record<string, unknown>) => Plan;

const ms = (timeout: unknown) => Number(timeout) / 1e6;

/** Plays `script` for each query: the header at once, then records, then `done` at the timeout. */
function playQueries(serf: FakeSerf, script: Script): void {
  let n = 0;
  serf.onCommand('query', (req: FakeRequest, body, c: FakeClient) => {
    const h = { Seq: req.Seq, Error: '' };
    c.reply(req.Seq);
    const later = (delay: number, record: object) => setTimeout(() => c.send([h, record]), delay);
    for (const [node, plan] of Object.entries(script(n++, body!))) {
      if (plan === 'lost') continue;
      if (plan.ackMs !== undefined) later(plan.ackMs, { Type: 'ack', From: node, Payload: null });
      if (plan.answerMs !== undefined) later(plan.answerMs, { Type: 'response', From: node, Payload: Buffer.from(`hi from ${node}`) });
    }
    later(ms(body!.Timeout), { Type: 'done', From: '', Payload: null });
  });
}

describe('queryUntilAnswered asks the silent nodes again', () => {
  let serf: FakeSerf;
  let client: SerfClient;
  beforeEach(async () => {
    serf = await startFakeSerf();
    client = await SerfClient.connect({ addr: serf.addr });
  });
  afterEach(async () => {
    client.close();
    await serf.close();
  });
  const sent = () => serf.requestsFor('query').map((r) => r.body!);

  it('a query that lost its LTime to another gets nothing back: the nodes are asked again and answer', async () => {
    const nodes = { cn1: { ackMs: 5, answerMs: 10 }, cn2: { ackMs: 5, answerMs: 15 } };
    playQueries(serf, (n) => (n === 0 ? { cn1: 'lost', cn2: 'lost' } : nodes));
    const started = Date.now();
    const answers = await queryUntilAnswered(
      client,
      { name: 'mammatus.capacity', filterTags: { role: 'compute' }, timeoutMs: 2000 },
      new Set(['cn1', 'cn2']),
      { ackWaitMs: 50 },
    );
    expect(Object.fromEntries(answers)).toEqual({ cn1: 'hi from cn1', cn2: 'hi from cn2' });
    expect(Date.now() - started).toBeLessThan(1000);
    const [first, again] = sent();
    expect(first).toMatchObject({ Name: 'mammatus.capacity', RequestAck: true, FilterNodes: [], Timeout: 2_000_000_000n });
    // The second ask: same name and filters, only the silent nodes, only for the time left.
    expect(again).toMatchObject({
      Name: 'mammatus.capacity',
      RequestAck: true,
      FilterTags: { role: 'compute' },
      FilterNodes: ['cn1', 'cn2'],
    });
    expect(ms(again.Timeout)).toBeLessThanOrEqual(1950);
    expect(ms(again.Timeout)).toBeGreaterThan(1500);
  });

  it('asks again only the nodes that neither acked nor answered, and takes answers to either query', async () => {
    const first: Plan = { cn1: { ackMs: 5, answerMs: 5 }, cn2: { ackMs: 5, answerMs: 300 }, cn3: 'lost' };
    playQueries(serf, (n) => (n === 0 ? first : { cn3: { ackMs: 5, answerMs: 10 } }));
    const answers = await queryUntilAnswered(client, { name: 'q', timeoutMs: 2000 }, new Set(['cn1', 'cn2', 'cn3']), { ackWaitMs: 50 });
    expect([...answers.keys()].sort()).toEqual(['cn1', 'cn2', 'cn3']);
    expect(sent().map((b) => b.FilterNodes)).toEqual([[], ['cn3']]);
  });

  it('sends one query when every node answers in time', async () => {
    playQueries(serf, () => ({ cn1: { ackMs: 1, answerMs: 2 } }));
    const answers = await queryUntilAnswered(client, { name: 'q', timeoutMs: 2000 }, new Set(['cn1']), { ackWaitMs: 50 });
    expect(answers.get('cn1')).toBe('hi from cn1');
    // A request on the same connection is a barrier: a query sent before it has reached serf.
    await client.stats();
    expect(sent()).toHaveLength(1);
  });

  it("a node that never answers: a bounded number of asks, and the call ends at the first query's timeout", async () => {
    playQueries(serf, () => ({ gone: 'lost' }));
    const started = Date.now();
    const answers = await queryUntilAnswered(client, { name: 'q', timeoutMs: 800 }, new Set(['gone']), { ackWaitMs: 50 });
    const elapsed = Date.now() - started;
    expect(answers.size).toBe(0);
    expect(elapsed).toBeGreaterThanOrEqual(790);
    expect(elapsed).toBeLessThan(1200);
    expect(sent().length).toBeGreaterThan(1);
    expect(sent().length).toBeLessThanOrEqual(4);
    // No ask with less than 300 ms left: its answer could not come back in time.
    for (const b of sent().slice(1)) expect(ms(b.Timeout)).toBeGreaterThanOrEqual(300);
  });

  it('no nodes to wait for: no query at all', async () => {
    expect((await queryUntilAnswered(client, { name: 'q' }, new Set())).size).toBe(0);
    expect(sent()).toHaveLength(0);
  });

  it('a connection that closes mid-query still fails the call', async () => {
    serf.onCommand('query', (req, _b, c) => {
      c.reply(req.Seq);
      setTimeout(() => c.close(), 20);
    });
    await expect(queryUntilAnswered(client, { name: 'q', timeoutMs: 2000 }, new Set(['cn1']), { ackWaitMs: 50 })).rejects.toThrow(/closed/);
  });
});
