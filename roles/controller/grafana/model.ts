/**
 * Grafana dashboards from a compact description: a dashboard is rows of panels, a panel is a title,
 * a visualisation, a unit and one or more PromQL queries. `dashboardJson` lays the panels out on
 * Grafana's 24-column grid and writes the JSON model Grafana 10 and 11 load from a file provider
 * (schemaVersion 39), so no dashboard is a hand-edited JSON blob. Pure and deterministic.
 */

/** Grafana's schema version of 10.3 to 11.x: both load it without migrating. */
export const SCHEMA_VERSION = 39;

/** The uid of the provisioned Prometheus datasource, the default of every dashboard's `datasource` variable. */
export const PROMETHEUS_UID = 'mammatus-prometheus';
/** The uid of the provisioned InfluxDB datasource (InfluxQL, long-range data). */
export const INFLUXDB_UID = 'mammatus-influxdb';

/** The visualisations the dashboards use. */
export type PanelType = 'timeseries' | 'stat' | 'table' | 'bargauge' | 'gauge';

/** One query of a panel: PromQL, and the legend Grafana draws for each series. */
export interface QuerySpec {
  readonly expr: string;
  readonly legend?: string;
}

/** One panel: `expr` is one PromQL expression or several queries drawn together. */
export interface PanelSpec {
  readonly title: string;
  readonly type: PanelType;
  readonly expr: string | readonly QuerySpec[];
  /** Grafana unit id (`bytes`, `Bps`, `s`, `percentunit`, `reqps`, `short`…); default `short`. */
  readonly unit?: string;
  /** Legend of a single `expr`. */
  readonly legend?: string;
  readonly description?: string;
  /** Grid columns (of 24); default 6 for stat and gauge, 12 otherwise. */
  readonly width?: number;
  /** Grid rows; default 4 for stat and gauge, 8 otherwise. */
  readonly height?: number;
  /** Threshold at which a stat or gauge turns red (green below). */
  readonly red?: number;
}

/** A template variable listing the values of `label` in the series of `metric`. */
export interface VariableSpec {
  readonly name: string;
  readonly label: string;
  readonly metric: string;
}

/** One dashboard. */
export interface DashboardSpec {
  /** Stable: links and bookmarks name dashboards by uid. Also the JSON file's name (`<uid>.json`). */
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  readonly variables?: readonly VariableSpec[];
  readonly rows: readonly { readonly title: string; readonly panels: readonly PanelSpec[] }[];
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;
const GRID_WIDTH = 24;

/** The queries of a panel, one per target. */
export function panelQueries(panel: PanelSpec): readonly QuerySpec[] {
  return typeof panel.expr === 'string' ? [{ expr: panel.expr, ...(panel.legend ? { legend: panel.legend } : {}) }] : panel.expr;
}

const small = (t: PanelType): boolean => t === 'stat' || t === 'gauge';

/** Panel options per visualisation: what a panel made in Grafana's editor would carry. */
function options(type: PanelType): Record<string, unknown> {
  const reduce = { calcs: ['lastNotNull'], fields: '', values: false };
  switch (type) {
    case 'timeseries':
      return { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } };
    case 'stat':
      return { colorMode: 'value', graphMode: 'area', justifyMode: 'auto', orientation: 'auto', reduceOptions: reduce, textMode: 'auto' };
    case 'gauge':
      return { orientation: 'auto', reduceOptions: reduce, showThresholdLabels: false, showThresholdMarkers: true };
    case 'bargauge':
      return { displayMode: 'gradient', orientation: 'horizontal', reduceOptions: reduce, showUnfilled: true };
    case 'table':
      return { cellHeight: 'sm', showHeader: true };
  }
}

/** Tables and bar gauges show the current value, one row or bar per series: instant queries. */
const instant = (type: PanelType): boolean => type === 'table' || type === 'bargauge';

function panelJson(panel: PanelSpec, id: number, gridPos: Record<string, number>): Record<string, unknown> {
  const steps: Record<string, unknown>[] = [{ color: 'green', value: null }];
  if (panel.red !== undefined) steps.push({ color: 'red', value: panel.red });
  return {
    datasource: DATASOURCE,
    ...(panel.description ? { description: panel.description } : {}),
    fieldConfig: {
      defaults: {
        ...(panel.type === 'timeseries' ? { custom: { fillOpacity: 10, lineWidth: 1, showPoints: 'never' } } : {}),
        thresholds: { mode: 'absolute', steps },
        unit: panel.unit ?? 'short',
      },
      overrides: [],
    },
    gridPos,
    id,
    options: options(panel.type),
    targets: panelQueries(panel).map((q, i) => ({
      datasource: DATASOURCE,
      editorMode: 'code',
      expr: q.expr,
      ...(instant(panel.type) ? { format: 'table', instant: true, range: false } : { range: true }),
      legendFormat: q.legend ?? '__auto',
      refId: String.fromCharCode(65 + i),
    })),
    title: panel.title,
    type: panel.type,
  };
}

function variableJson(v: VariableSpec): Record<string, unknown> {
  const query = `label_values(${v.metric}, ${v.name})`;
  return {
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    datasource: DATASOURCE,
    definition: query,
    includeAll: true,
    label: v.label,
    multi: true,
    name: v.name,
    query: { qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    // 2: refreshed when the time range changes, so new members appear without a reload.
    refresh: 2,
    sort: 1,
    type: 'query',
  };
}

/** The `datasource` variable: any Prometheus datasource, the provisioned one by default. */
const DATASOURCE_VARIABLE = {
  current: { selected: false, text: 'Prometheus (mammatus)', value: PROMETHEUS_UID },
  hide: 0,
  includeAll: false,
  label: 'Datasource',
  multi: false,
  name: 'datasource',
  options: [],
  query: 'prometheus',
  refresh: 1,
  regex: '',
  type: 'datasource',
};

/** The dashboard's JSON model; panels flow left to right, a new line when a row is full. */
export function dashboardJson(spec: DashboardSpec): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ collapsed: false, gridPos: { h: 1, w: GRID_WIDTH, x: 0, y }, id: id++, panels: [], title: row.title, type: 'row' });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      const w = Math.min(p.width ?? (small(p.type) ? 6 : 12), GRID_WIDTH);
      const h = p.height ?? (small(p.type) ? 4 : 8);
      if (x + w > GRID_WIDTH) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      panels.push(panelJson(p, id++, { h, w, x, y }));
      x += w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    description: spec.description,
    // Provisioned from files the agent owns: edits in the UI would be overwritten at the next apply.
    editable: false,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ asDropdown: true, includeVars: false, keepTime: true, tags: ['mammatus'], title: 'mammatus', type: 'dashboards' }],
    panels,
    refresh: '30s',
    schemaVersion: SCHEMA_VERSION,
    tags: ['mammatus'],
    templating: { list: [DATASOURCE_VARIABLE, ...(spec.variables ?? []).map(variableJson)] },
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    title: spec.title,
    uid: spec.uid,
    version: 1,
  };
}
