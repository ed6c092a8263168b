/**
 * One HTTP exchange with LXD over its unix socket: JSON or streamed bodies out, the response
 * envelope back, errors typed. LXD's wire format: every answer is a JSON envelope
 * `{type: sync|async|error, status_code, error_code, error, operation, metadata}`; the HTTP status
 * equals `error_code` on errors; GET of an object carries an `ETag` header that PUT/PATCH may send
 * back as `If-Match` (412 when it is stale).
 */
import http from 'node:http';
import type { Readable } from 'node:stream';
import { fromLxdError, fromTransportError, LxdProtocolError, LxdTimeoutError } from './errors.js';
import type { LxdEnvelope } from './types.js';

/** A request body: JSON, or a stream with its length and content type (image uploads). */
export type LxdBody =
  | { readonly json: unknown }
  | {
      readonly stream: () => Readable;
      readonly length: number;
      readonly contentType: string;
    };

/** One request to LXD. `path` starts with `/1.0` and may carry a query string. */
export interface LxdRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly body?: LxdBody;
  readonly headers?: Readonly<Record<string, string>>;
  /** Milliseconds for the whole exchange. */
  readonly timeoutMs: number;
}

/** A successful answer: the HTTP status, the envelope and the `ETag` header (empty when absent). */
export interface LxdResponse {
  readonly status: number;
  readonly envelope: LxdEnvelope;
  readonly etag: string;
}

/** Largest answer read into memory; LXD's biggest (an image list) is far below. */
const MAX_BODY = 64 * 1024 * 1024;

/**
 * Sends one request over `socketPath` through `agent` and resolves with the envelope; rejects with
 * a typed error for LXD error answers, transport failures, timeouts and non-envelope answers.
 */
export function lxdRequest(agent: http.Agent, socketPath: string, req: LxdRequest): Promise<LxdResponse> {
  const what = `${req.method} ${req.path}`;
  const headers: Record<string, string | number> = { Host: 'lxd', Accept: 'application/json', ...req.headers };
  let payload: Buffer | undefined;
  const body = req.body;
  if (body && 'json' in body) {
    payload = Buffer.from(JSON.stringify(body.json));
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = payload.length;
  } else if (body) {
    headers['Content-Type'] = body.contentType;
    headers['Content-Length'] = body.length;
  }
  return new Promise<LxdResponse>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(fromTransportError(err, socketPath, what));
    };
    const request = http.request({ agent, socketPath, path: req.path, method: req.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY) return void chunks.push(chunk);
        fail(new LxdProtocolError(`${what}: answer larger than ${MAX_BODY} bytes`));
        request.destroy();
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          resolve(toResponse(res, Buffer.concat(chunks).toString('utf8'), what));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    const timer = setTimeout(
      () => request.destroy(new LxdTimeoutError(`${what}: no answer from LXD within ${req.timeoutMs} ms`)),
      req.timeoutMs,
    );
    request.on('error', fail);
    if (payload !== undefined) request.end(payload);
    else if (body && 'stream' in body) {
      const source = body.stream();
      source.on('error', (err) => request.destroy(err));
      source.pipe(request);
    } else request.end();
  });
}

/** Parses and checks the envelope; LXD error answers become typed errors. */
function toResponse(res: http.IncomingMessage, text: string, what: string): LxdResponse {
  const status = res.statusCode ?? 0;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // A proxy or a dying daemon may answer with text; say what came back.
    if (status >= 400) throw fromLxdError(status, text.trim().slice(0, 200), what);
    throw new LxdProtocolError(`${what}: answer is not JSON (HTTP ${status}): ${text.slice(0, 200)}`, status);
  }
  const envelope = parsed as Partial<Record<string, unknown>> | null;
  if (envelope === null || typeof envelope !== 'object' || typeof envelope.type !== 'string') {
    throw new LxdProtocolError(`${what}: answer is not an LXD envelope (HTTP ${status})`, status);
  }
  if (envelope.type === 'error' || status >= 400) {
    const code = typeof envelope.error_code === 'number' && envelope.error_code > 0 ? envelope.error_code : status;
    throw fromLxdError(code, typeof envelope.error === 'string' ? envelope.error : '', what);
  }
  if (envelope.type === 'async') {
    const op = envelope.metadata as Partial<Record<string, unknown>> | null;
    if (typeof envelope.operation !== 'string' || !op || typeof op.id !== 'string') {
      throw new LxdProtocolError(`${what}: async answer without an operation`, status);
    }
  } else if (envelope.type !== 'sync') {
    throw new LxdProtocolError(`${what}: unknown envelope type ${JSON.stringify(envelope.type)}`, status);
  }
  const etag = res.headers.etag;
  return { status, envelope: envelope as unknown as LxdEnvelope, etag: typeof etag === 'string' ? etag : '' };
}
