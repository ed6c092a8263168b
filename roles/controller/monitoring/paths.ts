/**
 * Where the monitoring stack's files are (all in `monitoring.config_dir`) and how a listen address
 * is dialled on this node.
 */
import { posix } from 'node:path';
import { splitHostPort, urlHost } from '../../../core/net.js';
import type { MonitoringConfig } from './config.js';

/** The files' names inside `config_dir`. */
export const MONITORING_FILES = {
  prometheus: 'prometheus.yml',
  rules: 'rules.yml',
  members: 'members.json',
  alertmanager: 'alertmanager.yml',
  influxdb: 'influxdb.conf',
} as const;

/** The rendered files' paths. */
export type MonitoringPaths = { readonly [K in keyof typeof MONITORING_FILES]: string };

/** Where each file of the stack is. */
export function monitoringPaths(mon: Pick<MonitoringConfig, 'config_dir'>): MonitoringPaths {
  const at = (f: string) => posix.join(mon.config_dir, f);
  return {
    prometheus: at(MONITORING_FILES.prometheus),
    rules: at(MONITORING_FILES.rules),
    members: at(MONITORING_FILES.members),
    alertmanager: at(MONITORING_FILES.alertmanager),
    influxdb: at(MONITORING_FILES.influxdb),
  };
}

/** `host:port` a client on this node dials for a listen address (a wildcard host becomes loopback). */
export function localAddress(listen: string): string {
  const { host, port } = splitHostPort(listen);
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${urlHost(local)}:${port}`;
}
