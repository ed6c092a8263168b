/**
 * Grafana provisioning for a controller where Grafana is installed (Grafana's own apt repository;
 * not in Debian): a datasource file, a file provider and the dashboards' JSON. Grafana reads the
 * provisioning directory at start and re-reads the dashboards directory every 30 s, so new
 * dashboards need no restart; a changed datasource file needs one (the controller's apply does it).
 *
 * The dashboards always query Prometheus: with `store: influxdb` Prometheus still scrapes and keeps
 * recent data, and remote-writes into InfluxDB, whose datasource is then added for long-range
 * InfluxQL queries. Pure.
 */
import { stringify } from 'yaml';
import type { RenderedFile } from '../../types.js';
import { DASHBOARDS } from './dashboards.js';
import { dashboardJson, INFLUXDB_UID, panelQueries, PROMETHEUS_UID } from './model.js';

/** Where Grafana's Debian package reads provisioning files. */
export const GRAFANA_PROVISIONING_DIR = '/etc/grafana/provisioning';
/** Where the dashboards' JSON goes: the agent's state, not Grafana's (the package owns /var/lib/grafana). */
export const GRAFANA_DASHBOARDS_DIR = '/var/lib/mammatus/grafana/dashboards';
/** The local Prometheus every controller runs with the monitoring stack. */
export const DEFAULT_PROMETHEUS_URL = 'http://127.0.0.1:9090';

const PROMETHEUS_NAME = 'Prometheus (mammatus)';
const INFLUXDB_NAME = 'InfluxDB (mammatus)';

/** What `renderGrafana` renders from. */
export interface GrafanaOptions {
  /** Default {@link DEFAULT_PROMETHEUS_URL}. */
  readonly prometheusUrl?: string;
  /** The InfluxDB store (1.x API) and its database, when `roles.controller.monitoring.store` is `influxdb`. */
  readonly influxdb?: { readonly url: string; readonly database: string };
  /** Default {@link GRAFANA_PROVISIONING_DIR}. */
  readonly provisioningDir?: string;
  /** Default {@link GRAFANA_DASHBOARDS_DIR}. */
  readonly dashboardsDir?: string;
  /** How often Prometheus scrapes (Grafana's minimum step, so `$__rate_interval` spans 4 scrapes); default `15s`. */
  readonly scrapeInterval?: string;
}

/** The datasources file: Prometheus (default), and InfluxDB when it is the store, else its removal. */
function datasources(opts: GrafanaOptions): string {
  const prometheus = {
    name: PROMETHEUS_NAME,
    uid: PROMETHEUS_UID,
    type: 'prometheus',
    access: 'proxy',
    url: opts.prometheusUrl ?? DEFAULT_PROMETHEUS_URL,
    isDefault: true,
    editable: false,
    jsonData: { httpMethod: 'POST', timeInterval: opts.scrapeInterval ?? '15s' },
  };
  const influx = opts.influxdb && {
    name: INFLUXDB_NAME,
    uid: INFLUXDB_UID,
    type: 'influxdb',
    access: 'proxy',
    url: opts.influxdb.url,
    editable: false,
    jsonData: { dbName: opts.influxdb.database, httpMode: 'GET', version: 'InfluxQL' },
  };
  const doc = {
    apiVersion: 1,
    // A store switched back to Prometheus: Grafana keeps a provisioned datasource until told to delete it.
    ...(influx ? {} : { deleteDatasources: [{ name: INFLUXDB_NAME, orgId: 1 }] }),
    datasources: influx ? [prometheus, influx] : [prometheus],
  };
  return `# managed by mammatus: the controller's Grafana datasources (docs/monitoring.md)\n${stringify(doc)}`;
}

/** The file provider: every JSON file in the dashboards directory, in folder "mammatus". */
function provider(dashboardsDir: string): string {
  const doc = {
    apiVersion: 1,
    providers: [
      {
        name: 'mammatus',
        orgId: 1,
        folder: 'mammatus',
        folderUid: 'mammatus',
        type: 'file',
        // The agent owns these files: a deletion or an edit in the UI would come back at the next apply.
        disableDeletion: true,
        allowUiUpdates: false,
        updateIntervalSeconds: 30,
        options: { path: dashboardsDir, foldersFromFilesStructure: false },
      },
    ],
  };
  return `# managed by mammatus: the dashboards the controller renders (docs/monitoring.md)\n${stringify(doc)}`;
}

/**
 * The provisioning files (`<provisioning>/datasources/mammatus.yaml`,
 * `<provisioning>/dashboards/mammatus.yaml`) and one JSON file per dashboard in the dashboards
 * directory, in that order.
 */
export function renderGrafana(opts: GrafanaOptions = {}): RenderedFile[] {
  const prov = opts.provisioningDir ?? GRAFANA_PROVISIONING_DIR;
  const dir = opts.dashboardsDir ?? GRAFANA_DASHBOARDS_DIR;
  return [
    { path: `${prov}/datasources/mammatus.yaml`, content: datasources(opts) },
    { path: `${prov}/dashboards/mammatus.yaml`, content: provider(dir) },
    ...DASHBOARDS.map((d) => ({ path: `${dir}/${d.uid}.json`, content: `${JSON.stringify(dashboardJson(d), null, 2)}\n` })),
  ];
}

/** One PromQL query of a dashboard panel, with Grafana's variables (`$node`, `$__rate_interval`) in place. */
export interface DashboardQuery {
  /** The dashboard's uid. */
  readonly dashboard: string;
  readonly panel: string;
  readonly expr: string;
}

/**
 * Every query of every dashboard, for tests that run them against a real Prometheus; a template
 * variable counts as panel `$<name>` with the series selector its `label_values` reads.
 */
export function dashboardQueries(): DashboardQuery[] {
  return DASHBOARDS.flatMap((d) => [
    ...(d.variables ?? []).map((v) => ({ dashboard: d.uid, panel: `$${v.name}`, expr: v.metric })),
    ...d.rows.flatMap((r) => r.panels.flatMap((p) => panelQueries(p).map((q) => ({ dashboard: d.uid, panel: p.title, expr: q.expr })))),
  ]);
}
