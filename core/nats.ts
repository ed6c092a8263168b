/**
 * How the controller services and the CLI connect to NATS: one place for the client options, so the
 * metadata service, the messaging API and `mammatus instance` behave the same when a server is down.
 *
 * TLS (issue 20, docs/ca.md "TLS on internal links"): once the cluster has a CA, every client of ours
 * verifies the server's chain against the cluster root, `<state_dir>/tls/ca.crt`. The process says
 * once where that file is (`useNatsRootFile`: the agent, the CLI) or hands the root itself
 * (`useNatsRoot`: a service child, told by the agent); `connectNats` reads it at every connect, so a
 * root that appears later (after `ca init`) is used from the next connection on. Without a root the
 * connection is plain (labs without `ca init`); a server that requires TLS then refuses it.
 */
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { inboxPrefix, userKey, type NodeCredentials } from './trust.js';

/**
 * How a connection treats TLS: `{ ca }` verifies the server against that root (PEM); `'plain'` never
 * upgrades. There is no unverified TLS: a node's admission carries the root (docs/ca.md).
 */
export type NatsTls = { readonly ca: string } | 'plain';

/** Options of `connectNats`. */
export interface ConnectNatsOptions {
  /** Client name shown by the server's monitoring (`connz`). */
  readonly name: string;
  /**
   * Keep trying forever, also before the first connection succeeds (a service that must come up
   * while its NATS server is still starting); otherwise fail after `timeoutMs` (a CLI command).
   */
  readonly persistent?: boolean;
  readonly timeoutMs?: number;
  /**
   * Who connects: the node's credentials (its nkey signs the server's nonce, and replies come on
   * its own inbox prefix, the only one its permissions let it read). Absent: anonymous, which the
   * controllers refuse; only tools pointed at a lab server use it.
   */
  readonly credentials?: Pick<NodeCredentials, 'seed'>;
  /** TLS for this connection; default: the process's root (`useNatsRootFile` / `useNatsRoot`) when there is one. */
  readonly tls?: NatsTls;
}

/** Where the process's root is: a file read at each connect, or the PEM itself. */
let rootSource: { readonly file: string } | { readonly pem: string } | undefined;
/** The last root read from the file: kept when a later read fails, as losing it would mean plain NATS. */
let lastFileRoot: string | undefined;

/** Who wants to hear that the root may have changed (service children's parents). */
const rootListeners = new Set<() => void>();

/** Calls `listener` whenever `natsRootChanged` is called; returns how to stop. */
export function watchNatsRoot(listener: () => void): () => void {
  rootListeners.add(listener);
  return () => rootListeners.delete(listener);
}

/** Says the root file may have changed (the agent, after the certificate keeper wrote new files). */
export function natsRootChanged(): void {
  for (const listener of rootListeners) listener();
}

/** The message a service child takes a new root from (agent/cli/service-child.ts). */
export const NATS_CA_MESSAGE = 'nats_ca';

/** Sends the root to a service child each time it may have changed; returns how to stop. */
export function forwardNatsRoot(send: (message: Record<string, unknown>) => void): () => void {
  return watchNatsRoot(() => send({ type: NATS_CA_MESSAGE, ...natsCaField() }));
}

/** Uses the root in `file` (`<state_dir>/tls/ca.crt`) for every later connection; absent file = plain. */
export function useNatsRootFile(file: string | undefined): void {
  rootSource = file ? { file } : undefined;
  lastFileRoot = undefined;
}

/** Uses `pem` as the root for every later connection (undefined: plain). */
export function useNatsRoot(pem: string | undefined): void {
  rootSource = pem ? { pem } : undefined;
}

/**
 * The process's root as PEM, when it has one (read now: it may have appeared since the last call).
 * Once read, a root is never dropped: a read that fails later (a transient error, a half-written
 * replacement) returns the last good one, since no root means plain connections and plain HTTP.
 */
export function natsRootPem(): string | undefined {
  if (!rootSource) return undefined;
  if ('pem' in rootSource) return rootSource.pem;
  try {
    const text = readFileSync(rootSource.file, 'utf8');
    if (text.includes('BEGIN CERTIFICATE')) lastFileRoot = text;
  } catch {
    // Keep the last good root (undefined before the first).
  }
  return lastFileRoot;
}

/**
 * Takes the root from a service child's `nats_ca` message: a new root replaces the old, but a
 * message without one (the agent could not read its file just then) never turns TLS off.
 */
export function takeNatsRootMessage(value: unknown): void {
  if (typeof value === 'string' && value.includes('BEGIN CERTIFICATE')) useNatsRoot(value);
}

/** The field a service child's init message carries the root in (`nats_ca`; absent: plain). */
export function natsCaField(): { nats_ca?: string } {
  const pem = natsRootPem();
  return pem ? { nats_ca: pem } : {};
}

/** What node:tls calls a `checkServerIdentity` on: the connect options, with the socket underneath. */
interface TlsCheckContext {
  readonly servername?: string;
  readonly host?: string;
  readonly socket?: { readonly remoteAddress?: string };
}

/** Whether `address` (a socket's peer) is this machine's loopback: 127.0.0.0/8 or ::1. */
export function isLoopbackAddress(address: string): boolean {
  const bare = address.replace(/^\[(.*)\]$/, '$1').replace(/^::ffff:(?=\d+\.)/i, '');
  return (isIP(bare) === 4 && bare.startsWith('127.')) || (isIP(bare) === 6 && bare.replace(/^(0{0,4}:)*:?/, '') === '1');
}

/**
 * The name check of a verified connection. The chain is always checked against the root (only
 * admitted nodes hold a certificate from it); the name too, except when the connection's peer is
 * loopback: a node's own server is reached as 127.0.0.1, which its certificate does not name, and
 * whoever listens on this node's loopback is on this node already.
 *
 * The exception is decided by the socket's real peer address, never by `host`: node:tls passes
 * `'localhost'` as `host` when the server was dialled by IP without a servername, which is how
 * nats.js upgrades every `nats://<ip>:4222` connection. The name checked is the servername when there
 * is one, else the peer's address. Called without node:tls's context (no socket), nothing is spared.
 */
export function natsServerIdentity(this: TlsCheckContext | void, host: string, cert: PeerCertificate): Error | undefined {
  const ctx = this ?? undefined;
  const peer = ctx?.socket?.remoteAddress;
  if (peer !== undefined && isLoopbackAddress(peer)) return undefined;
  const name = ctx?.servername || ctx?.host || peer || host;
  return checkServerIdentity(name.replace(/^\[(.*)\]$/, '$1'), cert);
}

/**
 * The nats.js `tls` option for `tls` (default: the process's root). Without a root it is `null`
 * (plain): nats.js would otherwise upgrade whenever the server offers TLS (`allow_plain`) and fail
 * to verify it with the system's CAs, locking out exactly the rootless nodes `allow_plain` is for.
 * A server that requires TLS still refuses such a client.
 */
export function natsTlsOption(tls: NatsTls | undefined): Record<string, unknown> | null {
  if (tls === 'plain') return null;
  // nats.js hands every key of this object on to node:tls connect.
  const ca = tls?.ca ?? natsRootPem();
  return ca ? { ca, checkServerIdentity: natsServerIdentity } : null;
}

/** Pause between first attempts of a persistent connection begun before the process held a root. */
const FIRST_RETRY_MS = 500;

/** Connects to one or more NATS servers (`nats://host:port`, comma-separated or a list). */
export async function connectNats(servers: string | readonly string[], opts: ConnectNatsOptions): Promise<NatsConnection> {
  const list = (typeof servers === 'string' ? servers.split(',') : [...servers]).map((s) => s.trim()).filter(Boolean);
  if (opts.persistent && opts.tls === undefined && natsRootPem() === undefined) {
    // nats.js waits for a first connection with one options object, fixed at the call: a root that
    // arrives meanwhile (the node's first certificate, a child's nats_ca message) would never be used
    // and a TLS-only server would refuse every attempt. Each first attempt is built afresh instead.
    for (;;) {
      try {
        return await dial(list, opts, false);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS));
      }
    }
  }
  return dial(list, opts, true);
}

/** One `connect` with the TLS option as it is now; `waitFirst`: a persistent one waits for its first connection. */
async function dial(list: readonly string[], opts: ConnectNatsOptions, waitFirst: boolean): Promise<NatsConnection> {
  const tls = natsTlsOption(opts.tls);
  const nc = await connect({
    servers: [...list],
    name: opts.name,
    timeout: opts.timeoutMs ?? 5000,
    // nats.js builds an Error with a stack for every request by default, to give failures the
    // caller's async stack: a quarter of the messaging API's CPU per message (docs/benchmarks.md §6).
    noAsyncTraces: true,
    tls,
    ...(opts.credentials
      ? {
          authenticator: nkeyAuthenticator(new TextEncoder().encode(opts.credentials.seed)),
          inboxPrefix: inboxPrefix(userKey(opts.credentials)),
        }
      : {}),
    // A service keeps trying through authorization errors too: a node admitted (or re-admitted)
    // after it started gets in at the next attempt, once the controllers list its key.
    ...(opts.persistent
      ? { waitOnFirstConnect: waitFirst, maxReconnectAttempts: -1, reconnectTimeWait: 500, ignoreAuthErrorAbort: true }
      : { maxReconnectAttempts: 0 }),
  }).catch((err: unknown) => {
    throw tls === null && opts.tls !== 'plain' ? explainRootless(err) : err;
  });
  if (opts.persistent && opts.tls === undefined) followRoot(nc);
  return nc;
}

/** nats.js's error for a TLS-only server met without a root (`tls: null`), said plainly. */
function explainRootless(err: unknown): unknown {
  const message = err instanceof Error ? err.message : String(err);
  // nats.js fails on the null option while upgrading (its wording varies: certFile, null to object).
  if (!/certFile|null to object/.test(message)) return err;
  return new Error('the NATS server requires TLS and this node holds no cluster root to verify it (<state_dir>/tls/ca.crt)', {
    cause: err,
  });
}

/**
 * Keeps a long-lived connection's TLS in step with the root: the first certificate of a controller
 * restarts its nats-server with TLS, and the services connected to it in plain text must verify it
 * from their next reconnect on. nats.js dials every reconnect with the connection's own options
 * object, so the option is set there before each attempt.
 */
function followRoot(nc: NatsConnection): void {
  const options = (nc as unknown as { options?: { tls?: unknown } }).options;
  if (!options) return;
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (s.type !== 'disconnect' && s.type !== 'reconnecting') continue;
      const tls = natsTlsOption(undefined);
      if (tls) options.tls = tls;
    }
  })().catch(() => undefined);
}
