/**
 * The controller's monitoring stack (docs/monitoring.md), as the role and the agent use it: the
 * settings, the pure renderers and the supervisor of the daemons.
 */
export {
  MONITORING_DEFAULTS,
  SNS_DEFAULTS,
  promDurationSeconds,
  resolveMonitoring,
  type MonitoringConfig,
  type MonitoringSns,
  type MonitoringStore,
} from './config.js';
export { MEMBERS_JOB, alertRules, memberRoles, memberTargets, type TargetGroup } from './render-prometheus.js';
export {
  MONITORING_FILES,
  localAddress,
  monitoringPaths,
  renderAlertmanagerYml,
  renderInfluxdbConf,
  renderMembersJson,
  renderMonitoringFiles,
  renderPrometheusYml,
  renderRulesYml,
  snsTopicArn,
  type MonitoringPaths,
} from './render.js';
export { daemonSpec, daemonsOf, ensureInfluxDatabase, validationCommands, type DaemonSpec, type MonitoringDaemon } from './launch.js';
export { MonitoringStack, type MonitoringDeps, type MonitoringState } from './stack.js';
export { MonitoringPart } from './role.js';
