import { afterEach, beforeEach, describe, it, expect, vi } from 'vitest';
import { pino } from 'pino';
import type { MemberEvent, QueryEvent, UserEvent } from '../../../agent/serf/client.js';
import { EventDedupe } from '../../../agent/dispatch/dedupe.js';
import { Dispatcher, encodeAnswer, type DispatcherOptions } from '../../../agent/dispatch/dispatcher.js';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

const WARN = 40;
const ERROR = 50;

function setup(opts: Partial<DispatcherOptions> = {}): { d: Dispatcher; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const d = new Dispatcher({
    log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }),
    node: () => 'node-1',
    handlerTimeoutMs: 500,
    slowHandlerMs: 400,
    queryTimeoutMs: 1000,
    ...opts,
  });
  return { d, lines };
}

const user = (name: string, ltime: number, payload = ''): UserEvent => ({
  type: 'user',
  name,
  ltime,
  payload: Buffer.from(payload),
  coalesce: false,
});
const join = (...names: string[]): MemberEvent => ({
  type: 'member-join',
  members: names.map((name) => ({ name, addr: '10.0.0.1', port: 7946, tags: {}, status: 'alive' as const })),
});

/** A query record whose `respond` records the answer (or fails with `fail`). */
function query(name: string, fail?: Error): { event: QueryEvent; answer: Promise<Buffer>; sent: Buffer[] } {
  const sent: Buffer[] = [];
  let resolve!: (b: Buffer) => void;
  const answer = new Promise<Buffer>((r) => (resolve = r));
  const event: QueryEvent = {
    type: 'query',
    id: 1,
    ltime: 1,
    name,
    payload: Buffer.from('ping'),
    respond: async (payload) => {
      sent.push(Buffer.from(payload));
      resolve(Buffer.from(payload));
      if (fail) throw fail;
    },
  };
  return { event, answer, sent };
}

// Handlers' delays, timeouts and slow warnings run on fake timers: the tests pass time, never wait.
beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Lets `ms` of fake time pass (every timer due fires, with the promises it settles), then awaits `work`. */
async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  await vi.advanceTimersByTimeAsync(ms);
  return work;
}
const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe('Dispatcher: registration', () => {
  it('throws on invalid filters, name-less query filters and a second handler for a query', () => {
    const { d } = setup();
    expect(() => d.on('user: x', () => undefined)).toThrow(RangeError);
    expect(() => d.on('query', () => undefined)).toThrow(/needs a query name/);
    d.on('query:mammatus.ping', () => 'pong');
    expect(() => d.on('query:mammatus.ping', () => 'again')).toThrow(/already registered/);
    d.on('query:mammatus.status', () => ({}));
    d.on('user:deploy', () => undefined);
    d.on('user:deploy', () => undefined); // several event handlers are fine
    d.on('member-join', () => undefined);
    // Every query is streamed: roles register theirs while they run, after the stream started.
    expect(d.streamFilter()).toBe('member-join,query,user:deploy');
  });

  it('removes a query handler (a role that leaves the node), and takes a new one for the name', async () => {
    const d = new Dispatcher({
      log: pino({ level: 'silent' }),
      node: () => 'n1',
      handlerTimeoutMs: 1000,
      slowHandlerMs: 1000,
      queryTimeoutMs: 1000,
    });
    d.on('query:mammatus.reservations', () => 'old');
    d.off('query:mammatus.reservations');
    const silent: Buffer[] = [];
    d.dispatch({
      type: 'query',
      id: 1,
      ltime: 1,
      name: 'mammatus.reservations',
      payload: Buffer.alloc(0),
      respond: async (b: Uint8Array) => void silent.push(Buffer.from(b)),
    } as never);
    await vi.advanceTimersByTimeAsync(20);
    expect(silent).toEqual([]);
    d.on('query:mammatus.reservations', () => 'new');
    const answers: string[] = [];
    d.dispatch({
      type: 'query',
      id: 2,
      ltime: 2,
      name: 'mammatus.reservations',
      payload: Buffer.alloc(0),
      respond: async (b: Uint8Array) => void answers.push(Buffer.from(b).toString()),
    } as never);
    await vi.advanceTimersByTimeAsync(20);
    expect(answers).toEqual(['new']);
  });
});

describe('Dispatcher: events', () => {
  it('handles events one at a time, in arrival order, handlers in registration order', async () => {
    const { d } = setup();
    const trace: string[] = [];
    d.on('user:deploy', async (e) => {
      trace.push(`deploy start ${e.ltime}`);
      await sleep(e.ltime === 1 ? 20 : 1);
      trace.push(`deploy end ${e.ltime}`);
    });
    d.on('user', (e) => void trace.push(`any user ${e.name}`));
    d.on('*', (e) => void trace.push(`star ${e.type}`));
    d.on('member-join', (e) => void trace.push(`join ${(e as MemberEvent).members.map((m) => m.name).join()}`));
    d.on('user:other', () => void trace.push('never'));
    d.dispatch(user('deploy', 1));
    d.dispatch(join('b', 'c'));
    d.dispatch(user('deploy', 2));
    await within(d.idle(), 50);
    expect(trace).toEqual([
      'deploy start 1',
      'deploy end 1',
      'any user deploy',
      'star user',
      'star member-join',
      'join b,c',
      'deploy start 2',
      'deploy end 2',
      'any user deploy',
      'star user',
    ]);
    expect(d.stats).toMatchObject({ handled: 8, failed: 0, timedOut: 0 });
  });

  it('logs a handler that throws and runs the next handlers and events', async () => {
    const { d, lines } = setup();
    const ran: string[] = [];
    d.on('user:deploy', (e) => {
      if (e.ltime === 1) throw new Error('boom');
      ran.push(`first ${e.ltime}`);
    });
    d.on('user:deploy', async (e) => {
      ran.push(`second ${e.ltime}`);
      if (e.ltime === 2) throw new Error('async boom');
    });
    d.dispatch(user('deploy', 1));
    d.dispatch(user('deploy', 2));
    await d.idle();
    expect(ran).toEqual(['second 1', 'first 2', 'second 2']);
    const failures = lines.filter((l) => l.msg === 'handler failed');
    expect(failures.map((l) => [l.level, l.handler, (l.err as { message: string }).message])).toEqual([
      [ERROR, 'user:deploy', 'boom'],
      [ERROR, 'user:deploy', 'async boom'],
    ]);
    expect(d.stats).toMatchObject({ handled: 2, failed: 2 });
  });

  it('times out a handler that hangs, aborts its signal and moves on', async () => {
    const { d, lines } = setup({ handlerTimeoutMs: 50 });
    let signal: AbortSignal | undefined;
    const ran: number[] = [];
    d.on('user:deploy', (e, ctx) => {
      if (e.ltime === 1) {
        signal = ctx.signal;
        return new Promise<void>(() => undefined);
      }
      ran.push(e.ltime);
    });
    const started = Date.now();
    d.dispatch(user('deploy', 1));
    d.dispatch(user('deploy', 2));
    await within(d.idle(), 100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(Date.now() - started).toBeLessThan(500);
    expect(ran).toEqual([2]);
    expect(signal?.aborted).toBe(true);
    expect(d.stats).toMatchObject({ timedOut: 1, handled: 1 });
    expect(lines.find((l) => l.msg === 'handler timed out; moving on')).toMatchObject({
      level: ERROR,
      handler: 'user:deploy',
      timeout_ms: 50,
    });
  });

  it('warns about a slow handler that still finishes', async () => {
    const { d, lines } = setup({ slowHandlerMs: 20, handlerTimeoutMs: 500 });
    d.on('member-join', () => sleep(60));
    d.dispatch(join('a'));
    await within(d.idle(), 60);
    const slow = lines.find((l) => l.msg === 'handler is slow');
    expect(slow).toMatchObject({ level: WARN, handler: 'member-join' });
    expect(slow?.elapsed_ms).toBeGreaterThanOrEqual(15);
    expect(d.stats).toMatchObject({ handled: 1, timedOut: 0 });
  });

  it('does not warn about a fast handler', async () => {
    const { d, lines } = setup({ slowHandlerMs: 50 });
    d.on('member-join', () => undefined);
    d.dispatch(join('a'));
    await d.idle();
    await vi.advanceTimersByTimeAsync(70);
    expect(lines.some((l) => l.msg === 'handler is slow')).toBe(false);
  });

  it('applies new timings to handlers started later', async () => {
    const { d } = setup({ handlerTimeoutMs: 1000 });
    d.on('user:x', () => sleep(80));
    d.setTimings({ handlerTimeoutMs: 30, slowHandlerMs: 1000, queryTimeoutMs: 1000 });
    d.dispatch(user('x', 1));
    await within(d.idle(), 80);
    expect(d.stats.timedOut).toBe(1);
  });

  it('skips duplicate user events through EventDedupe', async () => {
    const dedupe = new EventDedupe();
    const { d, lines } = setup({ dedupe });
    const seen: string[] = [];
    d.on('user:deploy', (e) => void seen.push(`${e.ltime}:${e.payload.toString()}`));
    d.dispatch(user('deploy', 7, 'a'));
    d.dispatch(user('deploy', 7, 'a'));
    d.dispatch(user('deploy', 7, 'b'));
    d.dispatch(join('n')); // member events are never deduplicated
    d.dispatch(join('n'));
    await d.idle();
    expect(seen).toEqual(['7:a', '7:b']);
    expect(d.stats.duplicates).toBe(1);
    expect(lines.some((l) => l.msg === 'duplicate user event skipped' && l.event === 'deploy' && l.ltime === 7)).toBe(true);
    expect(dedupe.snapshot()).toEqual({ deploy: 7 });
  });

  it('drops and counts events once the queue is full', async () => {
    const { d, lines } = setup({ queueLimit: 2, handlerTimeoutMs: 1000 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: number[] = [];
    d.on('user:e', async (e) => {
      seen.push(e.ltime);
      if (e.ltime === 1) await gate;
    });
    for (let i = 1; i <= 5; i++) d.dispatch(user('e', i));
    // Event 1 is running; 2 and 3 fill the queue; 4 and 5 are dropped.
    expect(d.stats.dropped).toBe(2);
    expect(lines.filter((l) => l.msg === 'event queue full; event dropped').map((l) => [l.level, l.event])).toEqual([
      [WARN, 'e'],
      [WARN, 'e'],
    ]);
    release();
    await d.idle();
    expect(seen).toEqual([1, 2, 3]);
    d.dispatch(user('e', 6));
    await d.idle();
    expect(seen).toEqual([1, 2, 3, 6]);
  });

  it('ignores events no handler wants, and still handles later ones', async () => {
    const { d } = setup();
    const seen: number[] = [];
    d.on('user:wanted', (e) => void seen.push(e.ltime));
    d.dispatch(user('unwanted', 1));
    d.dispatch(join('x'));
    await d.idle();
    d.dispatch(user('wanted', 2));
    await d.idle();
    expect(seen).toEqual([2]);
  });

  it('handles an event dispatched at any moment while the queue drains', async () => {
    // Records reach `dispatch` from a for-await loop, i.e. on arbitrary microtasks. An event that
    // arrives while the drain loop is finishing must still be handled.
    for (let k = 0; k <= 40; k++) {
      const { d } = setup();
      const seen: number[] = [];
      d.on('user:e', (e) => void seen.push(e.ltime));
      d.dispatch(user('e', 1));
      await ticks(k);
      d.dispatch(user('e', 2));
      await d.idle();
      await vi.advanceTimersByTimeAsync(1);
      expect(seen, `second event dispatched after ${k} microtasks`).toEqual([1, 2]);
    }
  });
});

describe('Dispatcher: queries', () => {
  it.each<[string, unknown, string]>([
    ['a string', 'pong ✓', 'pong ✓'],
    ['a Buffer', Buffer.from([0, 1, 2]), '\u0000\u0001\u0002'],
    ['a Uint8Array', new Uint8Array([104, 105]), 'hi'],
    ['an object', { ok: true, roles: ['gateway'] }, '{"ok":true,"roles":["gateway"]}'],
    ['an async object', Promise.resolve({ n: 1 }), '{"n":1}'],
  ])('answers with %s via respond', async (_what, answer, expected) => {
    const { d } = setup();
    d.on('query:mammatus.ping', () => answer as string);
    const q = query('mammatus.ping');
    d.dispatch(q.event);
    expect((await q.answer).toString('utf8')).toBe(expected);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.sent).toHaveLength(1);
    expect(d.stats).toMatchObject({ answered: 1, answerErrors: 0 });
  });

  it('passes the query to the handler and ignores queries nobody answers', async () => {
    const { d } = setup();
    d.on('query:echo', (q) => q.payload);
    const other = query('mammatus.other');
    d.dispatch(other.event);
    const echo = query('echo');
    d.dispatch(echo.event);
    expect((await echo.answer).toString()).toBe('ping');
    expect(other.sent).toEqual([]);
  });

  it('replaces an answer over 1024 − 42 − len(node) bytes with an error and counts it', async () => {
    const { d, lines } = setup({ node: () => 'node-1' });
    const limit = 1024 - 42 - 'node-1'.length;
    let size = 0;
    d.on('query:big', () => 'x'.repeat(size));

    size = limit;
    const fits = query('big');
    d.dispatch(fits.event);
    expect((await fits.answer).length).toBe(limit);

    size = limit + 1;
    const over = query('big');
    d.dispatch(over.event);
    const answer = JSON.parse((await over.answer).toString()) as { error: string };
    expect(answer).toEqual({ error: `answer too large: ${limit + 1} bytes > ${limit}` });
    await vi.advanceTimersByTimeAsync(1);
    expect(d.stats).toMatchObject({ answered: 2, answerErrors: 1 });
    expect(lines.find((l) => l.msg === 'query answer over Serf response limit; sent an error instead')).toMatchObject({
      level: ERROR,
      query: 'big',
      bytes: limit + 1,
      limit,
    });
  });

  it('counts multi-byte characters and the node name against the limit', async () => {
    const { d } = setup({ node: () => 'a-much-longer-node-name' });
    const limit = 1024 - 42 - 'a-much-longer-node-name'.length;
    d.on('query:big', () => 'é'.repeat(Math.ceil(limit / 2))); // 2 bytes each
    const q = query('big');
    d.dispatch(q.event);
    expect(JSON.parse((await q.answer).toString())).toEqual({ error: expect.stringMatching(/^answer too large/) });
  });

  it('answers {"error":"timeout"} within 60 % of the query timeout when the handler hangs', async () => {
    const { d, lines } = setup({ queryTimeoutMs: 300, handlerTimeoutMs: 10_000 });
    let signal: AbortSignal | undefined;
    d.on('query:slow', (_q, ctx) => {
      signal = ctx.signal;
      return new Promise<string>(() => undefined);
    });
    const q = query('slow');
    const started = Date.now();
    let elapsed = -1;
    q.answer.then(() => (elapsed = Date.now() - started)).catch(() => undefined);
    d.dispatch(q.event);
    expect((await within(q.answer, 300)).toString()).toBe('{"error":"timeout"}');
    expect(elapsed).toBe(180); // 60 % of the 300 ms the sender waits
    expect(signal?.aborted).toBe(true);
    expect(d.stats.timedOut).toBe(1);
    expect(lines.some((l) => l.msg === 'handler timed out; moving on' && l.handler === 'query:slow')).toBe(true);
  });

  it('uses the handler timeout when it is shorter than 60 % of the query timeout', async () => {
    const { d } = setup({ queryTimeoutMs: 10_000, handlerTimeoutMs: 40 });
    d.on('query:slow', () => new Promise<string>(() => undefined));
    const q = query('slow');
    const started = Date.now();
    d.dispatch(q.event);
    expect((await within(q.answer, 100)).toString()).toBe('{"error":"timeout"}');
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('answers {"error":"handler failed"} when the handler throws', async () => {
    const { d, lines } = setup();
    d.on('query:bad', () => {
      throw new Error('secret detail');
    });
    const q = query('bad');
    d.dispatch(q.event);
    expect((await q.answer).toString()).toBe('{"error":"handler failed"}');
    expect(lines.find((l) => l.msg === 'handler failed')).toMatchObject({ handler: 'query:bad', err: { message: 'secret detail' } });
  });

  it('logs a failing respond and keeps going', async () => {
    const { d, lines } = setup();
    d.on('query:ping', () => 'pong');
    const q = query('ping', new Error('No pending queries matching ID'));
    d.dispatch(q.event);
    await q.answer;
    await vi.advanceTimersByTimeAsync(1);
    expect(d.stats).toMatchObject({ answered: 0, answerErrors: 1 });
    expect(lines.find((l) => l.msg === 'could not answer query')).toMatchObject({
      level: WARN,
      query: 'ping',
      err: { message: 'No pending queries matching ID' },
    });
    const next = query('ping');
    d.dispatch(next.event);
    expect((await next.answer).toString()).toBe('pong');
  });

  it('answers queries at once, even while a slow event handler runs', async () => {
    const { d } = setup({ handlerTimeoutMs: 1000 });
    let release!: () => void;
    d.on('user:slow', () => new Promise<void>((r) => (release = r)));
    d.on('query:ping', () => 'pong');
    d.dispatch(user('slow', 1));
    const q = query('ping');
    d.dispatch(q.event);
    expect((await q.answer).toString()).toBe('pong');
    release();
    await d.idle();
  });
});

describe('encodeAnswer', () => {
  it.each<[unknown, string]>([
    ['text', 'text'],
    [Buffer.from('buf'), 'buf'],
    [{ a: [1, 'b'] }, '{"a":[1,"b"]}'],
    [[1, 2], '[1,2]'],
  ])('encodes %j', (answer, expected) => {
    expect(encodeAnswer(answer as object).toString()).toBe(expected);
  });
});
