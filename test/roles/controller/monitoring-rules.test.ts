/**
 * The alert rules evaluated by Prometheus itself (`promtool test rules`), on series labelled as the
 * controller's scrape stores them: every agent's own labels, and the target labels `node` and
 * `node_roles` added by members.json. Guards what a rule file that merely parses cannot: which alert
 * fires for which situation, and whom it names. Skipped with a message without promtool.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseControllerConfig } from '../../../roles/controller/config.js';
import { findProgram } from '../../../roles/controller/ca-launch.js';
import { renderRulesYml } from '../../../roles/controller/monitoring/index.js';

const promtool = findProgram('promtool');
if (!promtool) console.warn('alert rule tests skipped: promtool is missing (apt-get install prometheus)');

const mon = parseControllerConfig({ monitoring: { store: 'prometheus', alerts: { for: '1m' } } }).monitoring;

/** A series as stored: `job` and the reporter's target labels added to the agent's own labels. */
const series = (name: string, node: string, nodeRoles: string, labels: Record<string, string>, values: string) => ({
  series: `${name}{${Object.entries({ job: 'mammatus', node, node_roles: nodeRoles, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`,
  values,
});

/** Runs `promtool test rules` on the rendered rules with one test of these series and expected alerts; throws when it fails. */
function expectAlerts(input_series: object[], alert_rule_test: object[]): void {
  expect(promtoolTest([{ interval: '1m', input_series, alert_rule_test }])).toContain('SUCCESS');
}

/** Runs `promtool test rules` on the rendered rules with `tests`; returns its output (throws on a failed test). */
function promtoolTest(tests: object[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'mammatus-rules-'));
  try {
    writeFileSync(join(dir, 'rules.yml'), renderRulesYml(mon));
    writeFileSync(join(dir, 'test.yml'), stringify({ rule_files: ['rules.yml'], evaluation_interval: '1m', tests }));
    return execFileSync(promtool!, ['test', 'rules', join(dir, 'test.yml')], { encoding: 'utf8', stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!promtool)('alert rules, evaluated by promtool', () => {
  it('names the failed member and its roles, and pages ControllerDown only for a controller', () => {
    expectAlerts(
      [
        // The controller reports a compute node failed; the compute node reports the controller alive.
        series('mammatus_serf_member', 'ctl-1', 'controller', { member: 'cmp-1', status: 'failed', roles: 'compute' }, '1x5'),
        series('mammatus_serf_member', 'cmp-2', 'compute', { member: 'ctl-1', status: 'alive', roles: 'controller' }, '1x5'),
        series('up', 'ctl-1', 'controller', {}, '1x5'),
        series('up', 'cmp-2', 'compute', {}, '1x5'),
      ],
      [
        {
          eval_time: '3m',
          alertname: 'MammatusNodeFailed',
          exp_alerts: [
            {
              exp_labels: { severity: 'critical', member: 'cmp-1', roles: 'compute' },
              exp_annotations: {
                summary: 'Node cmp-1 failed',
                description: 'Serf has seen node cmp-1 (roles compute) as failed for 1m.',
              },
            },
          ],
        },
        { eval_time: '3m', alertname: 'MammatusControllerDown', exp_alerts: [] },
      ],
    );
  });

  it("takes no word but a controller's about other members: a compute node cannot fail the controller", () => {
    expectAlerts(
      [
        series('mammatus_serf_member', 'cmp-2', 'compute', { member: 'ctl-1', status: 'failed', roles: 'controller' }, '1x5'),
        series('mammatus_serf_member', 'ctl-1', 'controller', { member: 'ctl-1', status: 'alive', roles: 'controller' }, '1x5'),
        series('up', 'ctl-1', 'controller', {}, '1x5'),
      ],
      [
        { eval_time: '3m', alertname: 'MammatusNodeFailed', exp_alerts: [] },
        { eval_time: '3m', alertname: 'MammatusControllerDown', exp_alerts: [] },
      ],
    );
  });

  it('pages ControllerDown for a controller that failed or cannot be scraped, and RoleError with the role and node', () => {
    expectAlerts(
      [
        series('mammatus_serf_member', 'ctl-1', 'controller', { member: 'ctl-2', status: 'failed', roles: 'controller' }, '1x5'),
        series('up', 'ctl-3', 'controller', {}, '0x5'),
        series('mammatus_role_state', 'gw-1', 'gateway', { role: 'gateway', state: 'error' }, '1x5'),
      ],
      [
        {
          eval_time: '3m',
          alertname: 'MammatusControllerDown',
          exp_alerts: [
            { exp_labels: { severity: 'critical', member: 'ctl-2' } },
            { exp_labels: { severity: 'critical', member: 'ctl-3' } },
          ].map((a) => ({
            ...a,
            exp_annotations: {
              summary: `Controller ${a.exp_labels.member} is down`,
              description: `Controller ${a.exp_labels.member} (role controller) has failed or not answered for 1m: NATS, JetStream and the services it hosts have one peer less.`,
            },
          })),
        },
        {
          eval_time: '3m',
          alertname: 'MammatusRoleError',
          exp_alerts: [
            {
              exp_labels: { severity: 'warning', job: 'mammatus', node: 'gw-1', node_roles: 'gateway', role: 'gateway', state: 'error' },
              exp_annotations: {
                summary: 'Role gateway in error on gw-1',
                description:
                  "The gateway role of node gw-1 (roles gateway) has been in error for 1m: see `mammatus status` and the agent's log on gw-1.",
              },
            },
          ],
        },
      ],
    );
  });
});
