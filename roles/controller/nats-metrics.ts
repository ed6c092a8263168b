/**
 * nats-server's and JetStream's own numbers as the controller's metrics (docs/monitoring.md,
 * Controller): at each scrape the role reads the server's HTTP monitor (`/varz` and `/jsz` on
 * `nats.monitor_listen`, the port its health check uses) and sets `mammatus_nats_*` and
 * `mammatus_jetstream_*`. The server's totals since its start become counters through
 * {@link counterFrom} (a restarted server counts from zero again: a reset).
 */
import { counterFrom, gauge, onCollect } from '../../core/metrics.js';
import type { MonitorProbe } from './health.js';

/** What the metrics take from `/varz`. */
export interface VarzNumbers {
  readonly connections: number;
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly memBytes: number;
  readonly cpuPercent: number;
}

/** What the metrics take from `/jsz`. */
export interface JszNumbers {
  /** A meta leader is known (clustered), or JetStream runs standalone (it is its own leader). */
  readonly leaderKnown: boolean;
  /** The meta group's size (1 standalone); 0 with JetStream off. */
  readonly clusterSize: number;
  readonly streams: number;
  readonly consumers: number;
  readonly messages: number;
  readonly bytes: number;
}

function object(body: string, what: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(body);
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${what} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** A number field, 0 when absent or not a number (an older server without it). */
function num(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** Parses nats-server's `/varz` answer. */
export function parseVarz(body: string): VarzNumbers {
  const v = object(body, '/varz');
  return {
    connections: num(v, 'connections'),
    inMsgs: num(v, 'in_msgs'),
    outMsgs: num(v, 'out_msgs'),
    inBytes: num(v, 'in_bytes'),
    outBytes: num(v, 'out_bytes'),
    memBytes: num(v, 'mem'),
    cpuPercent: num(v, 'cpu'),
  };
}

/** Parses nats-server's `/jsz` answer (2.9: `meta_cluster` only when clustered, `disabled` with JetStream off). */
export function parseJsz(body: string): JszNumbers {
  const j = object(body, '/jsz');
  const counts = { streams: num(j, 'streams'), consumers: num(j, 'consumers'), messages: num(j, 'messages'), bytes: num(j, 'bytes') };
  if (j.disabled === true) return { leaderKnown: false, clusterSize: 0, ...counts };
  const meta = j.meta_cluster as { leader?: unknown; cluster_size?: unknown } | undefined;
  if (!meta || typeof meta !== 'object') return { leaderKnown: true, clusterSize: 1, ...counts };
  const leaderKnown = typeof meta.leader === 'string' && meta.leader.length > 0;
  return { leaderKnown, clusterSize: typeof meta.cluster_size === 'number' ? meta.cluster_size : 0, ...counts };
}

const totals = {
  inMsgs: counterFrom({ name: 'mammatus_nats_in_msgs_total', help: 'Messages nats-server received (from its /varz).' }),
  outMsgs: counterFrom({ name: 'mammatus_nats_out_msgs_total', help: 'Messages nats-server sent (from its /varz).' }),
  inBytes: counterFrom({ name: 'mammatus_nats_in_bytes_total', help: 'Bytes nats-server received (from its /varz).' }),
  outBytes: counterFrom({ name: 'mammatus_nats_out_bytes_total', help: 'Bytes nats-server sent (from its /varz).' }),
};

const gauges = {
  connections: gauge({ name: 'mammatus_nats_connections', help: 'Client connections open on nats-server.' }),
  memBytes: gauge({ name: 'mammatus_nats_mem_bytes', help: 'Resident memory of nats-server, in bytes.' }),
  cpuPercent: gauge({ name: 'mammatus_nats_cpu_percent', help: 'CPU use of nats-server, in percent of one core.' }),
  leaderKnown: gauge({
    name: 'mammatus_jetstream_meta_leader_known',
    help: '1 when JetStream has a meta leader (quorum) as this controller sees it, or runs standalone; 0 otherwise or when its monitor does not answer.',
  }),
  clusterSize: gauge({ name: 'mammatus_jetstream_meta_cluster_size', help: 'Servers in the JetStream meta group (1 standalone).' }),
  streams: gauge({ name: 'mammatus_jetstream_streams', help: 'JetStream streams (key-value buckets included).' }),
  consumers: gauge({ name: 'mammatus_jetstream_consumers', help: 'JetStream consumers.' }),
  messages: gauge({ name: 'mammatus_jetstream_messages', help: 'Messages stored in JetStream.' }),
  bytes: gauge({ name: 'mammatus_jetstream_bytes', help: 'Bytes stored in JetStream.' }),
};

/** Sets the metrics from one reading of `/varz` and `/jsz`. */
export function setNatsMetrics(varz: VarzNumbers, jsz: JszNumbers): void {
  for (const key of ['inMsgs', 'outMsgs', 'inBytes', 'outBytes'] as const) totals[key].set({}, varz[key]);
  gauges.connections.set(varz.connections);
  gauges.memBytes.set(varz.memBytes);
  gauges.cpuPercent.set(varz.cpuPercent);
  gauges.leaderKnown.set(jsz.leaderKnown ? 1 : 0);
  gauges.clusterSize.set(jsz.clusterSize);
  for (const key of ['streams', 'consumers', 'messages', 'bytes'] as const) gauges[key].set(jsz[key]);
}

/** Reads the monitor at `base` (`http://127.0.0.1:8222`) and sets the metrics. */
export async function readNatsMetrics(probe: MonitorProbe, base: string): Promise<void> {
  const get = async (path: string) => {
    const { status, body } = await probe(base + path);
    if (status !== 200) throw new Error(`${path}: HTTP ${status}`);
    return body;
  };
  try {
    const [varz, jsz] = await Promise.all([get('/varz'), get('/jsz')]);
    setNatsMetrics(parseVarz(varz), parseJsz(jsz));
  } catch (err) {
    // A server whose monitor does not answer cannot vouch for a quorum: the alert must not stay quiet
    // on the last good value. The rest keep theirs; the failure is counted as a collector error.
    gauges.leaderKnown.set(0);
    throw err;
  }
}

/** The role's collector: follows the monitor URL of the running config; `stop` removes it. */
export class NatsMetrics {
  private url?: string;
  private remove?: () => void;

  constructor(private readonly probe: MonitorProbe) {}

  /** Collects from `monitorUrl` at each scrape from now on (called at every start and port change). */
  follow(monitorUrl: string): void {
    this.url = monitorUrl;
    this.remove ??= onCollect('nats', () => readNatsMetrics(this.probe, this.url ?? monitorUrl));
  }

  /** Stops collecting; the series go too (a node that no longer runs the role reports none). */
  stop(): void {
    this.remove?.();
    this.remove = undefined;
    for (const g of Object.values(gauges)) g.remove();
    for (const t of Object.values(totals)) t.retain([]);
  }
}
