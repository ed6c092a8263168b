/**
 * The controllers' host API (issue 19) as a controller-hosted service: answers
 * `mammatus.hosts.join` and `mammatus.hosts.progress` (admission.ts) in one queue group, so each
 * request is handled by one controller, and one request at a time per controller. It runs in the
 * agent (not in a child under the service user): admission signs with the authority's seed, which
 * only the agent holds. The buckets are opened at the first request, and again after a failure:
 * JetStream may not hold them yet when this starts.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { HostedService, Logger, Member } from '../../core/contracts.js';
import { HOST_JOIN_SUBJECT, HOST_PROGRESS_SUBJECT } from '../../core/host-record.js';
import { aliveWithRole } from '../../core/members.js';
import { natsApiService } from '../../core/nats-hosted.js';
import { detach, errorMessage } from '../../core/errors.js';
import type { NodeCredentials } from '../../core/trust.js';
import { rootToPin } from '../ca/store.js';
import { InstanceRegistry } from '../registry/registry.js';
import { Roster } from '../trust/roster.js';
import { answerJoin, answerProgress, MAX_HOST_REQUEST_BYTES, type AdmissionDeps } from './admission.js';
import { Hosts } from './hosts.js';
import { JoinSecrets } from './joins.js';

/** The queue group every controller answers in. */
const QUEUE = 'mammatus-hosts';

/** What the host API is built with. */
export interface HostsServiceWiring {
  /** This controller's credentials (the authority's seed signs the hosts' keys). */
  readonly credentials: () => NodeCredentials | undefined;
  /** Serf's gossip key (undefined: gossip not encrypted); throws when it cannot be read now. */
  readonly gossipKey: () => Promise<string | undefined>;
  /** The buckets' replicas, should they be created here. */
  readonly replicas: () => number;
  readonly now?: () => Date;
}

/**
 * Serf addresses (`ip:port`) of the alive controllers, sorted: a joining host's `retry_join`. This
 * node (`self`) counts whatever its member shows: it is a controller, and just after its start its
 * own trust tag may not have come back from Serf yet.
 */
export function controllerSerfAddresses(members: readonly Member[], self?: string): string[] {
  const own = members.filter((m) => m.name === self && m.status === 'alive');
  const all = new Set([...aliveWithRole(members, 'controller'), ...own]);
  return [...all].map((m) => (m.addr.includes(':') ? `[${m.addr}]:${m.port}` : `${m.addr}:${m.port}`)).sort();
}

/** The buckets admission uses, opened together. */
interface Buckets {
  readonly registry: InstanceRegistry;
  readonly hosts: Hosts;
  readonly joins: JoinSecrets;
  readonly roster: Roster;
}

/**
 * Serves both subjects on `nc` until closed. Each subject's requests are handled one after the
 * other (a join takes a few KV round trips): a burst waits its turn instead of piling up work, and
 * only the metadata service, on a controller, may publish here.
 */
export function serveHosts(
  nc: NatsConnection,
  w: HostsServiceWiring,
  members: () => readonly Member[],
  log: Logger,
  /** This controller's Serf name (see {@link controllerSerfAddresses}). */
  self?: string,
): { close(): void } {
  let buckets: Promise<Buckets> | undefined;
  const open = async (): Promise<Buckets> => {
    const replicas = w.replicas();
    const [registry, joins, roster] = await Promise.all([
      InstanceRegistry.open(nc, { replicas }),
      JoinSecrets.open(nc, replicas),
      Roster.open(nc, replicas),
    ]);
    return { registry, joins, roster, hosts: new Hosts(registry, joins, w.now) };
  };
  const now = w.now ?? (() => new Date());
  const deps = (b: Buckets): AdmissionDeps => ({
    find: (id) => b.registry.find(id),
    consume: (id, attempt, at, repeatOnly) => b.joins.consume(id, attempt, at, repeatOnly),
    progress: (id, step) => b.hosts.progress(id, step),
    roster: b.roster,
    authoritySeed: () => w.credentials()?.authority_seed,
    gossipKey: w.gossipKey,
    retryJoin: () => controllerSerfAddresses(members(), self),
    caPin: () => rootToPin(w.credentials() ?? {}, nc),
    now,
    log,
  });
  const serve = (sub: Subscription, answer: (d: AdmissionDeps, data: Uint8Array) => Promise<unknown>): void =>
    detach(
      (async () => {
        for await (const msg of sub) {
          let reply: unknown;
          try {
            // Refused unread when too large: nothing of it is parsed or logged.
            if (msg.data.length > MAX_HOST_REQUEST_BYTES)
              reply = { ok: false, error: `request larger than ${MAX_HOST_REQUEST_BYTES} bytes` };
            else reply = await answer(deps(await (buckets ??= open())), msg.data);
          } catch (err) {
            buckets = undefined;
            log.error({ err: errorMessage(err) }, 'host API: the buckets are not reachable');
            reply = { ok: false, error: `the controllers could not read their buckets: ${errorMessage(err)}` };
          }
          respond(msg, reply);
        }
      })(),
      (err) => log.error({ err }, 'host API stopped'),
    );
  const join = nc.subscribe(HOST_JOIN_SUBJECT, { queue: QUEUE });
  const progress = nc.subscribe(HOST_PROGRESS_SUBJECT, { queue: QUEUE });
  serve(join, answerJoin);
  serve(progress, answerProgress);
  return {
    close() {
      join.unsubscribe();
      progress.unsubscribe();
    },
  };
}

function respond(msg: Msg, reply: unknown): void {
  if (msg.reply) msg.respond(JSON.stringify(reply));
}

/** The host API as a hosted service of the controller role. */
export function hostsHostedService(w: HostsServiceWiring): HostedService {
  return natsApiService({
    name: 'hosts',
    connectionName: 'mammatus-hosts',
    credentials: w.credentials,
    serve(nc, ctx, members) {
      // Read the gossip key now, so the first join finds it cached (reading it asks every member).
      detach(w.gossipKey(), (err) => ctx.log.warn({ err: errorMessage(err) }, 'host API: gossip key not readable yet'));
      return serveHosts(nc, w, members, ctx.log, ctx.node);
    },
  });
}
