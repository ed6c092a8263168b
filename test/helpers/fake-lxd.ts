/**
 * A small fake LXD for the client's unit tests: a node:http server on a unix socket in a temp dir.
 * Tests register a handler per `METHOD /path` (query stripped) and the server records every
 * request (method, URL with query, headers, raw body). Envelope helpers build answers the way LXD
 * 5.0.2 does (shapes captured from a real daemon).
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { LxdOperation } from '../../src/lxd/types.js';

/** One request as the fake saw it. */
export interface SeenRequest {
  readonly method: string;
  /** Path and query, e.g. `/1.0/operations/op1/wait?timeout=1`. */
  readonly url: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** An answer: HTTP status, JSON (or raw text) body, extra headers; or `hang` to never answer. */
export type Answer = { status?: number; json?: unknown; text?: string; headers?: Record<string, string> } | 'hang';

/** Produces the answer for one request (may wait). */
export type Handler = (req: SeenRequest) => Answer | Promise<Answer>;

/** A sync envelope, as LXD sends it. */
export function sync(metadata: unknown): Answer {
  return { status: 200, json: { type: 'sync', status: 'Success', status_code: 200, operation: '', error_code: 0, error: '', metadata } };
}

/** An error envelope (`error_code` = HTTP status), as LXD sends it. */
export function lxdError(code: number, error: string): Answer {
  return { status: code, json: { type: 'error', status: '', status_code: 0, operation: '', error_code: code, error, metadata: null } };
}

/** An operation object in a given state. */
export function operation(
  id: string,
  state: 'Running' | 'Success' | 'Failure' | 'Cancelled',
  extra: Partial<LxdOperation> = {},
): LxdOperation {
  const code = { Running: 103, Success: 200, Failure: 400, Cancelled: 401 }[state];
  return {
    id,
    class: 'task',
    description: 'Creating instance',
    status: state,
    status_code: code,
    resources: { instances: ['/1.0/instances/c1'] },
    metadata: null,
    may_cancel: false,
    err: '',
    ...extra,
  };
}

/** An async envelope announcing operation `op` (HTTP 202, as LXD). */
export function asyncOp(op: LxdOperation): Answer {
  return {
    status: 202,
    json: {
      type: 'async',
      status: 'Operation created',
      status_code: 100,
      operation: `/1.0/operations/${op.id}`,
      error_code: 0,
      error: '',
      metadata: op,
    },
  };
}

/** The running fake. */
export interface FakeLxd {
  readonly socketPath: string;
  readonly requests: SeenRequest[];
  /** Registers the handler for `METHOD /path` (no query), replacing an earlier one. */
  on(route: string, handler: Handler): void;
  /** Answers every request no route matches (instead of LXD's 404). */
  fallback(handler: Handler): void;
  close(): Promise<void>;
}

/** Starts a fake LXD on `<tmpdir>/unix.socket`; unknown routes get LXD's 404. */
export async function startFakeLxd(): Promise<FakeLxd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-lxd-'));
  const socketPath = path.join(dir, 'unix.socket');
  const handlers = new Map<string, Handler>();
  let otherwise: Handler = () => lxdError(404, 'not found');
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://lxd');
      const seen: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      const handler = handlers.get(`${seen.method} ${seen.path}`) ?? otherwise;
      Promise.resolve(handler(seen))
        .then((answer) => {
          if (answer === 'hang') return;
          const body = answer.text ?? JSON.stringify(answer.json ?? null);
          res.writeHead(answer.status ?? 200, { 'Content-Type': 'application/json', ...answer.headers });
          res.end(body);
        })
        .catch((err: unknown) => res.destroy(err as Error));
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    requests,
    on: (route, handler) => void handlers.set(route, handler),
    fallback: (handler) => void (otherwise = handler),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
