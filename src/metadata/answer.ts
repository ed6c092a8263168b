/** What the metadata service's handlers answer, the few answers every handler shares, and how an answer is written. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A handler's answer. */
export interface Answer {
  readonly status: number;
  readonly body: string | Buffer;
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
 */
export function send(req: IncomingMessage, res: ServerResponse, a: Answer, close = false): void {
  const body = typeof a.body === 'string' ? Buffer.from(a.body) : a.body;
  const headers = ['content-type', a.type, 'content-length', String(body.length)];
  if (close) headers.push('connection', 'close');
  if (a.headers) for (const [k, v] of Object.entries(a.headers)) headers.push(k, v);
  res.writeHead(a.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
