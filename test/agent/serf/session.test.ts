import { afterEach, beforeEach, describe, it, expect } from 'vitest';
import { pino } from 'pino';
import type { SerfClient, SerfEvent } from '../../../agent/serf/client.js';
import { ConnectionClosedError } from '../../../agent/serf/errors.js';
import { SerfSession, type SerfSessionOptions } from '../../../agent/serf/session.js';
import { startFakeSerf, type FakeSerf } from '../../helpers/fake-serf.js';
import { until } from '../../../scripts/lib/wait.js';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

let serf: FakeSerf;
let session: SerfSession | undefined;
let lines: LogLine[];

function build(opts: Partial<SerfSessionOptions> = {}): {
  session: SerfSession;
  events: SerfEvent[];
  connected: SerfClient[];
  disconnected: Error[];
} {
  const events: SerfEvent[] = [];
  const connected: SerfClient[] = [];
  const disconnected: Error[] = [];
  session = new SerfSession({
    addr: serf.addr,
    requestTimeoutMs: 500,
    connectTimeoutMs: 500,
    log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }),
    filter: 'member-join,user:mammatus.reconcile,query:mammatus.ping',
    onEvent: (e) => events.push(e),
    onConnected: (admin) => void connected.push(admin),
    onDisconnected: (err) => void disconnected.push(err),
    backoffInitialMs: 10,
    backoffMaxMs: 40,
    ...opts,
  });
  return { session, events, connected, disconnected };
}

beforeEach(async () => {
  serf = await startFakeSerf();
  lines = [];
});

afterEach(async () => {
  await session?.stop();
  session = undefined;
  await serf.close();
});

describe('SerfSession', () => {
  it('connects two connections, subscribes the filter and calls onConnected with the admin client', async () => {
    const { session: s, connected, events } = build();
    await s.start();
    expect(s.connected).toBe(true);
    expect(s.connects).toBe(1);
    expect(serf.connectionCount).toBe(2);
    expect(connected).toHaveLength(1);
    expect(await s.adminClient()).toBe(connected[0]);
    const streams = serf.requestsFor('stream');
    expect(streams.map((r) => r.body)).toEqual([{ Type: 'member-join,user:mammatus.reconcile,query:mammatus.ping' }]);
    // The stream is on the events connection, the admin client on the other one.
    expect(streams[0].client).toBe(1);
    await connected[0].members();
    expect(serf.requestsFor('members')[0].client).toBe(2);
    // Records reach onEvent.
    serf.clients[0].send([
      { Seq: streams[0].req.Seq, Error: '' },
      { Event: 'user', LTime: 1, Name: 'mammatus.reconcile', Payload: null, Coalesce: false },
    ]);
    await until('the condition', () => events.length === 1, { timeoutMs: 1000, everyMs: 5 });
    expect(events[0]).toMatchObject({ type: 'user', name: 'mammatus.reconcile', ltime: 1 });
  });

  it('reconnects with backoff after the agent drops every client, re-subscribes and calls onConnected again', async () => {
    const { session: s, connected, disconnected, events } = build();
    await s.start();
    serf.closeClients();
    await until('reconnect', () => connected.length === 2, { timeoutMs: 1500, everyMs: 5 });
    expect(s.connects).toBe(2);
    expect(serf.requestsFor('stream')).toHaveLength(2);
    expect(serf.connectionCount).toBe(4);
    expect(serf.openConnections).toBe(2);
    expect(disconnected).toHaveLength(1);
    expect(disconnected[0]).toBeInstanceOf(ConnectionClosedError);
    expect(lines.some((l) => l.msg === 'serf RPC unavailable; reconnecting' && typeof l.retry_ms === 'number')).toBe(true);
    expect(await s.adminClient()).toBe(connected[1]);
    // Events flow on the new stream.
    const seq = serf.requestsFor('stream')[1].req.Seq;
    serf.clients[2].send([
      { Seq: seq, Error: '' },
      { Event: 'member-join', Members: [] },
    ]);
    await until('the condition', () => events.length === 1, { timeoutMs: 1000, everyMs: 5 });
  });

  it('reconnects when only the admin connection drops', async () => {
    const { session: s, connected } = build();
    await s.start();
    serf.clients[1].close();
    await until('reconnect', () => connected.length === 2, { timeoutMs: 1500, everyMs: 5 });
    expect(serf.requestsFor('stream')).toHaveLength(2);
    await until('old events connection to close', () => serf.openConnections === 2, { timeoutMs: 500, everyMs: 5 });
  });

  it('backs off while the agent is down and comes back when it returns', async () => {
    const { session: s, connected } = build();
    await s.start();
    const addr = serf.addr;
    const port = Number(addr.split(':')[1]);
    await serf.close();
    await until('retries', () => lines.filter((l) => l.msg === 'serf RPC unavailable; reconnecting').length >= 3, {
      timeoutMs: 1500,
      everyMs: 5,
    });
    const delays = lines.filter((l) => l.msg === 'serf RPC unavailable; reconnecting').map((l) => l.retry_ms as number);
    expect(delays.slice(0, 3)).toEqual([10, 20, 40]);
    expect(s.connected).toBe(false);
    // The agent is back on the same port; the session finds it on its own.
    serf = await startFakeSerf({ port });
    await until('reconnect', () => connected.length === 2, { timeoutMs: 1500, everyMs: 5 });
  });

  it('stop() ends the session; adminClient() rejects afterwards; stop is idempotent', async () => {
    const { session: s } = build();
    await s.start();
    await s.stop();
    expect(s.connected).toBe(false);
    await until('sockets to close', () => serf.openConnections === 0, { timeoutMs: 500, everyMs: 5 });
    await expect(s.adminClient()).rejects.toBeInstanceOf(ConnectionClosedError);
    await s.stop();
    expect(serf.connectionCount).toBe(2);
  });

  it('keeps retrying after an auth failure without crashing, and stops cleanly', async () => {
    await serf.close();
    serf = await startFakeSerf({ authKey: 'right' });
    const { session: s, connected } = build({ authKey: 'wrong' });
    const started = s.start();
    const waiting = s.adminClient();
    await until('auth retries', () => serf.requestsFor('auth').length >= 3, { timeoutMs: 1500, everyMs: 5 });
    expect(connected).toEqual([]);
    expect(s.connected).toBe(false);
    expect(
      lines
        .filter((l) => l.msg === 'serf RPC unavailable; reconnecting')
        .every((l) => (l.err as { type?: string }).type === 'SerfAuthError'),
    ).toBe(true);
    // Handlers first: stop() rejects both at once but waits for the connect loop, and a rejection
    // left without a handler across that wait is reported as unhandled (seen on a loaded machine).
    const rejected = Promise.all([
      expect(started).rejects.toBeInstanceOf(ConnectionClosedError),
      expect(waiting).rejects.toBeInstanceOf(ConnectionClosedError),
    ]);
    await s.stop();
    await rejected;
    await until('sockets to close', () => serf.openConnections === 0, { timeoutMs: 500, everyMs: 5 });
  });

  it('retries when onConnected throws', async () => {
    let calls = 0;
    const { session: s } = build({
      onConnected: () => {
        calls++;
        if (calls === 1) throw new Error('members failed');
      },
    });
    await s.start();
    expect(calls).toBe(2);
    expect(serf.requestsFor('stream')).toHaveLength(2);
    expect(
      lines.some((l) => l.msg === 'serf RPC unavailable; reconnecting' && (l.err as { message?: string }).message === 'members failed'),
    ).toBe(true);
  });

  it('does not leak the admin connection when subscribing fails', async () => {
    serf.onCommand('stream', (req, _b, c) => c.reply(req.Seq, 'Invalid event filter'));
    const { session: s } = build();
    void s.start().catch(() => undefined);
    await until('retries', () => serf.requestsFor('stream').length >= 3, { timeoutMs: 1500, everyMs: 5 });
    await s.stop();
    await until('every socket to close', () => serf.openConnections === 0, { timeoutMs: 500, everyMs: 5 });
  });

  it.each([
    [1, 'the event connection handshake (first connect)'],
    [2, 'the admin connection handshake'],
  ])('stop() during %#: %s ends the session, closes every socket, never calls onConnected', async (connection) => {
    let release: (() => void) | undefined;
    serf.onCommand('handshake', (req, _b, c) => {
      if (c.id === connection) release = () => c.reply(req.Seq);
      else c.reply(req.Seq);
    });
    const { session: s, connected } = build();
    const started = s.start().catch((e: unknown) => e);
    await until('the held handshake', () => release !== undefined, { timeoutMs: 500, everyMs: 5 });
    const stopped = s.stop();
    release!();
    await stopped;
    expect(await started).toBeInstanceOf(ConnectionClosedError);
    expect(connected).toEqual([]);
    await until('every socket to close', () => serf.openConnections === 0, { timeoutMs: 500, everyMs: 5 });
  });
});
