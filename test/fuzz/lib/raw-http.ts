/**
 * Raw HTTP over a socket: the fuzzers send bytes node's own client would refuse to write (bad
 * request lines, control characters, broken framing) so the server's parser itself is exercised.
 */
import net from 'node:net';

/** What came back on one connection. */
export interface RawAnswer {
  /** Status codes of every response on the connection, in order (1xx included). */
  readonly statuses: number[];
  /** Everything received. */
  readonly text: string;
  /** True when the deadline passed before the server closed the connection. */
  readonly timedOut: boolean;
  /** True when no complete answer came within the stall time (the client half-closed to end it). */
  readonly stalled: boolean;
}

const STATUS_LINE = /(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g;

/**
 * True when `text` holds a complete final (non-1xx) response: its headers, and its body by
 * Content-Length or chunked framing (none after a HEAD).
 */
export function hasFinalResponse(text: string, head: boolean): boolean {
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) return false;
    const headers = text.slice(at, end);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1] ?? 0);
    if (status >= 100 && status < 200) {
      at = end + 4;
      continue;
    }
    const body = text.slice(end + 4);
    if (head) return true;
    if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) return /(^|\r\n)0\r\n\r\n/.test(body);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
    // Without a length the body runs to the close (node's own 400s): half-closing hurries that.
    return length ? Buffer.byteLength(body, 'latin1') >= Number(length[1]) : true;
  }
}

/**
 * True when `bytes` look like a whole request: headers ended, and the body as long as its framing
 * says. Only a guess, to save waiting for an answer to a request the server is still reading.
 */
export function looksComplete(bytes: Buffer): boolean {
  const text = bytes.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const headers = text.slice(0, end);
  const body = text.slice(end + 4);
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(headers)) return /(^|\r\n)0\r\n\r\n/.test(body);
  const length = /\r\ncontent-length:\s*(\d+)\s*\r?$/im.exec(headers);
  return !length || body.length >= Number(length[1]);
}

/**
 * Connects to 127.0.0.1:`port` and writes `bytes` (half-closing at once when they are not a whole
 * request: no answer can come before the server knows it has everything). Once a final response is complete, or after
 * `stallMs` without one (a server waiting for a body that never comes), the client half-closes,
 * which makes node end the connection. Reads until the server closes or `timeoutMs` passes.
 */
export function sendRaw(port: number, bytes: Buffer, opts: { stallMs?: number; timeoutMs?: number } = {}): Promise<RawAnswer> {
  const head = bytes.subarray(0, 5).toString('latin1') === 'HEAD ';
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1' });
    let done = false;
    let ended = false;
    let stalled = false;
    const text = () => Buffer.concat(chunks).toString('latin1');
    const halfClose = () => {
      if (!ended && !socket.destroyed) socket.end();
      ended = true;
    };
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(stall);
      socket.destroy();
      const all = text();
      resolve({ statuses: [...all.matchAll(STATUS_LINE)].map((m) => Number(m[1])), text: all, timedOut, stalled });
    };
    const timer = setTimeout(() => finish(true), opts.timeoutMs ?? 3000);
    const stall = setTimeout(() => {
      stalled = !ended;
      halfClose();
    }, opts.stallMs ?? 60);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (hasFinalResponse(text(), head)) halfClose();
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('connect', () => {
      socket.write(bytes);
      if (!looksComplete(bytes)) halfClose();
    });
  });
}

/** One response read from raw text. */
export interface RawResponse {
  readonly statusCode: number;
  /** Header names lower case; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** The first final (non-1xx) response in `text`, its body decoded as UTF-8; undefined when none. */
export function firstResponse(text: string): RawResponse | undefined {
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) return undefined;
    const [statusLine = '', ...lines] = text.slice(at, end).split('\r\n');
    const statusCode = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    if (statusCode >= 100 && statusCode < 200) {
      at = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? NaN);
    const rest = text.slice(end + 4);
    const body = Number.isFinite(length) ? rest.slice(0, length) : rest;
    return { statusCode, headers, body: Buffer.from(body, 'latin1').toString('utf8') };
  }
}
