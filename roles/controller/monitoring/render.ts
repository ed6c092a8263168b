/**
 * Every file of the monitoring stack, rendered pure (the controller role's render adds them):
 * Prometheus' (render-prometheus.ts), `alertmanager.yml` and `influxdb.conf`, all in
 * `monitoring.config_dir`. Nothing without `store`.
 */
import { renderGrafana } from '../grafana/render.js';
import { posix } from 'node:path';
import type { Member } from '../../../core/contracts.js';
import type { RenderedFile } from '../../types.js';
import { MANAGED_HEADER } from '../config.js';
import { CA_DOMAIN } from '../ca-render.js';
import type { MonitoringConfig, MonitoringSns } from './config.js';
import { renderMembersJson, renderPrometheusYml, renderRulesYml, yamlText } from './render-prometheus.js';

import { daemonSpec, type MonitoringDaemon } from './launch.js';
import { monitoringPaths } from './paths.js';

export { alertRules, memberTargets, renderMembersJson, renderPrometheusYml, renderRulesYml } from './render-prometheus.js';
export { MONITORING_FILES, localAddress, monitoringPaths, type MonitoringPaths } from './paths.js';

/**
 * The managed header and how the daemon is run: a change of its flags or user (retention, data
 * directory) then changes its file, which is what makes the role apply it (with a restart).
 */
export function daemonHeader(kind: MonitoringDaemon, mon: MonitoringConfig): string {
  const spec = daemonSpec(kind, mon);
  return `${MANAGED_HEADER}# run as ${spec.user || "the agent's user"}: ${[spec.argv[0], ...spec.argv[1]].join(' ')}\n`;
}

/** The SNS topic's ARN, as our SNS API forms it (`arn:aws:sns:<region>:<account>:<topic>`). */
export const snsTopicArn = (sns: MonitoringSns): string => `arn:aws:sns:${sns.region}:${sns.account_id}:${sns.topic}`;

/**
 * alertmanager.yml: one route to one receiver holding every configured way out (webhooks, our SNS
 * topic); none configured, the alerts stay in Alertmanager's API and UI. Holds the SNS secret.
 */
export function renderAlertmanagerYml(mon: MonitoringConfig, node: string): string {
  const a = mon.alerts;
  const receiver = {
    name: 'mammatus',
    ...(a.webhooks.length > 0 ? { webhook_configs: a.webhooks.map((url) => ({ url, send_resolved: true })) } : {}),
    ...(a.sns
      ? {
          sns_configs: [
            {
              api_url: a.sns.endpoint.replace(/\/$/, ''),
              sigv4: { region: a.sns.region, access_key: a.sns.access_key_id, secret_key: a.sns.secret_access_key },
              topic_arn: snsTopicArn(a.sns),
              // SNS subjects are short ASCII lines; the default template can be long.
              subject: '[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }}{{ if .GroupLabels.node }} {{ .GroupLabels.node }}{{ end }}',
              send_resolved: true,
              // Our SNS API serves HTTPS with the node certificate once the node holds one.
              ...(a.sns.endpoint.startsWith('https:')
                ? {
                    http_config: {
                      tls_config: { ca_file: a.sns.ca_file, server_name: a.sns.server_name ?? `${node.toLowerCase()}.${CA_DOMAIN}` },
                    },
                  }
                : {}),
            },
          ],
        }
      : {}),
  };
  const config = {
    route: {
      receiver: 'mammatus',
      group_by: ['alertname', 'node'],
      group_wait: a.group_wait,
      group_interval: '5m',
      repeat_interval: a.repeat_interval,
    },
    receivers: [receiver],
  };
  return daemonHeader('alertmanager', mon) + yamlText(config);
}

const toml = (v: string) => JSON.stringify(v);

/**
 * influxdb.conf (InfluxDB 1.x): the TSI index (memory stays flat as series grow: small boards), its
 * directories under `data_dir`, the HTTP API on `listen`, no phoning home, no per-request log
 * (remote write posts every few seconds) and no `_internal` database (its writes cost a small board).
 */
export function renderInfluxdbConf(mon: MonitoringConfig): string {
  const i = mon.influxdb;
  const dir = (d: string) => toml(posix.join(i.data_dir, d));
  return (
    daemonHeader('influxdb', mon) +
    // Made through the HTTP API after each start; here so that changing them changes this file.
    `# database ${i.database}, retention ${i.retention}\n` +
    [
      // Upstream's key, and Debian's (its build reports only when asked).
      'reporting-disabled = true',
      'reporting-enabled = false',
      `bind-address = ${toml(i.rpc_listen)}`,
      '',
      '[meta]',
      `  dir = ${dir('meta')}`,
      '  retention-autocreate = false',
      '',
      '[data]',
      `  dir = ${dir('data')}`,
      `  wal-dir = ${dir('wal')}`,
      '  index-version = "tsi1"',
      '  query-log-enabled = false',
      '',
      '[monitor]',
      '  store-enabled = false',
      '',
      '[http]',
      '  enabled = true',
      `  bind-address = ${toml(i.listen)}`,
      '  log-enabled = false',
      '',
      '[logging]',
      '  suppress-logo = true',
      '',
    ].join('\n')
  );
}

/**
 * The stack's files for this controller: Prometheus' always (with a store), Alertmanager's when
 * enabled, InfluxDB's with store influxdb. alertmanager.yml is 0640: the stack hands it to its
 * user's group (it holds the SNS secret).
 */
export function renderMonitoringFiles(
  mon: MonitoringConfig,
  members: readonly Member[],
  node: string,
  grafanaInstalled = false,
): RenderedFile[] {
  if (!mon.store) return [];
  const paths = monitoringPaths(mon);
  const files: RenderedFile[] = [
    { path: paths.prometheus, content: renderPrometheusYml(mon, paths, daemonHeader('prometheus', mon)), mode: 0o644 },
    { path: paths.rules, content: renderRulesYml(mon), mode: 0o644 },
    { path: paths.members, content: renderMembersJson(members, mon.agent_metrics), mode: 0o644 },
  ];
  if (mon.alertmanager.enabled) files.push({ path: paths.alertmanager, content: renderAlertmanagerYml(mon, node), mode: 0o640 });
  if (mon.store === 'influxdb') files.push({ path: paths.influxdb, content: renderInfluxdbConf(mon), mode: 0o644 });
  const grafana = mon.grafana.provision === 'always' || (mon.grafana.provision === 'auto' && grafanaInstalled);
  if (grafana) files.push(...renderGrafanaFor(mon));
  return files;
}

/** A loopback URL for a listen address (a wildcard is reached on 127.0.0.1). */
const localUrl = (listen: string) => `http://${listen.replace(/^(0\.0\.0\.0|\[::\]|):/, '127.0.0.1:')}`;

/** Grafana's provisioning for this stack: its Prometheus, and its InfluxDB when that is the store. */
export function renderGrafanaFor(mon: MonitoringConfig): RenderedFile[] {
  return renderGrafana({
    prometheusUrl: localUrl(mon.prometheus.listen),
    ...(mon.store === 'influxdb' ? { influxdb: { url: localUrl(mon.influxdb.listen), database: mon.influxdb.database } } : {}),
    provisioningDir: mon.grafana.provisioning_dir,
    dashboardsDir: mon.grafana.dashboards_dir,
    scrapeInterval: mon.prometheus.scrape_interval,
  });
}
