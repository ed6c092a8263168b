/**
 * The five mammatus dashboards, described compactly (model.ts turns them into Grafana's JSON). Every
 * query reads the metric names of docs/monitoring.md, with the `node` and `job="mammatus"` labels
 * Prometheus adds when it scrapes. `$node` is the dashboard's node variable (`.*` for All),
 * `$__rate_interval` Grafana's rate window. test/integration/grafana-dashboards.test.ts runs every
 * expression against a real Prometheus, so a typo fails a test rather than a panel.
 */
import type { DashboardSpec, PanelSpec } from './model.js';

const JOB = 'job="mammatus"';
const NODE = `${JOB}, node=~"$node"`;
const RATE = '$__rate_interval';

/** `histogram_quantile` of a histogram's rate, summed by `by` (with `le`). */
function quantile(q: number, metric: string, by = '', filter = ''): string {
  const labels = by ? `le, ${by}` : 'le';
  return `histogram_quantile(${q}, sum by (${labels}) (rate(${metric}_bucket{${filter || JOB}}[${RATE}])))`;
}

/**
 * Per-second rates of every counter whose name matches `mammatus_<prefix>_(.+)_total`, the name's
 * middle kept as label `counter` (rate drops `__name__`; label_replace before a subquery keeps it).
 * For counter families whose members the source decides (dnsmasq's statistics, nats-server's /varz).
 */
function familyRate(prefix: string, filter: string, by: string): string {
  const re = `mammatus_${prefix}_(.+)_total`;
  return `sum by (${by}) (rate(label_replace({__name__=~"${re}", ${filter}}, "counter", "$1", "__name__", "${re}")[${RATE}:]))`;
}

const nodeVariable = (metric: string) => [{ name: 'node', label: 'Node', metric }];

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
        { title: 'Alerts firing', type: 'table', expr: 'ALERTS{alertstate="firing"}' },
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

const gateway: DashboardSpec = {
  uid: 'mammatus-gateway',
  title: 'mammatus / Gateway traffic',
  description: 'Bytes through the gateway ports and its iptables rules, DHCP leases, the DNS cache.',
  variables: nodeVariable(`mammatus_gateway_dhcp_pool_size{${JOB}}`),
  rows: [
    {
      title: 'Traffic',
      panels: [
        {
          title: 'Interface traffic',
          type: 'timeseries',
          unit: 'Bps',
          expr: `sum by (node, interface, direction) (rate(mammatus_gateway_interface_bytes_total{${NODE}}[${RATE}]))`,
          legend: '{{node}} {{interface}} {{direction}}',
        },
        {
          title: 'Forwarded bytes by rule',
          type: 'timeseries',
          unit: 'Bps',
          expr: `sum by (node, rule) (rate(mammatus_gateway_forward_bytes_total{${NODE}}[${RATE}]))`,
          legend: '{{node}} {{rule}}',
        },
        {
          title: 'Forwarded packets by rule',
          type: 'timeseries',
          unit: 'pps',
          expr: `sum by (node, rule) (rate(mammatus_gateway_forward_packets_total{${NODE}}[${RATE}]))`,
          legend: '{{node}} {{rule}}',
        },
      ],
    },
    {
      title: 'DHCP and DNS',
      panels: [
        {
          title: 'DHCP leases and pool',
          type: 'timeseries',
          expr: [
            { expr: `mammatus_gateway_dhcp_leases{${NODE}}`, legend: '{{node}} leases' },
            { expr: `mammatus_gateway_dhcp_pool_size{${NODE}}`, legend: '{{node}} pool' },
          ],
        },
        {
          title: 'DHCP pool used',
          type: 'gauge',
          unit: 'percentunit',
          expr: `mammatus_gateway_dhcp_leases{${NODE}} / mammatus_gateway_dhcp_pool_size{${NODE}}`,
          legend: '{{node}}',
          red: 0.9,
        },
        {
          title: 'DNS (dnsmasq counters)',
          type: 'timeseries',
          unit: 'ops',
          expr: familyRate('gateway_dns', NODE, 'node, counter'),
          legend: '{{node}} {{counter}}',
        },
      ],
    },
  ],
};

/** Rate, error ratio and latency of one API (`sqs` or `sns`). */
function apiPanels(api: 'sqs' | 'sns', name: string): PanelSpec[] {
  const requests = `mammatus_${api}_requests_total`;
  return [
    {
      title: `${name} requests by action`,
      type: 'timeseries',
      unit: 'reqps',
      expr: `sum by (action) (rate(${requests}{${JOB}}[${RATE}]))`,
      legend: '{{action}}',
      width: 8,
    },
    {
      title: `${name} error ratio`,
      type: 'timeseries',
      unit: 'percentunit',
      expr: `sum(rate(${requests}{${JOB}, outcome!="ok"}[${RATE}])) / sum(rate(${requests}{${JOB}}[${RATE}]))`,
      legend: 'errors',
      width: 8,
    },
    {
      title: `${name} latency`,
      type: 'timeseries',
      unit: 's',
      expr: [
        { expr: quantile(0.5, `mammatus_${api}_request_seconds`), legend: 'p50' },
        { expr: quantile(0.99, `mammatus_${api}_request_seconds`), legend: 'p99' },
      ],
      width: 8,
    },
  ];
}

const controller: DashboardSpec = {
  uid: 'mammatus-controller',
  title: 'mammatus / Controller services',
  description: 'SQS and SNS requests, queue depths, NATS and JetStream, the metadata service.',
  rows: [
    { title: 'SQS', panels: apiPanels('sqs', 'SQS') },
    { title: 'SNS', panels: apiPanels('sns', 'SNS') },
    {
      title: 'Queues and metadata',
      panels: [
        {
          // A queue is reported by each controller that sees it: max, not sum, per queue and state.
          title: 'Deepest queues (top 10)',
          type: 'bargauge',
          expr: `topk(10, sum by (queue) (max by (queue, state) (mammatus_sqs_queue_messages{${JOB}})))`,
          legend: '{{queue}}',
        },
        {
          title: 'Metadata requests',
          type: 'timeseries',
          unit: 'reqps',
          expr: `sum by (kind, outcome) (rate(mammatus_metadata_requests_total{${JOB}}[${RATE}]))`,
          legend: '{{kind}} {{outcome}}',
        },
      ],
    },
    {
      title: 'NATS and JetStream',
      panels: [
        { title: 'JetStream meta leader', type: 'stat', expr: `min(mammatus_jetstream_meta_leader_known{${JOB}})` },
        { title: 'JetStream cluster size', type: 'stat', expr: `max(mammatus_jetstream_meta_cluster_size{${JOB}})` },
        { title: 'Streams', type: 'stat', expr: `max(mammatus_jetstream_streams{${JOB}})` },
        { title: 'Registry instances', type: 'stat', expr: `max(mammatus_registry_instances{${JOB}})` },
        {
          title: 'NATS counters',
          type: 'timeseries',
          unit: 'ops',
          expr: familyRate('nats', JOB, 'node, counter'),
          legend: '{{node}} {{counter}}',
        },
        {
          title: 'JetStream messages and bytes',
          type: 'timeseries',
          expr: [
            { expr: `mammatus_jetstream_messages{${JOB}}`, legend: '{{node}} messages' },
            { expr: `mammatus_jetstream_bytes{${JOB}}`, legend: '{{node}} bytes' },
          ],
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
