/**
 * How the controller services and the CLI connect to NATS: one place for the client options, so the
 * metadata service, the messaging API and `mammatus instance` behave the same when a server is down.
 */
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { inboxPrefix, userKey, type NodeCredentials } from './trust.js';

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
}

/** Connects to one or more NATS servers (`nats://host:port`, comma-separated or a list). */
export async function connectNats(servers: string | readonly string[], opts: ConnectNatsOptions): Promise<NatsConnection> {
  const list = (typeof servers === 'string' ? servers.split(',') : [...servers]).map((s) => s.trim()).filter(Boolean);
  return connect({
    servers: list,
    name: opts.name,
    timeout: opts.timeoutMs ?? 5000,
    // nats.js builds an Error with a stack for every request by default, to give failures the
    // caller's async stack: a quarter of the messaging API's CPU per message (docs/benchmarks.md §6).
    noAsyncTraces: true,
    ...(opts.credentials
      ? {
          authenticator: nkeyAuthenticator(new TextEncoder().encode(opts.credentials.seed)),
          inboxPrefix: inboxPrefix(userKey(opts.credentials)),
        }
      : {}),
    // A service keeps trying through authorization errors too: a node admitted (or re-admitted)
    // after it started gets in at the next attempt, once the controllers list its key.
    ...(opts.persistent
      ? { waitOnFirstConnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, ignoreAuthErrorAbort: true }
      : { maxReconnectAttempts: 0 }),
  });
}
