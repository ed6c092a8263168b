/** What the metadata service's handlers answer, the few answers every handler shares, and how an answer is written. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * A body's bytes held as a one-byte string, one character per byte (what Node calls `latin1`), made
 * once for a body served many times (the cached tree leaves): see `send`.
 */
export interface WireBody {
  readonly latin1: string;
}

/** `bytes` (a string: its UTF-8 encoding) as a `WireBody`. */
export const wireBody = (bytes: string | Buffer): WireBody => ({
  latin1: (typeof bytes === 'string' ? Buffer.from(bytes) : bytes).toString('latin1'),
});

/** A handler's answer: a string body is text (sent as UTF-8), a Buffer or a `WireBody` bytes. */
export interface Answer {
  readonly status: number;
  readonly body: string | Buffer | WireBody;
  readonly type: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Plain text. */
export const TEXT = 'text/plain; charset=utf-8';

/** A plain-text answer. */
export const answerText = (status: number, body: string, headers?: Record<string, string>): Answer => ({
  status,
  body,
  type: TEXT,
  ...(headers ? { headers } : {}),
});

/** A JSON answer. */
export const answerJson = (status: number, value: unknown): Answer => ({ status, body: JSON.stringify(value), type: 'application/json' });

/** 404, the answer for every caller or path the service does not know. */
export const NOT_FOUND = answerText(404, 'Not Found');

/**
 * Writes an answer (headers only for HEAD); raw header arrays skip node's header-object walk.
 * `close` ends the connection after it (a body that was not read is never drained).
 *
 * The body always goes to `end` as a string: node then joins it to the header text, and the socket
 * gets one write of one string. A Buffer body would leave with the header text as a two-chunk
 * `writev`, which costs more in node's stream code and, on a TLS socket, one more copy (the chunks
 * are joined before `SSL_write`): in A/B runs ~1–3 µs of server CPU per request over TLS, ~1 µs over
 * plain HTTP (docs/benchmarks.md §16).
 * Everything goes as `latin1`, which maps each byte to one character and back: the header text
 * stays exactly as node made it, and binary bodies (gzip user-data) arrive unchanged. A text body is
 * sent as is when it is ASCII (then its UTF-8 and latin1 forms are the same bytes).
 */
export function send(req: IncomingMessage, res: ServerResponse, a: Answer, close = false): void {
  const b = a.body;
  let data: string;
  let length: number;
  if (typeof b === 'string') {
    length = Buffer.byteLength(b);
    data = length === b.length ? b : Buffer.from(b).toString('latin1');
  } else {
    data = Buffer.isBuffer(b) ? b.toString('latin1') : b.latin1;
    length = data.length;
  }
  const headers = ['content-type', a.type, 'content-length', String(length)];
  if (close) headers.push('connection', 'close');
  if (a.headers) for (const [k, v] of Object.entries(a.headers)) headers.push(k, v);
  res.writeHead(a.status, headers);
  if (req.method === 'HEAD') res.end();
  else res.end(data, 'latin1');
}
