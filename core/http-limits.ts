/**
 * Limits every HTTP server a tenant or a stranger can reach gets (metadata service, metadata proxy,
 * SQS/SNS API), so that slow or many connections cannot exhaust the process: how long headers, a
 * whole request and an idle connection may take, how many connections the server holds, and how
 * many of them one address may hold. Node enforces the time limits itself (checked every
 * `checkIntervalMs`); the connection caps are counted here, on `connection`, before any byte is read.
 */
import http, { type IncomingMessage, type RequestListener, type Server, type ServerOptions } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';

/** The limits of one server. */
export interface HttpLimits {
  /** Time from connecting until the request's headers are complete. */
  readonly headersTimeoutMs: number;
  /** Time from connecting until the whole request (headers and body) has arrived. */
  readonly requestTimeoutMs: number;
  /** How long a keep-alive connection may wait for its next request. */
  readonly keepAliveTimeoutMs: number;
  /** A socket with no traffic either way for this long is closed (0 = never; long polls need it off or long). */
  readonly idleTimeoutMs: number;
  /** Connections the server holds at once; more are closed on arrival. */
  readonly maxConnections: number;
  /** Connections one remote address holds at once; more are closed on arrival. */
  readonly maxConnectionsPerAddress: number;
  /** How often node checks the header and request timeouts. */
  readonly checkIntervalMs?: number;
}

/** The options `http.createServer` takes for `limits` (the timeouts node checks itself). */
export function serverOptions(limits: HttpLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs ?? 1000,
  };
}

/** A server built by `limitedServer`: what core/tls-listener.ts listens with. */
export interface LimitedServer {
  /** An `https.Server` when built with a certificate (it is an `http.Server` to everything here). */
  readonly server: Server;
  listen(opts: { host: string; port: number }): Promise<void>;
  /** Stops accepting and closes idle connections; resolves once every connection is closed. */
  close(): Promise<void>;
}

/**
 * A plain HTTP server with `limits` (HTTPS with `tls`) calling `handler`. `onClosing` runs when
 * `close` begins, so the handler can answer requests still arriving on open connections.
 */
export function limitedServer(
  limits: HttpLimits,
  tls: { readonly cert: string; readonly key: string } | undefined,
  handler: RequestListener,
  onClosing: () => void,
): LimitedServer {
  // An https.Server is an http.Server to everything below (same events and limits).
  const server: Server = tls
    ? https.createServer({ ...serverOptions(limits), cert: tls.cert, key: tls.key }, handler)
    : http.createServer(serverOptions(limits), handler);
  enforceConnectionLimits(server, limits);
  return {
    server,
    listen: ({ host, port }) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      }),
    close: () =>
      new Promise((resolve) => {
        onClosing();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** What `enforceConnectionLimits` counts; for tests and logs. */
export interface ConnectionCounts {
  /** Connections refused so far because a cap was reached. */
  refused: number;
  /** Open connections per address now. */
  readonly perAddress: ReadonlyMap<string, number>;
}

/**
 * Applies `limits` to a server created with `serverOptions(limits)` (or whose timeouts are set
 * otherwise): the idle timeout, the total cap (node refuses connections past `maxConnections`) and
 * the per-address cap. Returns live counts.
 */
export function enforceConnectionLimits(server: Server, limits: HttpLimits): ConnectionCounts {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  // Every socket timeout comes here (idle, and node's keep-alive timeout, which with a listener
  // closes nothing itself); 0 leaves the idle timeout off.
  server.setTimeout(limits.idleTimeoutMs, closeUnlessRead);
  const perAddress = new Map<string, number>();
  const counts: ConnectionCounts = { refused: 0, perAddress };
  server.on('drop', () => counts.refused++);
  const stalls = new StalledConnections(limits);
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const open = perAddress.get(address) ?? 0;
    if (open >= limits.maxConnectionsPerAddress) {
      counts.refused++;
      socket.destroy();
      return;
    }
    perAddress.set(address, open + 1);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });
  // Over TLS the requests are on the TLS socket, not on the TCP one `connection` gives.
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', (socket: Socket) => stalls.add(socket));
  server.once('close', () => stalls.stop());
  return counts;
}

/**
 * Closes connections that hold on without asking anything: node refreshes a socket's keep-alive
 * timeout on every byte read, and bytes between requests that begin none (blank lines, which the
 * parser skips, so its headers timeout never starts) would hold a connection open for good. A
 * connection with no request under way whose answered bytes have not grown for the keep-alive
 * timeout (and the second node adds to it) plus the headers timeout is closed. Checked every
 * `checkIntervalMs` while connections are open, from what the sockets already count, so requests
 * pay nothing for it.
 */
class StalledConnections {
  private readonly seen = new Map<Socket, { written: number; at: number; busy: boolean }>();
  private timer?: NodeJS.Timeout;
  private readonly graceMs: number;

  constructor(private readonly limits: HttpLimits) {
    // Node lets a next request begin up to a second past its keep-alive timeout.
    this.graceMs = limits.keepAliveTimeoutMs + 1000 + limits.headersTimeoutMs;
  }

  add(socket: Socket): void {
    // One the per-address cap refused is gone already.
    if (socket.destroyed) return;
    this.seen.set(socket, { written: socket.bytesWritten, at: performance.now(), busy: false });
    this.timer ??= setInterval(() => this.check(), this.limits.checkIntervalMs ?? 1000).unref();
    socket.once('close', () => this.delete(socket));
  }

  private delete(socket: Socket): void {
    this.seen.delete(socket);
    if (this.seen.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  // On the monotonic clock: a wall-clock step must not close every waiting connection at once.
  private check(): void {
    const now = performance.now();
    for (const [socket, last] of this.seen) {
      // `_httpMessage` is the response node is writing on the socket (a request under way, a long
      // poll included); node sets it for every request and clears it once the response is done.
      const busy = Boolean((socket as Socket & { _httpMessage?: object | null })._httpMessage);
      // The wait for the next request starts at the first check that finds the last one done.
      if (busy || last.busy || socket.bytesWritten !== last.written) {
        last.written = socket.bytesWritten;
        last.at = now;
        last.busy = busy;
      } else if (now - last.at > this.graceMs) socket.destroy();
    }
  }
}

/**
 * Closes a socket whose timeout fired, unless bytes arrive on it in the same event-loop turn. Timers
 * run before a turn reads its sockets: on a loaded process a kept-alive connection's next request,
 * sent in time, can already be waiting unread when its keep-alive timeout fires, and closing then
 * drops it unanswered (the client sees "socket hang up"). `setImmediate` runs after the turn's reads:
 * a request read by then is served (node refreshed the timer on read; headersTimeout bounds it).
 */
function closeUnlessRead(socket: Socket): void {
  const read = socket.bytesRead;
  setImmediate(() => {
    if (socket.bytesRead === read) socket.destroy();
  });
}

/** The request's body, or `undefined` once it passes `max` bytes (the rest is never read). */
export async function readBodyUpTo(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Bytes of request bodies a server holds in memory at once, across all connections. A body that
 * would take the total past `maxBytes` is cut off; its bytes are given back when its request ends.
 * Bounds memory against many clients that each send a large body and then stall one byte short.
 */
export class BodyBudget {
  private used = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Takes `n` bytes; false (and nothing taken) when that would pass the budget. */
  take(n: number): boolean {
    if (this.used + n > this.maxBytes) return false;
    this.used += n;
    return true;
  }

  /** Gives `n` bytes back. */
  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/**
 * Requests per second one address may make: a token bucket per address (`ratePerS` refilled each
 * second, up to `burst`). Buckets of addresses idle long enough to be full again are dropped, so the
 * map holds only recent callers.
 */
export class PerAddressRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sinceSweep = 0;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
  ) {}

  /** Takes one request's token for `address` at `nowMs`; false when it has none left. */
  take(address: string, nowMs: number): boolean {
    if (++this.sinceSweep >= 10_000) this.sweep(nowMs);
    const b = this.buckets.get(address);
    const tokens = b ? Math.min(this.burst, b.tokens + ((nowMs - b.at) / 1000) * this.ratePerS) : this.burst;
    if (tokens < 1) {
      if (b) Object.assign(b, { tokens, at: nowMs });
      return false;
    }
    this.buckets.set(address, { tokens: tokens - 1, at: nowMs });
    return true;
  }

  /** Addresses tracked now (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(nowMs: number): void {
    this.sinceSweep = 0;
    const refillMs = (this.burst / this.ratePerS) * 1000;
    for (const [address, b] of this.buckets) if (nowMs - b.at >= refillMs) this.buckets.delete(address);
  }
}
