/**
 * The connection half of the LXD client: one daemon's socket, the request/answer exchange with
 * project and ETag handling, waiting for background operations, and `api_extensions` checks.
 * `LxdClient` (client.ts) adds the resource methods on top.
 */
import http from 'node:http';
import { LxdMissingExtensionError, LxdProtocolError, LxdTimeoutError, fromOperationFailure } from './errors.js';
import { lxdRequest, type LxdBody, type LxdRequest, type LxdResponse } from './http.js';
import type { LxdOperation, LxdServerInfo, Versioned } from './types.js';

/** Where Debian's `lxd` package puts the socket (`LXD_DIR=/var/lib/lxd`); the snap uses another. */
export const DEFAULT_LXD_SOCKET = '/var/lib/lxd/unix.socket';

/** How to reach LXD and how long to wait for it. */
export interface LxdClientOptions {
  /** The unix socket; default {@link DEFAULT_LXD_SOCKET}. */
  readonly socketPath?: string;
  /** LXD project for every request; default: LXD's default project. */
  readonly project?: string;
  /** Milliseconds for one request/answer (not a background operation); default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Milliseconds to wait for a background operation; default 120 s. */
  readonly operationTimeoutMs?: number;
}

/** Per-call override of the operation timeout. */
export interface WaitOptions {
  readonly timeoutMs?: number;
}

/** Options of an update: the ETag read with the object (omit to update unconditionally). */
export interface UpdateOptions extends WaitOptions {
  readonly etag?: string;
}

/** A live connection pool to one LXD daemon. Call {@link LxdConnection.close} when done. */
export class LxdConnection {
  /** The socket this client talks to. */
  readonly socketPath: string;
  protected readonly project: string | undefined;
  protected readonly requestTimeoutMs: number;
  protected readonly operationTimeoutMs: number;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private info: LxdServerInfo | undefined;

  constructor(options: LxdClientOptions = {}) {
    this.socketPath = options.socketPath ?? DEFAULT_LXD_SOCKET;
    this.project = options.project;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.operationTimeoutMs = options.operationTimeoutMs ?? 120_000;
  }

  /** Closes pooled connections; the client must not be used after. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * One raw request (for endpoints without a method here). `path` starts with `/1.0`; the
   * project is added. Async answers are returned as they are, not waited for.
   */
  request(method: LxdRequest['method'], path: string, body?: LxdBody, headers?: Record<string, string>): Promise<LxdResponse> {
    const req: LxdRequest = { method, path: this.withProject(path), timeoutMs: this.requestTimeoutMs };
    return lxdRequest(this.agent, this.socketPath, { ...req, ...(body && { body }), ...(headers && { headers }) });
  }

  /** `GET /1.0`, cached after the first call unless `refresh`. */
  async serverInfo(refresh = false): Promise<LxdServerInfo> {
    if (!this.info || refresh) this.info = (await this.call<LxdServerInfo>('GET', '/1.0')).value;
    return this.info;
  }

  /** True when the server lists API extension `name`. */
  async hasExtension(name: string): Promise<boolean> {
    return (await this.serverInfo()).api_extensions.includes(name);
  }

  /** Rejects with {@link LxdMissingExtensionError} naming every extension the server lacks. */
  async requireExtensions(...names: string[]): Promise<void> {
    const have = new Set((await this.serverInfo()).api_extensions);
    const missing = names.filter((n) => !have.has(n));
    if (missing.length) throw new LxdMissingExtensionError(missing);
  }

  /**
   * Waits for a background operation to end: resolves with it on Success, rejects with a typed
   * error on Failure/Cancelled and with {@link LxdTimeoutError} (carrying the operation's last
   * state; LXD goes on with it) when `timeoutMs` passes first.
   */
  async waitOperation(op: LxdOperation | string, options: WaitOptions = {}): Promise<LxdOperation> {
    const timeoutMs = options.timeoutMs ?? this.operationTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const id = typeof op === 'string' ? op.replace(/^\/1\.0\/operations\//, '') : op.id;
    const path = `/1.0/operations/${encodeURIComponent(id)}/wait`;
    let current = typeof op === 'string' ? undefined : op;
    // LXD 5.0 answers a wait that times out with the still-running operation, so loop until done.
    while (!current || current.status_code < 200) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new LxdTimeoutError(`operation ${id} (${current?.description ?? 'unknown'}) still running after ${timeoutMs} ms`, 0, {
          ...(current && { operation: current }),
        });
      }
      // LXD takes whole seconds; the HTTP timeout leaves it a second to answer after its own.
      const seconds = Math.ceil(left / 1000);
      const res = await lxdRequest(this.agent, this.socketPath, {
        method: 'GET',
        path: this.withProject(`${path}?timeout=${seconds}`),
        timeoutMs: Math.min(left, seconds * 1000) + 1000,
      }).catch((err: unknown) => {
        if (err instanceof LxdTimeoutError) {
          throw new LxdTimeoutError(`operation ${id} still running after ${timeoutMs} ms`, 0, { ...(current && { operation: current }) });
        }
        throw err;
      });
      current = this.syncValue<LxdOperation>(res, `GET ${path}`);
    }
    if (current.status_code !== 200) throw fromOperationFailure(current, `operation ${id} (${current.description})`);
    return current;
  }

  /** Asks LXD to cancel a running operation (only some can be: `may_cancel`). */
  async cancelOperation(id: string): Promise<void> {
    await this.call('DELETE', `/1.0/operations/${encodeURIComponent(id)}`);
  }

  /** A request whose answer must be a background operation; waits for it. */
  protected async mustOperate(
    method: LxdRequest['method'],
    path: string,
    body: LxdBody | undefined,
    options: WaitOptions,
  ): Promise<LxdOperation> {
    const what = `${method} ${path}`;
    const op = await this.waitFor(await this.request(method, path, body), what, options);
    if (!op) throw new LxdProtocolError(`${what}: expected a background operation, got a sync answer`);
    return op;
  }

  /** Sends a request; waits when LXD answers with an operation. Resolves with the value and ETag. */
  protected async call<T = unknown>(
    method: LxdRequest['method'],
    path: string,
    body?: LxdBody,
    options: UpdateOptions = {},
  ): Promise<Versioned<T>> {
    const headers = options.etag ? { 'If-Match': options.etag } : undefined;
    const res = await this.request(method, path, body, headers);
    if (res.envelope.type === 'async') {
      const op = await this.waitFor(res, `${method} ${path}`, options);
      return { value: op?.metadata as T, etag: '' };
    }
    return { value: res.envelope.metadata as T, etag: res.etag };
  }

  /** The finished operation of an async answer (undefined for a sync one). */
  protected async waitFor(res: LxdResponse, what: string, options: WaitOptions): Promise<LxdOperation | undefined> {
    if (res.envelope.type !== 'async') return undefined;
    try {
      return await this.waitOperation(res.envelope.metadata, options);
    } catch (err) {
      if (err instanceof Error && !err.message.startsWith(what)) err.message = `${what}: ${err.message}`;
      throw err;
    }
  }

  /** The metadata of a sync answer. */
  private syncValue<T>(res: LxdResponse, what: string): T {
    if (res.envelope.type !== 'sync') throw new LxdProtocolError(`${what}: expected a sync answer, got ${res.envelope.type}`);
    return res.envelope.metadata as T;
  }

  private withProject(path: string): string {
    if (!this.project || path === '/1.0') return path;
    return `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(this.project)}`;
  }
}
