/**
 * How the controller services and the CLI connect to NATS: one place for the client options, so the
 * metadata service, the messaging API and `mammatus instance` behave the same when a server is down.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';

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
    ...(opts.persistent ? { waitOnFirstConnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500 } : { maxReconnectAttempts: 0 }),
  });
}
