/**
 * Fuzz requests and the corpus: each corpus file is one HTTP/1.1 request as text (request line,
 * headers, a blank line, the body to the end of the file), so a seed or a finding's reproducer can
 * be read, edited and replayed with `nc` as it is.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** A request as the mutators see it. Names keep the case they were written in. */
export interface FuzzRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  /** True when a mutation chose the framing: then no `content-length` is added on the wire. */
  readonly rawFraming?: boolean;
  /** The exact bytes to send, when mutated on the wire (raw-socket targets only); the rest is a summary. */
  readonly wire?: Buffer;
}

/** A corpus entry: its file name and request. */
export interface CorpusEntry {
  readonly name: string;
  readonly request: FuzzRequest;
}

/** The corpus directory of a target (`test/fuzz/corpus/<target>`). */
export function corpusDir(target: string): string {
  return path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'corpus', target);
}

/**
 * Reads a target's corpus, sorted by name (the replay order): `*.http` files as requests, `*.raw`
 * files as exact wire bytes (findings of raw-socket targets whose bytes no request line describes).
 */
export function loadCorpus(target: string): CorpusEntry[] {
  const dir = corpusDir(target);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.http') || f.endsWith('.raw'))
    .sort()
    .map((name) => {
      const bytes = readFileSync(path.join(dir, name));
      if (name.endsWith('.http')) return { name, request: parseRequestText(bytes) };
      // The summary is only what mutations start from; the bytes are what is sent.
      const summary = parseRequestText(Buffer.from('GET / HTTP/1.1\n\n'));
      return { name, request: { ...summary, wire: bytes } };
    });
}

/**
 * Parses a corpus file. Lines end in LF or CRLF; a `content-length` header is dropped (the wire
 * form computes it), unless the file says `X-Fuzz-Raw-Framing: 1`, which keeps the headers as written.
 */
export function parseRequestText(bytes: Buffer): FuzzRequest {
  const text = bytes.toString('latin1');
  const end = /\r?\n\r?\n/.exec(text);
  const head = end ? text.slice(0, end.index) : text;
  const bodyStart = end ? end.index + end[0].length : text.length;
  const [requestLine = '', ...lines] = head.split(/\r?\n/);
  const first = requestLine.indexOf(' ');
  const last = requestLine.lastIndexOf(' ');
  if (first < 0 || last <= first) throw new Error(`corpus: bad request line: ${JSON.stringify(requestLine)}`);
  const all = lines.map((l): [string, string] => {
    const colon = l.indexOf(':');
    return colon < 0 ? [l, ''] : [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const rawFraming = all.some(([n, v]) => n.toLowerCase() === 'x-fuzz-raw-framing' && v === '1');
  const headers = all
    .filter(([n]) => n.toLowerCase() !== 'x-fuzz-raw-framing')
    .map(([n, v]): [string, string] => [n, Buffer.from(v, 'latin1').toString('utf8')]);
  return {
    method: requestLine.slice(0, first),
    target: Buffer.from(requestLine.slice(first + 1, last), 'latin1').toString('utf8'),
    headers: rawFraming ? headers : headers.filter(([n]) => n.toLowerCase() !== 'content-length'),
    body: bytes.subarray(bodyStart),
    ...(rawFraming ? { rawFraming } : {}),
  };
}

/** The request's wire bytes (HTTP/1.1, CRLF), with a `content-length` unless the framing is raw. */
export function requestBytes(req: FuzzRequest): Buffer {
  if (req.wire) return req.wire;
  const lines = [`${req.method} ${req.target} HTTP/1.1`, ...req.headers.map(([n, v]) => `${n}: ${v}`)];
  if (!req.rawFraming && (req.body.length > 0 || req.method === 'POST' || req.method === 'PUT')) {
    lines.push(`Content-Length: ${req.body.length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), req.body]);
}

/** The request as a corpus file (the reproducer a failure leaves behind). */
export function requestText(req: FuzzRequest): Buffer {
  const lines = [`${req.method} ${req.target} HTTP/1.1`, ...req.headers.map(([n, v]) => `${n}: ${v}`)];
  if (req.rawFraming) lines.push('X-Fuzz-Raw-Framing: 1');
  return Buffer.concat([Buffer.from(`${lines.join('\n')}\n\n`, 'utf8'), req.body]);
}

/** The value of the first header named `name` (any case). */
export function headerOf(req: FuzzRequest, name: string): string | undefined {
  return req.headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/** `req` with every header named `name` (any case) removed. */
export function withoutHeader(req: FuzzRequest, ...names: string[]): FuzzRequest {
  return { ...req, headers: req.headers.filter(([n]) => !names.includes(n.toLowerCase())) };
}
