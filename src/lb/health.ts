/**
 * The target health bucket `mammatus-lb-health` (core/lb-health.ts): made where the balancer bucket
 * is (controller side: `mammatus lb …` opens both), read by the CLI, written by each gateway under
 * its own node name (the sink below; nats-server enforces the name, roles/controller/permissions.ts).
 *
 * A reader trusts nothing a value says: a report must parse, stay within its bounds, and name the
 * gateway and balancer its key names; anything else is skipped (and counted), as a gateway's bug or a
 * hand-written value must not break `lb list`.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { detach, errorMessage } from '../../core/errors.js';
import {
  LB_HEALTH_BUCKET,
  LB_HEALTH_MAX_BYTES,
  LB_HEALTH_MAX_SERVERS,
  LB_HEALTH_TTL_MS,
  LB_SERVER_STATUSES,
  lbHealthKey,
  type LbHealthReport,
  type LbHealthSink,
  type LbServerHealth,
} from '../../core/lb-health.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';

/** A report value that is not one. */
export class LbHealthReportError extends Error {
  override readonly name = 'LbHealthReportError';
}

const NODE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function need(ok: boolean, why: string): asserts ok {
  if (!ok) throw new LbHealthReportError(why);
}

const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

function checkServer(v: unknown, i: number): LbServerHealth {
  need(typeof v === 'object' && v !== null && !Array.isArray(v), `servers[${i}]: not an object`);
  const s = v as Record<string, unknown>;
  for (const f of ['server', 'target', 'machine', 'addr']) need(isText(s[f], 300) && s[f] !== '', `servers[${i}].${f}: not a short text`);
  need(Number.isInteger(s.port) && (s.port as number) > 0 && (s.port as number) < 65536, `servers[${i}].port: not a port`);
  need(LB_SERVER_STATUSES.includes(s.status as never), `servers[${i}].status: not one of ${LB_SERVER_STATUSES.join(', ')}`);
  need(s.check === undefined || isText(s.check, 300), `servers[${i}].check: not a short text`);
  need(s.since_s === undefined || (Number.isInteger(s.since_s) && (s.since_s as number) >= 0), `servers[${i}].since_s: not a count`);
  return {
    server: s.server as string,
    target: s.target as string,
    machine: s.machine as string,
    addr: s.addr as string,
    port: s.port as number,
    status: s.status as LbServerHealth['status'],
    ...(s.check !== undefined ? { check: s.check } : {}),
    ...(s.since_s !== undefined ? { since_s: s.since_s as number } : {}),
  };
}

/**
 * The report stored under `key`, checked: JSON within `LB_HEALTH_MAX_BYTES`, its gateway and
 * balancer those of the key, a valid time, at most `LB_HEALTH_MAX_SERVERS` well-formed servers.
 */
export function parseLbHealthReport(key: string, raw: string): LbHealthReport {
  need(Buffer.byteLength(raw) <= LB_HEALTH_MAX_BYTES, `larger than ${LB_HEALTH_MAX_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new LbHealthReportError('not JSON');
  }
  need(typeof v === 'object' && v !== null && !Array.isArray(v), 'not an object');
  const r = v as Record<string, unknown>;
  need(isText(r.gateway, 128) && NODE.test(r.gateway), 'gateway: not a node name');
  need(isText(r.balancer, 63) && LABEL.test(r.balancer), 'balancer: not a balancer name');
  need(lbHealthKey(r.gateway, r.balancer) === key, `stored under ${key}, not its own key`);
  need(isText(r.at, 40) && !Number.isNaN(Date.parse(r.at)), 'at: not a time');
  need(Array.isArray(r.servers) && r.servers.length <= LB_HEALTH_MAX_SERVERS, `servers: not a list of at most ${LB_HEALTH_MAX_SERVERS}`);
  return { gateway: r.gateway, balancer: r.balancer, at: r.at, servers: (r.servers as unknown[]).map(checkServer) };
}

/** Opens the bucket; `create` (controller side) makes it when missing, else it only binds. */
export async function openLbHealthBucket(nc: NatsConnection, opts: { create?: boolean; replicas?: number } = {}): Promise<KV> {
  const kvm = new Kvm(nc);
  if (!opts.create) return kvm.open(LB_HEALTH_BUCKET);
  return kvm.create(LB_HEALTH_BUCKET, {
    history: 1,
    ttl: LB_HEALTH_TTL_MS,
    maxValueSize: LB_HEALTH_MAX_BYTES,
    max_bytes: 64 << 20,
    replicas: opts.replicas ?? 1,
  });
}

/** The most reports `readLbHealth` reads. */
const MAX_REPORTS_READ = 10_000;

/** Every valid report (by key order, at most MAX_REPORTS_READ keys), and how many values were skipped as malformed. */
export async function readLbHealth(kv: KV): Promise<{ reports: LbHealthReport[]; skipped: number }> {
  const keys: string[] = [];
  for await (const key of await kv.keys()) {
    // Bounded: a flood of keys (gateways times balancers is far below it) cannot hang `lb list`.
    if (keys.length >= MAX_REPORTS_READ) break;
    keys.push(key);
  }
  const reports: LbHealthReport[] = [];
  let skipped = 0;
  for (const key of keys.sort()) {
    const e = await kv.get(key);
    if (e?.operation !== 'PUT') continue;
    try {
      reports.push(parseLbHealthReport(key, e.string()));
    } catch {
      skipped++;
    }
  }
  return { reports, skipped };
}

/** Options of `openLbHealthSink`. */
export interface LbHealthSinkOptions {
  /** The gateway's node name: its keys' prefix, the only one its credentials may write. */
  readonly node: string;
  readonly credentials?: ConnectNatsOptions['credentials'];
}

/**
 * The gateway's sink: one persistent connection; writes go to the bucket, which the controller
 * side made (a gateway may not create it). Until it exists writes fail, and the reporter retries.
 */
export function openLbHealthSink(servers: readonly string[], log: Logger, opts: LbHealthSinkOptions): LbHealthSink {
  let stopped = false;
  let open: NatsConnection | undefined;
  detach(
    connectNats(servers, { name: 'mammatus-gateway-lb-health', persistent: true, credentials: opts.credentials }).then(async (nc) => {
      open = nc;
      // Stopped before the first connection: close it now (stop does not wait for one).
      if (stopped) await nc.close();
    }),
    (err) => log.warn({ err }, 'health sink: no NATS connection'),
  );
  let kv: Promise<KV> | undefined;
  const bucket = async (): Promise<KV> => {
    // Not connected yet: this round fails (the reporter retries) rather than wait with a stale report.
    if (!open) throw new Error('not connected to NATS yet');
    kv ??= openLbHealthBucket(open);
    try {
      return await kv;
    } catch (err) {
      kv = undefined;
      throw new Error(`health bucket ${LB_HEALTH_BUCKET}: ${errorMessage(err)}`, { cause: err });
    }
  };
  return {
    async publish(report) {
      const full: LbHealthReport = { gateway: opts.node, ...report };
      await (await bucket()).put(lbHealthKey(opts.node, report.balancer), JSON.stringify(full));
    },
    async remove(balancer) {
      await (await bucket()).delete(lbHealthKey(opts.node, balancer));
    },
    async stop() {
      stopped = true;
      await open?.close().catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'health sink close'));
    },
  };
}
