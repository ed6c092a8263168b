/**
 * A service the controller role hosts that answers requests on NATS (the CA's signing API, the
 * planned hosts' API): it connects with its own credentials or the node's (persistent: the local
 * nats-server restarts), lets `serve` subscribe, follows membership, and on stop closes the
 * subscriptions and drains the connection. One shape, so each API only says what it serves.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { HostedService, HostedServiceContext, Member } from './contracts.js';
import { connectNats } from './nats.js';
import type { NodeCredentials } from './trust.js';

/** What a NATS API service is made of. */
export interface NatsApiServiceSpec {
  /** The hosted service's name (logs, errors). */
  readonly name: string;
  /** The NATS connection's name (the server's connz). */
  readonly connectionName: string;
  /** Credentials of its own (the authority's, on a controller); undefined: the node's. */
  readonly credentials: () => Pick<NodeCredentials, 'seed'> | undefined;
  /** Subscribes on `nc`; `members()` is the membership as of now. Returns how to unsubscribe. */
  serve(nc: NatsConnection, ctx: HostedServiceContext, members: () => readonly Member[]): { close(): void };
}

/** Builds the hosted service of `spec`. */
export function natsApiService(spec: NatsApiServiceSpec): HostedService {
  let close: (() => Promise<void>) | undefined;
  let members: readonly Member[] = [];
  return {
    name: spec.name,
    async start(ctx) {
      members = ctx.members;
      const credentials = spec.credentials() ?? ctx.credentials;
      const nc = await connectNats(ctx.natsUrl, { name: spec.connectionName, persistent: true, credentials });
      const api = spec.serve(nc, ctx, () => members);
      close = () => {
        api.close();
        return nc.drain();
      };
    },
    membersChanged(next) {
      members = next;
    },
    async stop() {
      await close?.().catch(() => undefined);
      close = undefined;
    },
  };
}
