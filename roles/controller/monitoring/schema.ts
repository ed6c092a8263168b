/**
 * The schema of `roles.controller.monitoring` as operators write it (part of `roles.controller`'s),
 * its string formats with the sentence each shows when it fails, and the hints for what Ajv cannot
 * word. The resolved settings and their defaults are in config.ts.
 */
import type { Format } from '../../../core/validation.js';
import { isDnsName } from '../../../core/net.js';

const PROM_DURATION = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

/** Seconds of a Prometheus duration (`15d`, `1h30m`, `500ms`); undefined when it is not one or is zero. */
export function promDurationSeconds(text: string): number | undefined {
  const m = PROM_DURATION.exec(text);
  if (!m || text === '') return undefined;
  const [y, w, d, h, min, s, ms] = m.slice(1).map((v) => Number(v ?? 0));
  const total = (((y * 365 + w * 7 + d) * 24 + h) * 60 + min) * 60 + s + ms / 1000;
  return total > 0 ? total : undefined;
}

/** The formats of the monitoring keys. */
export const MONITORING_FORMATS: Readonly<Record<string, Format>> = {
  'prom-duration': {
    check: (v) => promDurationSeconds(v) !== undefined,
    why: 'must be a positive Prometheus duration like 15s, 2m, 4h or 15d',
  },
  'influx-retention': {
    check: (v) => v === 'INF' || (/^\d+[hdw]$/.test(v) && Number(v.slice(0, -1)) >= 1),
    why: 'must be a whole number of hours, days or weeks (1h, 30d, 4w; at least 1h) or INF',
  },
  'influx-database': { check: (v) => /^[A-Za-z0-9_]{1,64}$/.test(v), why: 'must be 1-64 of A-Z a-z 0-9 _' },
  'webhook-url': {
    check: (v) => /^https?:\/\/[^\s"'#<>\\]+$/.test(v) && URL.canParse(v),
    why: 'must be an http:// or https:// URL',
  },
  'sns-topic': { check: (v) => /^[A-Za-z0-9_-]{1,256}$/.test(v), why: 'must be an SNS topic name (1-256 of A-Z a-z 0-9 _ -)' },
  'aws-region': { check: (v) => /^[a-z0-9-]{1,32}$/.test(v), why: 'must be a region name like us-east-1' },
  'sns-access-key-id': { check: (v) => /^[A-Za-z0-9]{4,128}$/.test(v), why: 'must be 4-128 letters or digits' },
  'sns-secret': { check: (v) => /^[\x21-\x7e]{1,256}$/.test(v), why: 'must be 1-256 printable characters without spaces' },
  'sns-server-name': { check: isDnsName, why: 'must be a DNS name like ctl-1.mammatus' },
  'account-id': { check: (v) => /^\d{12}$/.test(v), why: 'must be a string of 12 digits (quote it in YAML)' },
  'http-endpoint': {
    check: (v) => /^https?:\/\/[A-Za-z0-9.:[\]-]+\/?$/.test(v) && URL.canParse(v),
    why: 'must be an http:// or https:// origin like http://127.0.0.1:9324',
  },
};

const opt = { nullable: true } as const;
const s = (format: string) => ({ type: 'string', format, ...opt }) as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;
const fraction = { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, ...opt } as const;

/** The schema of `roles.controller.monitoring` as written (every key optional). */
export const MONITORING_SETTINGS_SCHEMA = {
  ...obj,
  properties: {
    store: { type: 'string', enum: ['prometheus', 'influxdb'], ...opt },
    agent_metrics: s('host-port'),
    config_dir: s('path'),
    prometheus: {
      ...obj,
      properties: {
        binary: s('binary'),
        promtool: s('binary'),
        listen: s('host-port'),
        data_dir: s('path'),
        retention: s('prom-duration'),
        scrape_interval: s('prom-duration'),
        evaluation_interval: s('prom-duration'),
        user: s('system-user'),
      },
    },
    influxdb: {
      ...obj,
      properties: {
        binary: s('binary'),
        listen: s('host-port'),
        rpc_listen: s('host-port'),
        data_dir: s('path'),
        database: s('influx-database'),
        retention: s('influx-retention'),
        user: s('system-user'),
      },
    },
    alertmanager: {
      ...obj,
      properties: {
        enabled: { type: 'boolean', ...opt },
        binary: s('binary'),
        amtool: s('binary'),
        listen: s('host-port'),
        data_dir: s('path'),
        user: s('system-user'),
      },
    },
    grafana: {
      ...obj,
      properties: {
        provision: { type: 'string', enum: ['auto', 'always', 'never'], ...opt },
        provisioning_dir: s('path'),
        dashboards_dir: s('path'),
      },
    },
    alerts: {
      ...obj,
      properties: {
        for: s('prom-duration'),
        disk_free: fraction,
        lease_pool: fraction,
        cert_expiry: s('prom-duration'),
        group_wait: s('prom-duration'),
        repeat_interval: s('prom-duration'),
        webhooks: { type: 'array', items: { type: 'string', format: 'webhook-url' }, ...opt },
        sns: {
          ...obj,
          // access_key_id and secret_access_key are required (checkMonitoringConfig).
          properties: {
            topic: s('sns-topic'),
            access_key_id: s('sns-access-key-id'),
            secret_access_key: s('sns-secret'),
            region: s('aws-region'),
            account_id: s('account-id'),
            endpoint: s('http-endpoint'),
            ca_file: s('path'),
            server_name: s('sns-server-name'),
          },
        },
      },
    },
  },
} as const;

/** Sentences for what Ajv cannot word (below `roles.controller`). */
export const MONITORING_HINTS: Readonly<Record<string, string>> = {
  'monitoring.store': 'must be prometheus or influxdb (absent: no monitoring stack on this controller)',
  'monitoring.grafana.provision': 'must be auto (when /etc/grafana exists), always or never',
  'monitoring.alerts.disk_free': 'must be a fraction between 0 and 1 (0.10 = alert below 10 % free)',
  'monitoring.alerts.lease_pool': 'must be a fraction between 0 and 1 (0.90 = alert above 90 % leased)',
};
