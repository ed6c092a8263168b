/**
 * The five mammatus dashboards, described compactly (model.ts turns them into Grafana's JSON). Every
 * query reads the metric names of docs/monitoring.md, with the `node` and `job="mammatus"` labels
 * Prometheus adds when it scrapes. `$node` is the dashboard's node variable (`.*` for All),
 * `$__rate_interval` Grafana's rate window. test/integration/grafana-dashboards.test.ts runs every
 * expression against a real Prometheus, so a typo fails a test rather than a panel.
 */
import { controller, gateway } from './dashboards-services.js';
import type { DashboardSpec } from './model.js';
import { JOB, NODE, nodeVariable, quantile, RATE } from './promql.js';

const cluster: DashboardSpec = {
  uid: 'mammatus-cluster',
  title: 'mammatus / Cluster overview',
  description: 'Nodes, roles, members and firing alerts of the whole cluster.',
  rows: [
    {
      title: 'Health',
      panels: [
        { title: 'Agents up', type: 'stat', expr: `sum(up{${JOB}})` },
        { title: 'Agents down', type: 'stat', expr: `count(up{${JOB}} == 0) or vector(0)`, red: 1 },
        { title: 'Roles in error', type: 'stat', expr: `count(mammatus_role_state{${JOB}, state="error"} == 1) or vector(0)`, red: 1 },
        { title: 'Alerts firing', type: 'stat', expr: 'count(ALERTS{alertstate="firing"}) or vector(0)', red: 1 },
      ],
    },
    {
      title: 'Roles and members',
      panels: [
        {
          title: 'Roles by state',
          type: 'bargauge',
          expr: `sum by (role, state) (mammatus_role_state{${JOB}} == 1)`,
          legend: '{{role}} {{state}}',
        },
        {
          // Every agent reports the members its Serf knows: count each member once.
          title: 'Members by status',
          type: 'bargauge',
          expr: `count by (status) (count by (member, status) (mammatus_serf_member{${JOB}}))`,
          legend: '{{status}}',
        },
        { title: 'Roles not ok', type: 'table', expr: `mammatus_role_state{${JOB}, state!="ok"} == 1` },
        { title: 'Firing alerts', type: 'table', expr: 'ALERTS{alertstate="firing"}' },
        { title: 'Agent versions', type: 'bargauge', expr: `count by (version) (mammatus_agent_info{${JOB}})`, legend: '{{version}}' },
        {
          title: 'Role applies',
          type: 'timeseries',
          unit: 'ops',
          expr: `sum by (role, outcome) (rate(mammatus_role_applies_total{${JOB}}[${RATE}]))`,
          legend: '{{role}} {{outcome}}',
        },
      ],
    },
  ],
};

const node: DashboardSpec = {
  uid: 'mammatus-node',
  title: 'mammatus / Node',
  description: "One or more nodes: the agent process's CPU and memory, the disks it watches, its Serf work.",
  variables: nodeVariable(`up{${JOB}}`),
  rows: [
    {
      title: 'Resources',
      panels: [
        {
          title: 'Agent CPU',
          type: 'timeseries',
          unit: 'percentunit',
          expr: `rate(process_cpu_seconds_total{${NODE}}[${RATE}])`,
          legend: '{{node}}',
        },
        {
          title: 'Agent resident memory',
          type: 'timeseries',
          unit: 'bytes',
          expr: `process_resident_memory_bytes{${NODE}}`,
          legend: '{{node}}',
        },
        {
          title: 'Disk used',
          type: 'timeseries',
          unit: 'percentunit',
          expr: `1 - mammatus_filesystem_avail_bytes{${NODE}} / mammatus_filesystem_size_bytes{${NODE}}`,
          legend: '{{node}} {{path}}',
        },
        {
          title: 'Disk free',
          type: 'timeseries',
          unit: 'bytes',
          expr: `mammatus_filesystem_avail_bytes{${NODE}}`,
          legend: '{{node}} {{path}}',
        },
        { title: 'Agent heap used', type: 'timeseries', unit: 'bytes', expr: `nodejs_heap_size_used_bytes{${NODE}}`, legend: '{{node}}' },
        { title: 'Open file descriptors', type: 'timeseries', expr: `process_open_fds{${NODE}}`, legend: '{{node}}' },
      ],
    },
    {
      title: 'Agent',
      panels: [
        {
          title: 'Serf events handled',
          type: 'timeseries',
          unit: 'ops',
          expr: `sum by (node, name, outcome) (rate(mammatus_serf_events_total{${NODE}}[${RATE}]))`,
          legend: '{{node}} {{name}} {{outcome}}',
        },
        { title: 'Dispatch p99', type: 'timeseries', unit: 's', expr: quantile(0.99, 'mammatus_dispatch_seconds', 'node, kind', NODE) },
        { title: 'Role apply p90', type: 'timeseries', unit: 's', expr: quantile(0.9, 'mammatus_role_apply_seconds', 'node, role', NODE) },
        {
          title: 'Certificate expires in',
          type: 'table',
          unit: 's',
          expr: `mammatus_tls_cert_not_after_seconds{${NODE}} - time()`,
        },
      ],
    },
  ],
};

const compute: DashboardSpec = {
  uid: 'mammatus-compute',
  title: 'mammatus / Compute',
  description: 'Instances by status and node, and how long launches take.',
  rows: [
    {
      title: 'Instances',
      panels: [
        {
          title: 'Instances by status',
          type: 'bargauge',
          expr: `sum by (status) (mammatus_compute_instances{${JOB}})`,
          legend: '{{status}}',
        },
        {
          title: 'Instances by node',
          type: 'timeseries',
          expr: `sum by (node, status) (mammatus_compute_instances{${JOB}})`,
          legend: '{{node}} {{status}}',
        },
        {
          title: 'Launch duration',
          type: 'timeseries',
          unit: 's',
          expr: [
            { expr: quantile(0.5, 'mammatus_compute_launch_seconds'), legend: 'p50' },
            { expr: quantile(0.9, 'mammatus_compute_launch_seconds'), legend: 'p90' },
          ],
        },
        {
          title: 'Launches',
          type: 'timeseries',
          unit: 'ops',
          expr: `sum by (node) (rate(mammatus_compute_launch_seconds_count{${JOB}}[${RATE}]))`,
          legend: '{{node}}',
        },
      ],
    },
  ],
};

/** Every dashboard, in the order the docs list them. */
export const DASHBOARDS: readonly DashboardSpec[] = [cluster, node, gateway, controller, compute];
