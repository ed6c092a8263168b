/**
 * Prometheus' files, rendered pure from the monitoring settings and membership: `prometheus.yml`,
 * the file service discovery `members.json` (every member, scraped through the local agent, which
 * serves `/members/<name>/metrics` for each: issue 22) and `rules.yml` (the alerts of
 * docs/monitoring.md with the configured thresholds). Prometheus re-reads `members.json` by itself
 * when it changes, so a membership change rewrites only that file: no reload, no restart.
 */
import { stringify } from 'yaml';
import type { Member } from '../../../core/contracts.js';
import { provenRoles } from '../../../core/members.js';
import { MANAGED_HEADER } from '../config.js';
import { promDurationSeconds, type MonitoringConfig } from './config.js';
import { localAddress } from './paths.js';

/** The scrape job of the members (`up{job="mammatus"}`). */
export const MEMBERS_JOB = 'mammatus';

/** Members in these states are scraped; `left` and reaped members are dropped. */
const SCRAPED: ReadonlySet<Member['status']> = new Set(['alive', 'failed', 'leaving']);

/** YAML as the golden files show it: no folded lines. */
export const yamlText = (value: unknown): string => stringify(value, { lineWidth: 0 });

/**
 * The target label `node_roles`: the roles a member proves (core/members.ts `provenRoles`). Not
 * `roles`: the agents' own series have a `roles` label (of the member they describe), which a
 * target label of that name would overwrite.
 */
export const memberRoles = provenRoles;

/** One file SD target group. */
export interface TargetGroup {
  readonly targets: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

/** The target groups of `members.json`, sorted by member name. */
export function memberTargets(members: readonly Member[], agentMetrics: string): TargetGroup[] {
  return (
    members
      // Admitted members only (where trust is checked): a stranger's Serf agent is nobody to scrape.
      .filter((m) => SCRAPED.has(m.status) && (m.trusted === undefined || m.trusted.length > 0))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((m) => ({
        targets: [localAddress(agentMetrics)],
        labels: { node: m.name, node_roles: memberRoles(m), __metrics_path__: `/members/${encodeURIComponent(m.name)}/metrics` },
      }))
  );
}

/** `members.json` (JSON has no comments: no managed header). */
export function renderMembersJson(members: readonly Member[], agentMetrics: string): string {
  return `${JSON.stringify(memberTargets(members, agentMetrics), null, 2)}\n`;
}

/** prometheus.yml; `files` are the rule and SD files' paths. */
export function renderPrometheusYml(mon: MonitoringConfig, files: { rules: string; members: string }, header = MANAGED_HEADER): string {
  const p = mon.prometheus;
  const config = {
    global: { scrape_interval: p.scrape_interval, evaluation_interval: p.evaluation_interval },
    ...(mon.alertmanager.enabled
      ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [localAddress(mon.alertmanager.listen)] }] }] } }
      : {}),
    rule_files: [files.rules],
    scrape_configs: [
      { job_name: 'prometheus', static_configs: [{ targets: [localAddress(p.listen)] }] },
      ...(mon.alertmanager.enabled
        ? [{ job_name: 'alertmanager', static_configs: [{ targets: [localAddress(mon.alertmanager.listen)] }] }]
        : []),
      {
        job_name: MEMBERS_JOB,
        // Every target is the local agent: the member's name is what tells them apart.
        file_sd_configs: [{ files: [files.members] }],
        relabel_configs: [{ source_labels: ['node'], target_label: 'instance' }],
        // What a member may send is bounded: an admitted node that went bad cannot flood the store.
        sample_limit: SAMPLE_LIMIT,
        label_limit: 30,
        label_value_length_limit: 512,
        body_size_limit: '4MB',
        metric_relabel_configs: [{ source_labels: ['__name__'], regex: 'mammatus_.+|process_.+|nodejs_.+', action: 'keep' }],
      },
    ],
    ...(mon.store === 'influxdb'
      ? {
          remote_write: [
            {
              url: `http://${localAddress(mon.influxdb.listen)}/api/v1/prom/write?db=${encodeURIComponent(mon.influxdb.database)}`,
            },
          ],
        }
      : {}),
  };
  return header + yamlText(config);
}

/** Most samples one member's scrape may hold (a controller with 1,000 queues exports about 3,100). */
export const SAMPLE_LIMIT = 20_000;

/** A PromQL regex matching a `roles` label that includes `role`. */
const withRole = (role: string) => `(.*,)?${role}(,.*)?`;

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: 'critical' | 'warning' };
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** The alerts of docs/monitoring.md with the configured thresholds. */
export function alertRules(mon: MonitoringConfig): Rule[] {
  const a = mon.alerts;
  const pct = (f: number) => `${Math.round(f * 1000) / 10} %`;
  const rule = (
    alert: string,
    expr: string,
    severity: Rule['labels']['severity'],
    summary: string,
    description: string,
    forTime = a.for,
  ): Rule => ({
    alert,
    expr,
    for: forTime,
    labels: { severity },
    annotations: { summary, description },
  });
  // What Serf says of other members counts only as the controllers report it: any admitted node
  // could send a made-up `mammatus_serf_member`, a controller is trusted with everything anyway.
  const byController = `node_roles=~"${withRole('controller')}"`;
  const failedMember = `max by (member, roles) (mammatus_serf_member{status="failed", ${byController}}) == 1`;
  const controllerFailed = `max by (member) (mammatus_serf_member{status="failed", roles=~"${withRole('controller')}", ${byController}}) == 1`;
  const controllerUnscraped = `max by (member) (label_replace(up{job="${MEMBERS_JOB}", ${byController}} == 0, "member", "$1", "node", "(.*)"))`;
  return [
    rule(
      'MammatusRoleError',
      'mammatus_role_state{state="error"} == 1',
      'warning',
      'Role {{ $labels.role }} in error on {{ $labels.node }}',
      'The {{ $labels.role }} role of node {{ $labels.node }} (roles {{ $labels.node_roles }}) has been in error for ' +
        `${a.for}: see \`mammatus status\` and the agent's log on {{ $labels.node }}.`,
    ),
    rule(
      'MammatusNodeDown',
      `up{job="${MEMBERS_JOB}"} == 0`,
      'critical',
      'Node {{ $labels.node }} does not answer',
      `The metrics of node {{ $labels.node }} (roles {{ $labels.node_roles }}) could not be gathered for ${a.for}.`,
    ),
    rule(
      'MammatusNodeFailed',
      failedMember,
      'critical',
      'Node {{ $labels.member }} failed',
      `Serf has seen node {{ $labels.member }} (roles {{ $labels.roles }}) as failed for ${a.for}.`,
    ),
    rule(
      'MammatusControllerDown',
      `${controllerFailed} or ${controllerUnscraped}`,
      'critical',
      'Controller {{ $labels.member }} is down',
      `Controller {{ $labels.member }} (role controller) has failed or not answered for ${a.for}: NATS, JetStream and the services it hosts have one peer less.`,
    ),
    rule(
      'MammatusJetStreamNoQuorum',
      'mammatus_jetstream_meta_leader_known == 0',
      'critical',
      'JetStream has no meta leader (seen from {{ $labels.node }})',
      `Controller {{ $labels.node }} (role controller) has known no JetStream meta leader for ${a.for}: streams cannot be created or changed (quorum lost?).`,
    ),
    rule(
      'MammatusDiskNearlyFull',
      `mammatus_filesystem_avail_bytes / mammatus_filesystem_size_bytes < ${a.disk_free}`,
      'warning',
      'Disk nearly full on {{ $labels.node }} ({{ $labels.path }})',
      `The filesystem of {{ $labels.path }} on node {{ $labels.node }} (roles {{ $labels.node_roles }}) has less than ${pct(a.disk_free)} free ({{ $value | humanizePercentage }}).`,
      '5m',
    ),
    rule(
      'MammatusCertificateExpiring',
      `mammatus_tls_cert_not_after_seconds - time() < ${promDurationSeconds(a.cert_expiry)}`,
      'warning',
      'Node certificate of {{ $labels.node }} expires soon',
      `The node certificate of {{ $labels.node }} (roles {{ $labels.node_roles }}) expires within ${a.cert_expiry} and has not been renewed.`,
    ),
    rule(
      'MammatusLeasePoolLow',
      `mammatus_gateway_dhcp_leases / mammatus_gateway_dhcp_pool_size > ${a.lease_pool} and mammatus_gateway_dhcp_pool_size > 0`,
      'warning',
      'DHCP pool nearly empty on gateway {{ $labels.node }}',
      `Gateway {{ $labels.node }} (role gateway) has leased more than ${pct(a.lease_pool)} of its DHCP range ({{ $value | humanizePercentage }}).`,
      '5m',
    ),
  ];
}

/** rules.yml: one group of every alert. */
export function renderRulesYml(mon: MonitoringConfig): string {
  return MANAGED_HEADER + yamlText({ groups: [{ name: 'mammatus', rules: alertRules(mon) }] });
}
