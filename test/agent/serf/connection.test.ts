import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { SerfClient, type QueryRecord, type SerfEvent } from '../../../agent/serf/client.js';
import { SerfConnection } from '../../../agent/serf/connection.js';
import { splitHostPort } from '../../../core/net.js';
import { ConnectionClosedError, ProtocolError, RequestTimeoutError, SerfAuthError, SerfRpcError } from '../../../agent/serf/errors.js';
import { encodeValue } from '../../../agent/serf/codec.js';
import { startFakeSerf, type FakeSerf } from '../../helpers/fake-serf.js';
import { until } from '../../../scripts/lib/wait.js';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function memoryLog(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

const member = (name: string) => ({ Name: name, Addr: Buffer.from([10, 0, 0, 1]), Port: 7946, Tags: { role: 'gateway' }, Status: 'alive' });

/** Settles a promise into a value or an error, failing on neither. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(r, 'expected a rejection').toBeInstanceOf(Error);
  return r as Error;
}

let serf: FakeSerf;
let clients: SerfClient[] = [];
let escaped: unknown[] = [];
const onEscape = (err: unknown) => void escaped.push(err);

async function connect(
  opts: { authKey?: string; requestTimeoutMs?: number; maxValueBytes?: number; log?: pino.Logger } = {},
): Promise<SerfClient> {
  const c = await SerfClient.connect({ addr: serf.addr, requestTimeoutMs: 1000, ...opts });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  serf = await startFakeSerf();
  escaped = [];
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
});

afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await serf.close();
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
  expect(escaped).toEqual([]);
});

describe('connection setup', () => {
  it('sends handshake then auth, each awaited before the next request', async () => {
    await serf.close();
    serf = await startFakeSerf({ authKey: 's3cret' });
    const order: string[] = [];
    serf.onCommand('handshake', (req, body, c) => {
      order.push(`in handshake v${String(body?.Version)}`);
      setTimeout(() => {
        order.push('out handshake');
        c.reply(req.Seq);
      }, 30);
    });
    serf.onCommand('auth', (req, body, c) => {
      order.push(`in auth ${String(body?.AuthKey)}`);
      setTimeout(() => {
        order.push('out auth');
        c.reply(req.Seq);
      }, 30);
    });
    serf.onCommand('members', (req, _b, c) => {
      order.push('in members');
      c.reply(req.Seq, '', { Members: [member('a')] });
    });
    const client = await connect({ authKey: 's3cret' });
    expect(await client.members()).toEqual([{ name: 'a', addr: '10.0.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' }]);
    expect(order).toEqual(['in handshake v1', 'out handshake', 'in auth s3cret', 'out auth', 'in members']);
    expect(serf.requests.map((r) => [r.req.Command, r.req.Seq])).toEqual([
      ['handshake', 1],
      ['auth', 2],
      ['members', 3],
    ]);
  });

  it('skips auth when no key is configured', async () => {
    await connect();
    expect(serf.requests.map((r) => r.req.Command)).toEqual(['handshake']);
  });

  it('rejects a wrong key with SerfAuthError and closes the socket', async () => {
    await serf.close();
    serf = await startFakeSerf({ authKey: 'right' });
    const err = await rejection(SerfClient.connect({ addr: serf.addr, authKey: 'wrong', requestTimeoutMs: 1000 }));
    expect(err).toBeInstanceOf(SerfAuthError);
    expect(err.message).toContain('Invalid authentication token');
    await until('client to close', () => serf.openConnections === 0, { timeoutMs: 1000, everyMs: 5 });
  });

  it('rejects a refused handshake with SerfRpcError', async () => {
    serf.onCommand('handshake', (req, _b, c) => c.reply(req.Seq, 'Unsupported IPC version'));
    const err = await rejection(SerfClient.connect({ addr: serf.addr, requestTimeoutMs: 1000 }));
    expect(err).toBeInstanceOf(SerfRpcError);
    expect(err.message).toBe('serf handshake: Unsupported IPC version');
  });

  it('rejects with ConnectionClosedError when nothing listens', async () => {
    const addr = serf.addr;
    await serf.close();
    const err = await rejection(SerfClient.connect({ addr, requestTimeoutMs: 200 }));
    expect(err).toBeInstanceOf(ConnectionClosedError);
    serf = await startFakeSerf();
  });

  it('parses host:port addresses', () => {
    expect(splitHostPort('127.0.0.1:7373')).toEqual({ host: '127.0.0.1', port: 7373 });
    expect(splitHostPort('[::1]:7373')).toEqual({ host: '::1', port: 7373 });
    for (const bad of ['127.0.0.1', ':7373', 'h:0', 'h:65536', '::1:7373']) expect(() => splitHostPort(bad)).toThrow(RangeError);
  });
});

describe('request framing', () => {
  it('sends members, stats, list-keys and leave without a body', async () => {
    serf.onCommand('list-keys', (req, _b, c) =>
      c.reply(req.Seq, '', { Messages: {}, Keys: { k1: 2 }, NumNodes: 2, NumErr: 0, NumResp: 2 }),
    );
    serf.onCommand('stats', (req, _b, c) => c.reply(req.Seq, '', { agent: { name: 'a' } }));
    const client = await connect();
    expect(await client.members()).toEqual([]);
    expect(await client.stats()).toEqual({ agent: { name: 'a' } });
    expect(await client.listKeys()).toEqual({ messages: {}, keys: { k1: 2 }, numNodes: 2, numErr: 0, numResp: 2 });
    await client.event('deploy', Buffer.from('p'));
    await client.leave();
    const c = serf.last;
    expect(c.strays).toEqual([]);
    expect(c.requests.map((r) => [r.req.Command, r.body])).toEqual([
      ['handshake', { Version: 1 }],
      ['members', undefined],
      ['stats', undefined],
      ['list-keys', undefined],
      ['event', { Name: 'deploy', Payload: Buffer.from('p'), Coalesce: false }],
      ['leave', undefined],
    ]);
  });

  it('consumes the body of a join error, so the next request still works', async () => {
    serf.onCommand('join', (req, _b, c) =>
      c.reply(req.Seq, '1 error occurred:\n\t* Failed to join 10.9.9.9: dial tcp: i/o timeout\n\n', { Num: 0 }),
    );
    serf.onCommand('members', (req, _b, c) => c.reply(req.Seq, '', { Members: [member('b')] }));
    const client = await connect();
    const err = await rejection(client.join(['10.9.9.9']));
    expect(err).toBeInstanceOf(SerfRpcError);
    expect(err.message).toContain('Failed to join 10.9.9.9');
    expect((err as SerfRpcError & { body?: unknown }).body).toEqual({ Num: 0 });
    expect((await client.members()).map((m) => m.name)).toEqual(['b']);
    expect(serf.last.strays).toEqual([]);
  });

  it.each([
    ['Authentication required', SerfAuthError],
    ['Unsupported command', SerfRpcError],
    ['Handshake required', SerfRpcError],
  ])('does not wait for a body after the header-only error %s', async (text, type) => {
    serf.onCommand('members', (req, _b, c) => c.reply(req.Seq, text));
    const client = await connect({ requestTimeoutMs: 1500 });
    const started = Date.now();
    const err = await rejection(client.members());
    expect(err).toBeInstanceOf(type);
    expect(err.message).toBe(`serf members: ${text}`);
    expect(Date.now() - started).toBeLessThan(500);
    // The next reply is routed normally: no value was swallowed as a body.
    serf.onCommand('stats', (req, _b, c) => c.reply(req.Seq, '', { agent: { name: 'z' } }));
    expect(await client.stats()).toEqual({ agent: { name: 'z' } });
  });

  it('drops a reply for an unknown Seq together with its body', async () => {
    const { log, lines } = memoryLog();
    serf.onCommand('members', (req, _b, c) =>
      c.send([{ Seq: 999, Error: '' }, { Members: [member('ghost')] }, { Seq: req.Seq, Error: '' }, { Members: [member('real')] }]),
    );
    const client = await connect({ log });
    expect((await client.members()).map((m) => m.name)).toEqual(['real']);
    expect(lines.some((l) => l.msg === 'serf RPC: dropped a reply for an unknown sequence number' && l.seq === 999)).toBe(true);
    // A stray body on its own is dropped too, and later replies still route.
    serf.send([{ Members: [member('stray')] }]);
    serf.onCommand('members', (req, _b, c) => c.reply(req.Seq, '', { Members: [member('later')] }));
    expect((await client.members()).map((m) => m.name)).toEqual(['later']);
    expect(client.connection.isClosed).toBe(false);
  });

  it('treats a header where a body was expected as a header', async () => {
    const { log, lines } = memoryLog();
    serf.onCommand('members', (req, _b, c) => c.reply(req.Seq)); // body missing
    serf.onCommand('event', (req, _b, c) => c.reply(req.Seq, 'event boom'));
    const client = await connect({ log });
    const members = client.members();
    const event = client.event('x');
    expect(await members).toEqual([]);
    const err = await rejection(event);
    expect(err.message).toBe('serf event: event boom');
    expect(lines.some((l) => l.msg === 'serf RPC: expected a response body, got a header' && l.command === 'members')).toBe(true);
  });
});

describe('connection failures', () => {
  it('rejects pending calls with ConnectionClosedError when the agent closes mid-frame', async () => {
    serf.onCommand('members', (req, _b, c) => {
      const frame = Buffer.concat([encodeValue({ Seq: req.Seq, Error: '' }), encodeValue({ Members: [member('a'), member('b')] })]);
      c.sendRaw(frame.subarray(0, frame.length - 7));
      setTimeout(() => c.close(), 10);
    });
    const client = await connect();
    const closed = new Promise<Error>((resolve) => client.connection.onClose(resolve));
    const err = await rejection(client.members());
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect(await closed).toBe(err);
    expect(client.connection.isClosed).toBe(true);
    expect(await rejection(client.stats())).toBeInstanceOf(ConnectionClosedError);
    // A late onClose listener is called at once with the reason.
    let late: Error | undefined;
    client.connection.onClose((e) => (late = e));
    expect(late).toBe(err);
  });

  it.each([
    ['a raw 0xc1 byte', Buffer.from([0xc1])],
    ['a msgpack integer', encodeValue(42)],
    ['a msgpack string', encodeValue('hello')],
    ['an array', encodeValue([1, 2])],
    ['nil', encodeValue(null)],
    ['undecodable msgpack', Buffer.from('81c1c1', 'hex')],
  ])('closes on garbage (%s): ProtocolError logged, pending rejected, nothing thrown', async (_what, garbage) => {
    const { log, lines } = memoryLog();
    serf.onCommand('members', (_req, _b, c) => c.sendRaw(garbage));
    const client = await connect({ log });
    const stream = await client.stream('user:x');
    const pendingErr = await rejection(client.members());
    expect(pendingErr).toBeInstanceOf(ProtocolError);
    // The acknowledged stream ends with the same error.
    await expect(stream[Symbol.asyncIterator]().next()).rejects.toBe(pendingErr);
    expect(lines.filter((l) => l.msg === 'serf RPC protocol error; closing connection')).toHaveLength(1);
    expect(lines.find((l) => l.level === 50)?.err).toMatchObject({ type: 'ProtocolError' });
    await until('socket to close', () => serf.openConnections === 0, { timeoutMs: 1000, everyMs: 5 });
    expect(await rejection(client.members())).toBe(pendingErr);
  });

  it('closes with ProtocolError when a value outgrows maxValueBytes', async () => {
    const { log, lines } = memoryLog();
    serf.onCommand('members', (req, _b, c) => {
      const frame = Buffer.concat([
        encodeValue({ Seq: req.Seq, Error: '' }),
        encodeValue({ Members: Array.from({ length: 20 }, (_, i) => member(`node-${i}`)) }),
      ]);
      c.sendRaw(frame.subarray(0, 300)); // incomplete and already over the limit
    });
    const client = await connect({ log, maxValueBytes: 128 });
    const err = await rejection(client.members());
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.message).toContain('larger than 128 bytes');
    expect(lines.some((l) => l.msg === 'serf RPC protocol error; closing connection')).toBe(true);
    await until('socket to close', () => serf.openConnections === 0, { timeoutMs: 1000, everyMs: 5 });
  });

  it('rejects after requestTimeoutMs and drops the late reply', async () => {
    const { log } = memoryLog();
    let late: (() => void) | undefined;
    serf.onCommand('members', (req, _b, c) => {
      late = () => c.reply(req.Seq, '', { Members: [member('late')] });
    });
    const client = await connect({ log, requestTimeoutMs: 50 });
    const err = await rejection(client.members());
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect(err.message).toBe('serf members: no reply within 50 ms');
    late!();
    serf.onCommand('members', (req, _b, c) => c.reply(req.Seq, '', { Members: [member('fresh')] }));
    expect((await client.members()).map((m) => m.name)).toEqual(['fresh']);
    expect(client.connection.isClosed).toBe(false);
  });

  it('close() by the client rejects pending calls and ends streams cleanly', async () => {
    serf.onCommand('members', () => undefined);
    const client = await connect();
    const stream = await client.stream('*');
    const pending = client.members();
    client.close();
    expect(await rejection(pending)).toBeInstanceOf(ConnectionClosedError);
    expect(await stream[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });
});

describe('streams', () => {
  it('routes stream records by Seq, interleaved with a normal reply', async () => {
    const client = await connect();
    const stream = await client.stream('user:deploy,member-join');
    const streamSeq = serf.requestsFor('stream')[0].req.Seq;
    expect(serf.requestsFor('stream')[0].body).toEqual({ Type: 'user:deploy,member-join' });
    serf.onCommand('members', (req, _b, c) =>
      c.send([
        { Seq: streamSeq, Error: '' },
        { Event: 'user', LTime: 3, Name: 'deploy', Payload: Buffer.from('v1'), Coalesce: false },
        { Seq: req.Seq, Error: '' },
        { Members: [member('m')] },
        { Seq: streamSeq, Error: '' },
        { Event: 'member-join', Members: [member('n')] },
        { Seq: streamSeq, Error: '' },
        { Event: 'user', LTime: 4, Name: 'deploy', Payload: null, Coalesce: true },
      ]),
    );
    expect((await client.members()).map((m) => m.name)).toEqual(['m']);
    const it = stream[Symbol.asyncIterator]();
    const got: SerfEvent[] = [];
    for (let i = 0; i < 3; i++) got.push((await it.next()).value as SerfEvent);
    expect(got).toEqual([
      { type: 'user', ltime: 3, name: 'deploy', payload: Buffer.from('v1'), coalesce: false },
      { type: 'member-join', members: [{ name: 'n', addr: '10.0.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' }] },
      { type: 'user', ltime: 4, name: 'deploy', payload: Buffer.alloc(0), coalesce: true },
    ]);
  });

  it('answers query records over the same connection with respond', async () => {
    const client = await connect();
    const stream = await client.stream('query:mammatus.ping');
    const streamSeq = serf.requestsFor('stream')[0].req.Seq;
    serf.send([
      { Seq: streamSeq, Error: '' },
      { Event: 'query', ID: 2 ** 32 + 1, LTime: 9, Name: 'mammatus.ping', Payload: Buffer.from('hi') },
    ]);
    const { value } = await stream[Symbol.asyncIterator]().next();
    const q = value as Extract<SerfEvent, { type: 'query' }>;
    expect(q).toMatchObject({ type: 'query', id: 2 ** 32 + 1, ltime: 9, name: 'mammatus.ping', payload: Buffer.from('hi') });
    await q.respond(Buffer.from('pong'));
    const [respond] = serf.requestsFor('respond');
    expect(respond?.body).toEqual({ ID: 2n ** 32n + 1n, Payload: Buffer.from('pong') });
    expect(respond?.rawBody?.includes(0xcb)).toBe(false);
  });

  it('rejects a refused subscription', async () => {
    serf.onCommand('stream', (req, _b, c) => c.reply(req.Seq, 'Invalid event filter'));
    const client = await connect();
    const err = await rejection(client.stream('bogus'));
    expect(err).toBeInstanceOf(SerfRpcError);
    expect(err.message).toBe('serf stream: Invalid event filter');
    expect(await client.members()).toEqual([]);
  });

  it('stop() sends stop with the stream Seq and later records are dropped', async () => {
    const client = await connect();
    const stream = await client.stream('user');
    const streamSeq = serf.requestsFor('stream')[0].req.Seq;
    stream.stop();
    await until('the condition', () => serf.requestsFor('stop').length === 1, { timeoutMs: 1000, everyMs: 5 });
    expect(serf.requestsFor('stop')[0].body).toEqual({ Stop: streamSeq });
    serf.send([
      { Seq: streamSeq, Error: '' },
      { Event: 'user', LTime: 1, Name: 'x', Payload: null, Coalesce: false },
    ]);
    expect(await client.members()).toEqual([]);
    expect(await stream[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });

  it('yields query acks and responses, ignores empty From, and ends at done', async () => {
    serf.onCommand('query', (req, _b, c) => {
      const h = { Seq: req.Seq, Error: '' };
      c.send([h, h, { Type: 'ack', From: 'a', Payload: null }, h, { Type: 'response', From: 'b', Payload: Buffer.from('pong') }]);
      setTimeout(
        () =>
          c.send([
            h,
            { Type: 'response', From: '', Payload: null },
            h,
            { Type: 'ack', From: '', Payload: null },
            h,
            { Type: 'done', From: '', Payload: null },
          ]),
        10,
      );
    });
    const client = await connect();
    const records: QueryRecord[] = [];
    for await (const r of await client.query({
      name: 'ping',
      requestAck: true,
      filterNodes: ['a', 'b'],
      filterTags: { role: 'gate.*' },
      timeoutMs: 1000,
    }))
      records.push(r);
    expect(records).toEqual([
      { type: 'ack', from: 'a' },
      { type: 'response', from: 'b', payload: Buffer.from('pong') },
    ]);
    expect(serf.requestsFor('query')[0].body).toMatchObject({
      FilterNodes: ['a', 'b'],
      FilterTags: { role: 'gate.*' },
      RequestAck: true,
      Timeout: 1_000_000_000n,
    });
    // The query's Seq is gone after done: a late record is dropped and the connection lives on.
    const seq = serf.requestsFor('query')[0].req.Seq;
    serf.send([
      { Seq: seq, Error: '' },
      { Type: 'response', From: 'c', Payload: null },
    ]);
    expect(await client.members()).toEqual([]);
  });

  it('opens raw connections too', async () => {
    const conn = await SerfConnection.open({ addr: serf.addr, requestTimeoutMs: 500 });
    expect(await conn.request('members')).toEqual({ Members: [] });
    conn.close();
    conn.close(); // idempotent
    expect(conn.isClosed).toBe(true);
  });
});
