/**
 * `roles.controller.monitoring` (docs/monitoring.md): the controller's monitoring stack — Prometheus
 * scraping every member through the local agent and evaluating the alerts, Alertmanager sending
 * them on, and optionally InfluxDB 1.x as the long-term store fed by Prometheus' remote write.
 * Without `store` nothing is rendered or run. The defaults, the schema (part of
 * `roles.controller`'s), how the defaults that depend on other keys are resolved, and the checks a
 * schema cannot make.
 */
import { posix } from 'node:path';
import { invalid, withDefaults } from '../../../core/validation.js';
import { splitHostPort } from '../../../core/net.js';

export { MONITORING_FORMATS, MONITORING_HINTS, MONITORING_SETTINGS_SCHEMA, promDurationSeconds } from './schema.js';

/** Where the series are kept for good: Prometheus' own TSDB, or InfluxDB fed by remote write. */
export type MonitoringStore = 'prometheus' | 'influxdb';

/** `roles.controller.monitoring`, resolved. */
export interface MonitoringConfig {
  /** Undefined: no monitoring stack on this controller. */
  readonly store?: MonitoringStore;
  /** The local agent's metrics address, serving `/members/<name>/metrics` for every member (the agent sets it). */
  readonly agent_metrics: string;
  /** The rendered files' directory (default: `monitoring/` beside `paths.nats_conf`). */
  readonly config_dir: string;
  readonly prometheus: {
    readonly binary: string;
    readonly promtool: string;
    readonly listen: string;
    readonly data_dir: string;
    /** Local TSDB retention (default 15d; 2d with store influxdb, which keeps the history). */
    readonly retention: string;
    readonly scrape_interval: string;
    readonly evaluation_interval: string;
    readonly user: string;
  };
  readonly influxdb: {
    readonly binary: string;
    /** The HTTP API (queries, `/ping`, Prometheus' remote write). Unauthenticated: keep it on loopback. */
    readonly listen: string;
    /** influxd's backup/restore RPC service (its top-level `bind-address`). */
    readonly rpc_listen: string;
    readonly data_dir: string;
    readonly database: string;
    /** The database's default retention policy (`INF` keeps everything). */
    readonly retention: string;
    readonly user: string;
  };
  readonly alertmanager: {
    readonly enabled: boolean;
    readonly binary: string;
    readonly amtool: string;
    readonly listen: string;
    readonly data_dir: string;
    readonly user: string;
  };
  /** Grafana's provisioning (docs/monitoring.md, "Dashboards"), rendered only where Grafana is installed. */
  readonly grafana: {
    /** `auto`: when /etc/grafana exists (Grafana is installed); `always`; `never`. */
    readonly provision: 'auto' | 'always' | 'never';
    readonly provisioning_dir: string;
    readonly dashboards_dir: string;
  };
  readonly alerts: {
    readonly for: string;
    /** MammatusDiskNearlyFull below this fraction free. */
    readonly disk_free: number;
    /** MammatusLeasePoolLow above this fraction of the DHCP pool leased. */
    readonly lease_pool: number;
    /** MammatusCertificateExpiring when the node certificate expires within this. */
    readonly cert_expiry: string;
    readonly group_wait: string;
    readonly repeat_interval: string;
    readonly webhooks: readonly string[];
    /** Publish every notification to our own SNS topic (SigV4-signed, as AWS's). */
    readonly sns?: MonitoringSns;
  };
}

/** `alerts.sns`, resolved. */
export interface MonitoringSns {
  readonly topic: string;
  readonly access_key_id: string;
  readonly secret_access_key: string;
  /** `messaging.region` of the controllers (in the topic's ARN and the signature). */
  readonly region: string;
  /** `messaging.account_id` (in the topic's ARN). */
  readonly account_id: string;
  /** The SNS API (the controllers' messaging service). */
  readonly endpoint: string;
  /**
   * With an https endpoint: the root Alertmanager trusts (default `roles.controller.tls.ca`, the
   * cluster's root: the messaging service serves the node certificate once the node holds one).
   */
  readonly ca_file?: string;
  /** With an https endpoint: the name checked in its certificate (default `<node>.mammatus`). */
  readonly server_name?: string;
}

/** The defaults; the data directories and `config_dir` move with the NATS paths when unset (resolveMonitoring). */
export const MONITORING_DEFAULTS: MonitoringConfig = {
  agent_metrics: '127.0.0.1:9475',
  config_dir: '/etc/mammatus/controller/monitoring',
  prometheus: {
    binary: 'prometheus',
    promtool: 'promtool',
    listen: '127.0.0.1:9090',
    data_dir: '/var/lib/mammatus/prometheus',
    retention: '15d',
    scrape_interval: '15s',
    evaluation_interval: '15s',
    user: 'prometheus',
  },
  influxdb: {
    binary: 'influxd',
    listen: '127.0.0.1:8086',
    rpc_listen: '127.0.0.1:8088',
    data_dir: '/var/lib/mammatus/influxdb',
    database: 'mammatus',
    retention: '30d',
    user: 'influxdb',
  },
  alertmanager: {
    enabled: true,
    binary: 'prometheus-alertmanager',
    amtool: 'amtool',
    listen: '127.0.0.1:9093',
    data_dir: '/var/lib/mammatus/alertmanager',
    user: 'prometheus',
  },
  grafana: {
    provision: 'auto',
    provisioning_dir: '/etc/grafana/provisioning',
    dashboards_dir: '/var/lib/mammatus/grafana/dashboards',
  },
  alerts: {
    for: '2m',
    disk_free: 0.1,
    lease_pool: 0.9,
    cert_expiry: '72h',
    group_wait: '30s',
    repeat_interval: '4h',
    webhooks: [],
  },
};

/** The SNS receiver's defaults: the messaging service's (src/messaging/config.ts, settings.ts) on this node. */
export const SNS_DEFAULTS = {
  topic: 'mammatus-alerts',
  region: 'us-east-1',
  account_id: '000000000000',
  endpoint: 'http://127.0.0.1:9324',
} as const;

/** Directories never handed to a daemon's user. */
const SYSTEM_DIRS: ReadonlySet<string> = new Set([
  '/',
  '/etc',
  '/var',
  '/var/lib',
  '/usr',
  '/home',
  '/root',
  '/srv',
  '/opt',
  '/tmp',
  '/run',
  '/boot',
]);

/** Local retention of Prometheus when InfluxDB keeps the history. */
export const SHORT_RETENTION = '2d';

type Written = { readonly [key: string]: unknown } | null | undefined;

/**
 * The resolved monitoring settings: `written` over the defaults, the data directories beside the
 * NATS store (`natsStoreDir`'s parent) and `config_dir` beside nats-server's config (`natsConf`)
 * when unset, so an agent whose files were moved to a lab directory keeps these there too;
 * Prometheus' retention short when InfluxDB keeps the history; an https SNS endpoint trusting the
 * cluster's root (`tlsCa`) unless told otherwise.
 */
export function resolveMonitoring(written: Written, natsStoreDir: string, natsConf: string, tlsCa: string): MonitoringConfig {
  const w = (written ?? {}) as {
    store?: MonitoringStore | null;
    config_dir?: string | null;
    prometheus?: { data_dir?: string | null; retention?: string | null } | null;
    influxdb?: { data_dir?: string | null } | null;
    alertmanager?: { data_dir?: string | null } | null;
    grafana?: { dashboards_dir?: string | null } | null;
    alerts?: { sns?: object | null } | null;
  };
  const state = posix.dirname(natsStoreDir);
  const merged = withDefaults(MONITORING_DEFAULTS, written);
  let sns = w.alerts?.sns
    ? withDefaults<MonitoringSns>({ ...SNS_DEFAULTS, access_key_id: '', secret_access_key: '' }, w.alerts.sns)
    : undefined;
  if (sns?.endpoint.startsWith('https:') && !sns.ca_file) sns = { ...sns, ca_file: tlsCa };
  return {
    ...merged,
    ...(w.store ? { store: w.store } : { store: undefined }),
    config_dir: w.config_dir ?? posix.join(posix.dirname(natsConf), 'monitoring'),
    prometheus: {
      ...merged.prometheus,
      data_dir: w.prometheus?.data_dir ?? posix.join(state, 'prometheus'),
      retention: w.prometheus?.retention ?? (w.store === 'influxdb' ? SHORT_RETENTION : MONITORING_DEFAULTS.prometheus.retention),
    },
    influxdb: { ...merged.influxdb, data_dir: w.influxdb?.data_dir ?? posix.join(state, 'influxdb') },
    alertmanager: { ...merged.alertmanager, data_dir: w.alertmanager?.data_dir ?? posix.join(state, 'alertmanager') },
    grafana: { ...merged.grafana, dashboards_dir: w.grafana?.dashboards_dir ?? posix.join(state, 'grafana', 'dashboards') },
    alerts: { ...merged.alerts, sns },
  };
}

/**
 * Cross-field checks (`at` = `roles.controller`): the stack's ports differ from each other and from
 * `taken` (NATS's, by key), its data directories differ and stay out of the NATS store, and the
 * config directory is none of them. Only when a store is chosen: an unused section is not checked.
 */
export function checkMonitoringConfig(at: string, mon: MonitoringConfig, taken: Readonly<Record<string, string>>, storeDir: string): void {
  if (!mon.store) return;
  if (mon.alerts.sns && !mon.alerts.sns.access_key_id)
    invalid(at, 'monitoring.alerts.sns.access_key_id', 'is required: a key pair of messaging.credentials allowed sns:Publish');
  if (mon.alerts.sns && !mon.alerts.sns.secret_access_key)
    invalid(at, 'monitoring.alerts.sns.secret_access_key', 'is required: the secret of access_key_id');
  const seen = new Map<number, string>(Object.entries(taken).map(([key, listen]) => [splitHostPort(listen).port, key]));
  const listens: [string, string][] = [['monitoring.prometheus.listen', mon.prometheus.listen]];
  if (mon.alertmanager.enabled) listens.push(['monitoring.alertmanager.listen', mon.alertmanager.listen]);
  if (mon.store === 'influxdb')
    listens.push(['monitoring.influxdb.listen', mon.influxdb.listen], ['monitoring.influxdb.rpc_listen', mon.influxdb.rpc_listen]);
  for (const [key, listen] of listens) {
    const port = splitHostPort(listen).port;
    const first = seen.get(port);
    if (first) invalid(at, key, `must not use the port of ${first} (${port})`);
    seen.set(port, key);
  }
  const dirs: [string, string][] = [
    ['prometheus.data_dir', mon.prometheus.data_dir],
    ['alertmanager.data_dir', mon.alertmanager.data_dir],
    ['influxdb.data_dir', mon.influxdb.data_dir],
  ];
  const state = posix.dirname(storeDir);
  const contains = (dir: string, path: string) => path === dir || path.startsWith(`${dir}/`);
  for (const [key, dir] of dirs) {
    if (dir === storeDir || dir.startsWith(`${storeDir}/`)) invalid(at, `monitoring.${key}`, 'must not be inside nats.store_dir');
    // Each daemon's user is given its data directory (chown -R): never one holding the node's
    // credentials, keys or the NATS store, nor a system directory.
    if (SYSTEM_DIRS.has(posix.normalize(dir)) || contains(dir, state))
      invalid(at, `monitoring.${key}`, `must be a directory of its own (it is handed to the daemon's user), not ${dir}`);
    // Each daemon's user owns its data directory (chown -R): our files and the others' stay out of it.
    if (mon.config_dir === dir || mon.config_dir.startsWith(`${dir}/`))
      invalid(at, 'monitoring.config_dir', `must not be inside monitoring.${key}`);
    for (const [other, odir] of dirs)
      if (other !== key && (odir === dir || odir.startsWith(`${dir}/`)))
        invalid(at, `monitoring.${other}`, `must not be inside monitoring.${key}`);
  }
}
