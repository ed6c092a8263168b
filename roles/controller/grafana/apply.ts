/**
 * Grafana reads its provisioned datasources only when it starts (dashboards it re-reads every
 * 30 s): after the controller wrote a new datasources file, a running grafana-server is restarted.
 * Best effort: Grafana is the operator's package, not a daemon the role supervises, so a failure is
 * logged and never fails the apply.
 */
import type { ApplyContext } from '../../types.js';
import type { MonitoringConfig } from '../monitoring/config.js';
import { errorMessage } from '../../../core/errors.js';

/** Present when Grafana's package is installed (`monitoring.grafana.provision: auto` renders then). */
export const GRAFANA_DIR = '/etc/grafana';

/** `systemctl try-restart grafana-server` when this apply changed the datasources file. */
export async function restartGrafanaOnNewDatasources(
  ctx: Pick<ApplyContext, 'run' | 'log' | 'changed'>,
  mon: MonitoringConfig,
): Promise<void> {
  const datasources = `${mon.grafana.provisioning_dir}/datasources/mammatus.yaml`;
  if (!ctx.changed.includes(datasources)) return;
  try {
    // try-restart: a stopped Grafana stays stopped and reads the file when it starts.
    await ctx.run('systemctl', ['try-restart', 'grafana-server.service'], { timeoutMs: 60_000 });
    ctx.log.info({ datasources }, 'Grafana restarted for its new datasources');
  } catch (err) {
    ctx.log.warn({ err: errorMessage(err), datasources }, 'could not restart grafana-server; restart it to load the datasources');
  }
}
