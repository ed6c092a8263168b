/**
 * Operator-signed events and query asks at the dispatcher: accepted ones reach their handlers with
 * the inner payload and the operator's name; unsigned, tampered, stale, replayed, foreign-key and
 * no-operator ones are refused with the reason logged; open events and other names pass unsigned;
 * `mammatus.verdict` tells the sender what became of its event.
 */
import { pino } from 'pino';
import { utils } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { QueryEvent, UserEvent } from '../../../agent/serf/client.js';
import { Dispatcher, type HandlerContext } from '../../../agent/dispatch/dispatcher.js';
import { SignatureGate } from '../../../agent/dispatch/signatures.js';
import { EventDedupe } from '../../../agent/dispatch/dedupe.js';
import { parseOperators, type OperatorKey } from '../../../core/operators.js';
import { keySigner, parseSshKey } from '../../../core/sshsig.js';
import { envelopeId, sealEvent } from '../../../core/signed-event.js';
import { registerVerdict } from '../../../handlers/verdict.js';

const alice = utils.generateKeyPairSync('ed25519', { comment: 'alice@laptop' });
const mallory = utils.generateKeyPairSync('ed25519', { comment: 'mallory@elsewhere' });
const aliceSigner = keySigner(parseSshKey(alice.private));
const mallorySigner = keySigner(parseSshKey(mallory.private));
const OPERATORS = parseOperators([alice.public]);

interface Line {
  level: number;
  msg: string;
  reason?: string;
}

function setup(operators: readonly OperatorKey[] = OPERATORS, clock = { now: Date.now() }, gate = true) {
  const lines: Line[] = [];
  const signatures = new SignatureGate(
    () => operators,
    () => clock.now,
  );
  const d = new Dispatcher({
    log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) }),
    node: () => 'node-1',
    handlerTimeoutMs: 1000,
    slowHandlerMs: 1000,
    queryTimeoutMs: 2000,
    dedupe: new EventDedupe(),
    ...(gate ? { signatures } : {}),
  });
  const seen: { payload: string; signer?: string }[] = [];
  d.on('user', (e: UserEvent, ctx: HandlerContext) => void seen.push({ payload: e.payload.toString(), signer: ctx.signer }));
  return { d, lines, seen, signatures, clock };
}

let ltime = 1;
const event = (name: string, payload: Buffer): UserEvent => ({ type: 'user', name, ltime: ltime++, payload, coalesce: false });
const refusals = (lines: Line[]) => lines.filter((l) => l.msg === 'signed event refused').map((l) => l.reason);

function ask(name: string, payload: Buffer): { q: QueryEvent; answer: Promise<string> } {
  let resolve!: (s: string) => void;
  const answer = new Promise<string>((r) => (resolve = r));
  const q: QueryEvent = {
    type: 'query',
    id: 7,
    ltime: ltime++,
    name,
    payload,
    respond: (p) => Promise.resolve(resolve(Buffer.from(p).toString())),
  };
  return { q, answer };
}

describe('signed user events at the dispatcher', () => {
  it('hands an operator-signed event to its handlers with the inner payload and the operator', async () => {
    const { d, seen, lines } = setup();
    d.dispatch(
      event('mammatus.volume.create', await sealEvent(aliceSigner, 'mammatus.volume.create', Buffer.from('{"name":"db"}'), Date.now())),
    );
    await d.idle();
    expect(seen).toEqual([{ payload: '{"name":"db"}', signer: 'alice@laptop' }]);
    expect(lines.some((l) => l.msg === 'signed event accepted')).toBe(true);
    expect(d.stats.refused).toBe(0);
  });

  it('refuses unsigned, tampered, foreign, stale and future events, logging each reason', async () => {
    const { d, seen, lines, clock } = setup();
    const name = 'mammatus.volume.create';
    d.dispatch(event(name, Buffer.from('{"name":"db"}')));
    const good = await sealEvent(aliceSigner, name, Buffer.from('{"name":"db"}'), clock.now);
    d.dispatch(event(name, Buffer.concat([good.subarray(0, good.length - 3), Buffer.from('web')])));
    d.dispatch(event('mammatus.volume.delete', good)); // signed for another event name
    d.dispatch(event(name, await sealEvent(mallorySigner, name, Buffer.from('x'), clock.now)));
    d.dispatch(event(name, await sealEvent(aliceSigner, name, Buffer.from('x'), clock.now - 6 * 60_000)));
    d.dispatch(event(name, await sealEvent(aliceSigner, name, Buffer.from('x'), clock.now + 6 * 60_000)));
    await d.idle();
    expect(seen).toEqual([]);
    const reasons = refusals(lines);
    expect(reasons).toHaveLength(6);
    expect(reasons[0]).toMatch(/unsigned or malformed/);
    expect(reasons[1]).toMatch(/signature/i);
    expect(reasons[2]).toMatch(/signature/i);
    expect(reasons[3]).toMatch(/not an operator key/);
    expect(reasons[4]).toMatch(/stale or future/);
    expect(reasons[5]).toMatch(/stale or future/);
    expect(d.stats.refused).toBe(6);
  });

  it('refuses a replay of an accepted event (a new Serf ltime, the same signature)', async () => {
    const { d, seen, lines, signatures } = setup();
    const sealed = await sealEvent(aliceSigner, 'mammatus.lb.create', Buffer.from('web'), Date.now());
    d.dispatch(event('mammatus.lb.create', sealed));
    d.dispatch(event('mammatus.lb.create', sealed));
    await d.idle();
    expect(seen).toHaveLength(1);
    expect(refusals(lines)).toEqual(['replayed signature']);
    // The sender's question about its event still gets the first verdict.
    expect(signatures.verdict('mammatus.lb.create', envelopeId(sealed)!)).toEqual({ accepted: true, operator: 'alice@laptop' });
  });

  it('keeps the accepted verdict when a forged copy under the same header follows', async () => {
    const { d, seen, signatures } = setup();
    const sealed = await sealEvent(aliceSigner, 'mammatus.lb.create', Buffer.from('web'), Date.now());
    d.dispatch(event('mammatus.lb.create', sealed));
    d.dispatch(event('mammatus.lb.create', Buffer.concat([sealed.subarray(0, sealed.length - 3), Buffer.from('evil')])));
    await d.idle();
    expect(seen.map((s) => s.payload)).toEqual(['web']);
    expect(signatures.verdict('mammatus.lb.create', envelopeId(sealed)!)).toEqual({ accepted: true, operator: 'alice@laptop' });
  });

  it('refuses every signed event when no operator is configured, or when no gate checks them', async () => {
    for (const s of [setup([]), setup(OPERATORS, undefined, false)]) {
      s.d.dispatch(event('mammatus.x', await sealEvent(aliceSigner, 'mammatus.x', Buffer.from(''), Date.now())));
      await s.d.idle();
      expect(s.seen).toEqual([]);
      expect(refusals(s.lines)[0]).toMatch(/trusts no operator key|checks no signatures/);
    }
  });

  it('streams every user event, so a signed one is checked (and a forged one logged) where no handler takes it', async () => {
    const base = { log: pino({ level: 'silent' }), node: () => 'n', handlerTimeoutMs: 1, slowHandlerMs: 1, queryTimeoutMs: 1 };
    expect(new Dispatcher({ ...base, signatures: new SignatureGate(() => OPERATORS) }).streamFilter()).toBe('query,user');
    expect(new Dispatcher(base).streamFilter()).toBe('query');
    const { d, lines } = setup();
    d.dispatch(event('mammatus.nobody.handles', Buffer.from('forged')));
    await d.idle();
    expect(refusals(lines)).toHaveLength(1);
  });

  it('keeps no watermark for events no handler takes: made-up names cost nothing', async () => {
    const dedupe = new EventDedupe();
    const base = { log: pino({ level: 'silent' }), node: () => 'n', handlerTimeoutMs: 100, slowHandlerMs: 100, queryTimeoutMs: 100 };
    const d = new Dispatcher({ ...base, dedupe, signatures: new SignatureGate(() => OPERATORS) });
    d.on('user:deploy', () => undefined);
    for (let i = 0; i < 100; i++) d.dispatch(event(`made-up-${i}`, Buffer.from('x')));
    d.dispatch(event('deploy', Buffer.from('v1')));
    await d.idle();
    expect(Object.keys(dedupe.snapshot())).toEqual(['deploy']);
  });

  it('lets mammatus.reconcile and events outside mammatus.* through unsigned', async () => {
    const { d, seen } = setup([]);
    d.dispatch(event('mammatus.reconcile', Buffer.from('gateway')));
    d.dispatch(event('deploy', Buffer.from('v2')));
    await d.idle();
    expect(seen.map((s) => s.payload)).toEqual(['gateway', 'v2']);
  });
});

describe('signed query asks', () => {
  it('answers a signed ask of mammatus.leases with the inner payload, and refuses an unsigned one with the reason', async () => {
    const { d } = setup();
    const got: string[] = [];
    d.on('query:mammatus.leases', (q, ctx) => {
      got.push(`${q.payload.toString()} by ${ctx.signer}`);
      return { leases: [] };
    });
    const unsigned = ask('mammatus.leases', Buffer.from('10.0.0.5'));
    d.dispatch(unsigned.q);
    expect(JSON.parse(await unsigned.answer)).toEqual({ error: 'refused: unsigned or malformed envelope (mammatus-sig-v1 expected)' });
    const signed = ask('mammatus.leases', await sealEvent(aliceSigner, 'mammatus.leases', Buffer.from('10.0.0.5'), Date.now()));
    d.dispatch(signed.q);
    expect(JSON.parse(await signed.answer)).toEqual({ leases: [] });
    expect(got).toEqual(['10.0.0.5 by alice@laptop']);
    expect(d.stats.refused).toBe(1);
  });

  it('stays silent to any ask of a signed query this node does not answer', async () => {
    const { d } = setup();
    const unsigned = ask('mammatus.leases', Buffer.from(''));
    d.dispatch(unsigned.q);
    const raced = await Promise.race([unsigned.answer, new Promise((r) => setTimeout(() => r('silent'), 50))]);
    expect(raced).toBe('silent');
    expect(d.stats.refused).toBe(0);
  });
});

describe('mammatus.verdict', () => {
  it('says accepted (with the operator), refused (with the reason) or unseen', async () => {
    const { d, signatures } = setup();
    registerVerdict(d, {
      version: 't',
      node: () => 'node-1',
      uptimeSeconds: () => 0,
      roles: () => [],
      roleStatus: () => ({}),
      reconcile: () => Promise.resolve(),
      verdict: (name, id) => signatures.verdict(name, id),
    });
    const good = await sealEvent(aliceSigner, 'mammatus.a', Buffer.from(''), Date.now());
    const bad = await sealEvent(mallorySigner, 'mammatus.a', Buffer.from(''), Date.now());
    d.dispatch(event('mammatus.a', good));
    d.dispatch(event('mammatus.a', bad));
    await d.idle();
    const verdictOf = async (payload: string) => {
      const a = ask('mammatus.verdict', Buffer.from(payload));
      d.dispatch(a.q);
      return JSON.parse(await a.answer) as Record<string, string>;
    };
    expect(await verdictOf(`mammatus.a ${envelopeId(good)}`)).toEqual({ verdict: 'accepted', operator: 'alice@laptop' });
    expect(await verdictOf(`mammatus.a ${envelopeId(bad)}`)).toMatchObject({
      verdict: 'refused',
      reason: expect.stringMatching(/not an operator key/),
    });
    expect(await verdictOf(`mammatus.b ${envelopeId(good)}`)).toEqual({ verdict: 'unseen' });
    expect(await verdictOf('nonsense')).toMatchObject({ error: expect.stringMatching(/expected/) });
  });
});
