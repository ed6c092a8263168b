/**
 * Target health of the load balancers (issue 21: "`lb list` shows each balancer's targets with their
 * health"): what each gateway's HAProxy says of each balancer's servers, published into the KV
 * bucket `mammatus-lb-health` so an operator sees it from any controller node.
 *
 * One key per gateway and balancer, `<gateway node>.<balancer>`. A balancer name is a DNS label (no
 * dot), so the balancer is the key's last token and the gateway everything before it (node names may
 * hold dots). A gateway may write keys of exactly one more token than its own name
 * (`$KV.mammatus-lb-health.<node>.*`, roles/controller/permissions.ts): never a key another gateway's
 * name owns, not even one whose name starts with its own and a dot. The bucket's TTL expires the
 * reports of a gateway that stopped writing (dead, cut off), and readers mark reports older than
 * {@link LB_HEALTH_STALE_MS} as stale before that. Types and constants only: the gateway writes
 * (roles/gateway/lb/health-report.ts), src/lb/health.ts checks and reads.
 */
import type { Logger } from './contracts.js';

/** The bucket (JetStream stream `KV_mammatus-lb-health`). */
export const LB_HEALTH_BUCKET = 'mammatus-lb-health';
/** How long a report lives in the bucket without being written again (the bucket's max age). */
export const LB_HEALTH_TTL_MS = 60_000;
/** A gateway writes each report at least this often, and at once when it changes. */
export const LB_HEALTH_REFRESH_MS = 10_000;
/** A report older than this is shown as stale (three refreshes missed); the TTL removes it later. */
export const LB_HEALTH_STALE_MS = 30_000;
/** The largest report a gateway writes or a reader accepts (JSON bytes); the bucket refuses larger values. */
export const LB_HEALTH_MAX_BYTES = 64 * 1024;
/** The most servers one report lists (a reader refuses more). */
export const LB_HEALTH_MAX_SERVERS = 256;

/**
 * A server's state as HAProxy reports it: `up` (serving; also "no check"), `down` (failed its
 * checks), `maint` (in maintenance: being removed, or by hand), `drain` (takes no new connections).
 */
export type LbServerStatus = 'up' | 'down' | 'maint' | 'drain';

/** The states, for checks. */
export const LB_SERVER_STATUSES: readonly LbServerStatus[] = ['up', 'down', 'maint', 'drain'];

/** One server of a balancer as one gateway's HAProxy sees it. */
export interface LbServerHealth {
  /** The server's name (`i-<instance>-<port>` or `m-<member>-<port>`, core/lb-record.ts `LbServer`). */
  readonly server: string;
  /** The target that selects it, as `lb create --target` spells it (`tag:app=web:80`); `?` when none matches. */
  readonly target: string;
  /** The instance or member name. */
  readonly machine: string;
  readonly addr: string;
  readonly port: number;
  readonly status: LbServerStatus;
  /** The last check: HAProxy's status code and description (`L4CON Connection refused`); absent without checks. */
  readonly check?: string;
  /** Seconds since the status last changed. */
  readonly since_s?: number;
}

/** One gateway's report of one balancer. */
export interface LbHealthReport {
  /** The gateway's node name (the key's first part). */
  readonly gateway: string;
  readonly balancer: string;
  /** When HAProxy was asked (ISO 8601, UTC). */
  readonly at: string;
  /** Sorted by server name. */
  readonly servers: readonly LbServerHealth[];
}

/** The KV key of a gateway's report of a balancer. */
export const lbHealthKey = (gateway: string, balancer: string): string => `${gateway}.${balancer}`;

/** Where a gateway's reports go (src/lb/health.ts writes them to the bucket; the agent binds the node). */
export interface LbHealthSink {
  /** Writes the report of one balancer (`gateway` is filled in by the sink: the node's own name). */
  publish(report: Omit<LbHealthReport, 'gateway'>): Promise<void>;
  /** Deletes the report of a balancer the gateway no longer serves. */
  remove(balancer: string): Promise<void>;
  stop(): Promise<void>;
}

/** Opens a sink towards the controllers at these NATS servers. */
export type LbHealthSinkFactory = (servers: readonly string[], log: Logger) => LbHealthSink;
