/**
 * The dashboards of the services roles run: the gateway's traffic, the controller's APIs, queues,
 * NATS and JetStream (see dashboards.ts for the conventions).
 */
import type { DashboardSpec, PanelSpec } from './model.js';
import { familyRate, JOB, NODE, nodeVariable, quantile, RATE } from './promql.js';

export const gateway: DashboardSpec = {
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

export const controller: DashboardSpec = {
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
