/**
 * What role applies count (docs/monitoring.md): applies by role and outcome, and how long each took.
 * The role's current state is the agent's to export (it reads the scheduler's statuses).
 */
import { WORK_SECONDS, counter, histogram } from '../core/metrics.js';
import type { ApplyReport } from './apply.js';

const applies = counter<'role' | 'outcome'>({
  name: 'mammatus_role_applies_total',
  help: 'Role applies by role and outcome (ok, error, rolled_back).',
  labelNames: ['role', 'outcome'],
});
const seconds = histogram<'role'>({
  name: 'mammatus_role_apply_seconds',
  help: 'How long role applies took, by role.',
  labelNames: ['role'],
  buckets: WORK_SECONDS,
});

/** Counts one finished apply that started at `startedMs` (Date.now()). */
export function observeApply(report: ApplyReport, startedMs: number): void {
  const outcome = report.ok ? 'ok' : report.rolledBack ? 'rolled_back' : 'error';
  applies.inc({ role: report.role, outcome });
  seconds.observe({ role: report.role }, (Date.now() - startedMs) / 1000);
}
