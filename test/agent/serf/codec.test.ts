import { afterEach, describe, it, expect } from 'vitest';
import { Unpackr } from 'msgpackr';
import { encodeMessage, encodeValue, StreamDecoder, wireInt } from '../../../agent/serf/codec.js';
import { ProtocolError } from '../../../agent/serf/errors.js';
import { SerfClient } from '../../../agent/serf/client.js';
import { startFakeSerf, type FakeSerf } from '../../helpers/fake-serf.js';
import { until } from '../../../scripts/lib/wait.js';

const plain = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** A header and a body covering every wire type Serf sends: str8, bin, uint64, nil, nested maps. */
const header = { Seq: 7, Error: '' };
const body = {
  Event: 'user',
  LTime: 2 ** 32 + 5,
  Name: 'mammatus.reconcile-with-a-name-longer-than-31-bytes',
  Payload: Buffer.from('{"v":1,"role":"gateway"}'),
  Coalesce: false,
  Members: [{ Name: 'a', Addr: Buffer.from([127, 0, 0, 1]), Port: 7946, Tags: { role: 'gateway,compute' }, Status: 'alive' }],
  Nothing: null,
  Big: 2n ** 60n,
  Ratio: 0.25,
};

describe('wireInt', () => {
  it.each([
    [0, 0],
    [1, 1],
    [2 ** 32 - 1, 2 ** 32 - 1],
    [2 ** 32, 2n ** 32n],
    [5e9, 5_000_000_000n],
    [Number.MAX_SAFE_INTEGER, BigInt(Number.MAX_SAFE_INTEGER)],
    [7n, 7n],
  ] as [number | bigint, number | bigint][])('%s → %s', (input, expected) => {
    expect(wireInt(input)).toBe(expected);
  });

  it.each([1.5, -1, NaN, Infinity])('throws for %s', (input) => {
    expect(() => wireInt(input)).toThrow(RangeError);
  });

  it('never packs as float64 what it returns', () => {
    for (const n of [2 ** 32, 5e9, 2 ** 40]) expect(encodeValue(wireInt(n))[0]).toBe(0xd3);
    expect(encodeValue(5e9)[0]).toBe(0xcb); // the msgpackr pitfall wireInt exists for
  });
});

describe('encodeMessage', () => {
  it('writes header and body back to back as plain msgpack maps', () => {
    const buf = encodeMessage({ Command: 'event', Seq: 3 }, { Name: 'x', Payload: Buffer.from('p'), Coalesce: false });
    expect(plain.unpackMultiple(buf)).toEqual([
      { Command: 'event', Seq: 3 },
      { Name: 'x', Payload: Buffer.from('p'), Coalesce: false },
    ]);
    // fixmap (variableMapSize), never msgpackr's record extension (0xd4 0x72).
    expect(buf[0]).toBe(0x82);
    expect(buf.includes(Buffer.from([0xd4, 0x72]))).toBe(false);
    const parts = [encodeValue({ Command: 'event', Seq: 3 }), encodeValue({ Name: 'x', Payload: Buffer.from('p'), Coalesce: false })];
    expect(buf.toString('hex')).toBe(Buffer.concat(parts).toString('hex'));
  });

  it('writes only the header when there is no body', () => {
    const buf = encodeMessage({ Command: 'members', Seq: 1 });
    expect(plain.unpackMultiple(buf)).toEqual([{ Command: 'members', Seq: 1 }]);
  });

  it('writes strings as str and payloads as bin', () => {
    const buf = encodeValue({ Name: 'ab', Payload: Buffer.from('cd') });
    expect(buf.includes(Buffer.from([0xa2, 0x61, 0x62]))).toBe(true); // fixstr "ab"
    expect(buf.includes(Buffer.from([0xc4, 0x02, 0x63, 0x64]))).toBe(true); // bin8 "cd"
  });
});

describe('StreamDecoder', () => {
  const frame = Buffer.concat([encodeValue(header), encodeValue(body)]);

  it('decodes the frame whole', () => {
    const values = new StreamDecoder(1 << 20).push(frame);
    expect(values).toEqual([header, { ...body, LTime: 2 ** 32 + 5 }]);
  });

  it('decodes values split at every byte boundary', () => {
    for (let cut = 0; cut <= frame.length; cut++) {
      const d = new StreamDecoder(1 << 20);
      const got = [...d.push(frame.subarray(0, cut)), ...d.push(frame.subarray(cut))];
      expect(got, `cut at ${cut}`).toEqual([header, body]);
      expect(d.pendingBytes).toBe(0);
    }
  });

  it('decodes a frame fed one byte at a time', () => {
    const d = new StreamDecoder(1 << 20);
    const got: unknown[] = [];
    for (const b of frame) got.push(...d.push(Buffer.from([b])));
    expect(got).toEqual([header, body]);
  });

  it('returns several values from one chunk', () => {
    const values = [header, body, { Seq: 8, Error: 'boom' }, { Seq: 9, Error: '' }];
    const d = new StreamDecoder(1 << 20);
    expect(d.push(Buffer.concat(values.map((v) => encodeValue(v))))).toEqual(values);
  });

  it('keeps an incomplete value across pushes and returns the complete ones before it', () => {
    const d = new StreamDecoder(1 << 20);
    const b = encodeValue(body);
    expect(d.push(Buffer.concat([encodeValue(header), b.subarray(0, 10)]))).toEqual([header]);
    expect(d.pendingBytes).toBe(10);
    expect(d.push(b.subarray(10, 20))).toEqual([]);
    expect(d.pendingBytes).toBe(20);
    expect(d.push(Buffer.concat([b.subarray(20), encodeValue({ Seq: 8, Error: '' })]))).toEqual([body, { Seq: 8, Error: '' }]);
    expect(d.pendingBytes).toBe(0);
  });

  it('returns nothing for an empty chunk', () => {
    expect(new StreamDecoder(16).push(Buffer.alloc(0))).toEqual([]);
  });

  it('turns 0xc1 and bare scalars into values that are not maps', () => {
    const values = new StreamDecoder(64).push(Buffer.from([0xc1, 0x05]));
    expect(values).toHaveLength(2);
    expect(Object.getPrototypeOf(values[0])).not.toBe(Object.prototype);
    expect(values[1]).toBe(5);
  });

  it.each([
    ['a map with non-string keys', '81c1c1'],
    ['an unknown extension', 'd40100'],
  ])('throws ProtocolError for %s', (_what, hex) => {
    expect(() => new StreamDecoder(64).push(Buffer.from(hex, 'hex'))).toThrow(ProtocolError);
  });

  it('throws ProtocolError when an incomplete value outgrows maxValueBytes', () => {
    const big = encodeValue({ Payload: Buffer.alloc(500, 1) });
    const d = new StreamDecoder(100);
    expect(d.push(big.subarray(0, 90))).toEqual([]);
    expect(() => d.push(big.subarray(90, 200))).toThrow(ProtocolError);
    // A value that arrives whole is not held, so the limit does not apply to it.
    expect(new StreamDecoder(100).push(big)).toHaveLength(1);
  });

  it('accepts an incomplete value of exactly maxValueBytes', () => {
    const big = encodeValue({ Payload: Buffer.alloc(500, 1) });
    const d = new StreamDecoder(100);
    expect(d.push(big.subarray(0, 100))).toEqual([]);
    expect(d.push(big.subarray(100))).toHaveLength(1);
  });
});

describe('query Timeout on the wire', () => {
  let serf: FakeSerf | undefined;
  afterEach(async () => {
    await serf?.close();
    serf = undefined;
  });

  it('is an int64 (0xd3) count of nanoseconds, never a float64 (0xcb)', async () => {
    serf = await startFakeSerf();
    serf.onCommand('query', (req, _body, c) =>
      c.send([
        { Seq: req.Seq, Error: '' },
        { Seq: req.Seq, Error: '' },
        { Type: 'done', From: '', Payload: null },
      ]),
    );
    const client = await SerfClient.connect({ addr: serf.addr, requestTimeoutMs: 1000 });
    try {
      const q = await client.query({ name: 'mammatus.status', payload: Buffer.from('x'), timeoutMs: 5000 });
      for await (const _ of q) expect.unreachable('no records expected');
      const [sent] = serf.requestsFor('query');
      expect(sent?.body?.Timeout).toBe(5_000_000_000n);
      const raw = sent.rawBody!;
      const key = Buffer.concat([Buffer.from([0xa7]), Buffer.from('Timeout')]);
      const at = raw.indexOf(key) + key.length;
      expect(raw.subarray(at, at + 9).toString('hex')).toBe('d3000000012a05f200');
      expect(raw.includes(0xcb)).toBe(false);
      expect(sent?.body).toMatchObject({ Name: 'mammatus.status', Payload: Buffer.from('x'), RequestAck: false, RelayFactor: 0 });
    } finally {
      client.close();
    }
  });

  it('sends Timeout 0 (Serf default) as an integer too', async () => {
    serf = await startFakeSerf();
    serf.onCommand('query', (req, _b, c) =>
      c.send([
        { Seq: req.Seq, Error: '' },
        { Seq: req.Seq, Error: '' },
        { Type: 'done', From: '', Payload: null },
      ]),
    );
    const client = await SerfClient.connect({ addr: serf.addr, requestTimeoutMs: 1000 });
    try {
      for await (const _ of await client.query({ name: 'q' })) expect.unreachable();
      await until('the condition', () => serf!.requestsFor('query').length === 1, { timeoutMs: 1000, everyMs: 5 });
      const sent = serf.requestsFor('query')[0];
      expect(sent.body?.Timeout).toBe(0n);
      expect(sent.rawBody!.includes(0xcb)).toBe(false);
    } finally {
      client.close();
    }
  });
});
