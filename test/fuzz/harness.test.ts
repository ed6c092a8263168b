/** The fuzz harness itself: reproducible choices, corpus files that round-trip, oracles that bite. */
import { describe, expect, it } from 'vitest';
import { loadDictionary, mutateRequest } from './lib/mutate.js';
import { xmlProblem } from './lib/oracle.js';
import { firstResponse, hasFinalResponse, looksComplete } from './lib/raw-http.js';
import { loadCorpus, parseRequestText, requestBytes, requestText } from './lib/request.js';
import { createRng, DEFAULT_COUNT, DEFAULT_SEED, fuzzSettings, iterationSeed } from './lib/rng.js';

describe('seeded choices', () => {
  it('the same seed gives the same sequence, another seed another', () => {
    const draw = (seed: number) =>
      Array.from(
        { length: 5 },
        (
          (r) => () =>
            r.int(1000)
        )(createRng(seed)),
      );
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(new Set([0, 1, 2, 3].map((i) => iterationSeed(7, i))).size).toBe(4);
  });

  it('reads MAMMATUS_FUZZ_SEED and MAMMATUS_FUZZ_COUNT, and refuses what is not a number', () => {
    expect(fuzzSettings({})).toEqual({ seed: DEFAULT_SEED, count: DEFAULT_COUNT });
    expect(fuzzSettings({ MAMMATUS_FUZZ_SEED: '0x10', MAMMATUS_FUZZ_COUNT: '5' })).toEqual({ seed: 16, count: 5 });
    expect(fuzzSettings({ MAMMATUS_FUZZ_SEED: 'random' }).seed).toBeGreaterThanOrEqual(0);
    expect(() => fuzzSettings({ MAMMATUS_FUZZ_SEED: 'abc' })).toThrow(/MAMMATUS_FUZZ_SEED/);
    expect(() => fuzzSettings({ MAMMATUS_FUZZ_COUNT: '0' })).toThrow(/MAMMATUS_FUZZ_COUNT/);
  });

  it('a mutation is replayed exactly from its seed', () => {
    const corpus = loadCorpus('sqs-query');
    const opts = { dict: loadDictionary('messaging'), body: 'form' as const, methods: ['GET', 'POST'] };
    const once = (seed: number) => {
      const rng = createRng(seed);
      return requestText(mutateRequest(rng, rng.pick(corpus).request, corpus, opts)).toString('latin1');
    };
    expect(once(iterationSeed(1, 99))).toBe(once(iterationSeed(1, 99)));
  });
});

describe('corpus files', () => {
  it('round-trip, with Content-Length computed unless the framing is raw', () => {
    const req = parseRequestText(Buffer.from('POST /x?a=1 HTTP/1.1\nHost: h\nContent-Length: 99\n\nbody'));
    expect(req).toMatchObject({ method: 'POST', target: '/x?a=1', headers: [['Host', 'h']] });
    expect(requestBytes(req).toString()).toBe('POST /x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody');
    expect(parseRequestText(requestText(req))).toEqual(req);
    const raw = parseRequestText(Buffer.from('GET / HTTP/1.1\nContent-Length: 7\nX-Fuzz-Raw-Framing: 1\n\nab'));
    expect(requestBytes(raw).toString()).toBe('GET / HTTP/1.1\r\nContent-Length: 7\r\n\r\nab');
    expect(parseRequestText(requestText(raw))).toEqual(raw);
  });

  it('every target has a corpus that parses', () => {
    for (const target of ['metadata', 'proxy', 'sqs-query', 'sqs-json', 'sns-query']) expect(loadCorpus(target).length).toBeGreaterThan(10);
  });
});

describe('oracles', () => {
  it('XML: AWS answers pass; a bare &, a wrong close, a control character or two roots do not', () => {
    expect(xmlProblem('<?xml version="1.0"?><A xmlns="x"><B>a &amp; b &#xD;</B><C/></A>')).toBeUndefined();
    expect(xmlProblem('<A>a & b</A>')).toMatch(/bare/);
    expect(xmlProblem('<A><B></A></B>')).toMatch(/wrong element/);
    expect(xmlProblem('<A>\u0001</A>')).toMatch(/character/);
    expect(xmlProblem('<A/><B/>')).toMatch(/2 root/);
    expect(xmlProblem('<A>')).toMatch(/unclosed/);
  });

  it('raw HTTP: whole requests and whole answers are told apart', () => {
    expect(looksComplete(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBe(true);
    expect(looksComplete(Buffer.from('GET / HTTP/1.1\r\nHost: x'))).toBe(false);
    expect(looksComplete(Buffer.from('PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab'))).toBe(false);
    const ok = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: 2\r\n\r\nok';
    expect(hasFinalResponse(ok.slice(0, -1), false)).toBe(false);
    expect(hasFinalResponse(ok, false)).toBe(true);
    expect(firstResponse(ok)).toEqual({ statusCode: 200, headers: { 'content-type': 'text/xml', 'content-length': '2' }, body: 'ok' });
  });
});
