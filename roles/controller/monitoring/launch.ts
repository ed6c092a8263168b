/**
 * How each daemon of the monitoring stack is started, checked and handed its files (pure where it
 * can be): argv, the health URL, the metric that says a SIGHUP reload took, the system user and its
 * files, the validation commands, and InfluxDB's database and retention policy.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Argv } from '../../../core/contracts.js';
import { findPasswdUser, type SystemUser } from '../../../core/users.js';
import { ancestors, maySearch, type DirStat, type NatsUserDeps } from '../nats-user.js';
import type { MonitoringConfig } from './config.js';
import { localAddress, monitoringPaths } from './paths.js';

/** The daemons of the stack. */
export type MonitoringDaemon = 'influxdb' | 'alertmanager' | 'prometheus';

/** The daemons `mon` runs, in start order (InfluxDB receives Prometheus' writes; Alertmanager its alerts). */
export function daemonsOf(mon: MonitoringConfig): MonitoringDaemon[] {
  if (!mon.store) return [];
  return [
    ...(mon.store === 'influxdb' ? (['influxdb'] as const) : []),
    ...(mon.alertmanager.enabled ? (['alertmanager'] as const) : []),
    'prometheus',
  ];
}

/** How one daemon runs: its program, user, data, the files it reads (a change reloads it) and how. */
export interface DaemonSpec {
  readonly binary: string;
  readonly user: string;
  readonly dataDir: string;
  readonly files: readonly string[];
  /** Prometheus and Alertmanager re-read their config on SIGHUP; InfluxDB 1.x does not. */
  readonly reload: 'sighup' | 'restart';
  readonly health: string;
  /** The gauge that moves when a SIGHUP reload took, on `metrics`. */
  readonly reloadMetric?: string;
  readonly metrics?: string;
  readonly argv: Argv;
}

/** A daemon of the Prometheus family: `/-/ready`, SIGHUP, `<name>_config_last_reload_success_timestamp_seconds`. */
function promFamily(
  name: string,
  s: { binary: string; user: string; data_dir: string; listen: string },
  files: string[],
  flags: string[],
): DaemonSpec {
  const base = `http://${localAddress(s.listen)}`;
  return {
    binary: s.binary,
    user: s.user,
    dataDir: s.data_dir,
    files,
    reload: 'sighup',
    health: `${base}/-/ready`,
    reloadMetric: `${name}_config_last_reload_success_timestamp_seconds`,
    metrics: `${base}/metrics`,
    argv: [s.binary, [`--config.file=${files[0]}`, ...flags, `--web.listen-address=${s.listen}`]],
  };
}

/** How `kind` runs for `mon`. */
export function daemonSpec(kind: MonitoringDaemon, mon: MonitoringConfig): DaemonSpec {
  const paths = monitoringPaths(mon);
  switch (kind) {
    case 'prometheus':
      return promFamily(
        'prometheus',
        mon.prometheus,
        [paths.prometheus, paths.rules],
        [`--storage.tsdb.path=${mon.prometheus.data_dir}`, `--storage.tsdb.retention.time=${mon.prometheus.retention}`],
      );
    case 'alertmanager':
      // No gossip with other Alertmanagers (it would bind 0.0.0.0:9094): each controller notifies alone.
      return promFamily(
        'alertmanager',
        mon.alertmanager,
        [paths.alertmanager],
        [`--storage.path=${mon.alertmanager.data_dir}`, '--cluster.listen-address='],
      );
    case 'influxdb':
      return {
        binary: mon.influxdb.binary,
        user: mon.influxdb.user,
        dataDir: mon.influxdb.data_dir,
        files: [paths.influxdb],
        reload: 'restart',
        health: `http://${localAddress(mon.influxdb.listen)}/ping`,
        argv: [mon.influxdb.binary, ['run', '-config', paths.influxdb]],
      };
  }
}

/** The commands that check `kind`'s rendered files before they go live (each: program, args, what it checks). */
export function validationCommands(kind: MonitoringDaemon, mon: MonitoringConfig): { program: string; args: string[]; file: string }[] {
  const paths = monitoringPaths(mon);
  switch (kind) {
    case 'prometheus':
      // `check config` loads the rule files too; `check rules` says which rule is wrong in words of its own.
      return [
        { program: mon.prometheus.promtool, args: ['check', 'config', paths.prometheus], file: paths.prometheus },
        { program: mon.prometheus.promtool, args: ['check', 'rules', paths.rules], file: paths.rules },
      ];
    case 'alertmanager':
      return [{ program: mon.alertmanager.amtool, args: ['check-config', paths.alertmanager], file: paths.alertmanager }];
    case 'influxdb':
      // Prints the merged config; fails on TOML it cannot parse (1.6 ignores unknown keys).
      return [{ program: mon.influxdb.binary, args: ['config', '-config', paths.influxdb], file: paths.influxdb }];
  }
}

/** The value of an unlabelled gauge in Prometheus' text format; undefined when absent. */
export function metricValue(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `))
      return Number(
        line
          .slice(name.length + 1)
          .trim()
          .split(' ')[0],
      );
  }
  return undefined;
}

/** The InfluxQL that makes the database and its default retention policy what `mon` says, given `SHOW RETENTION POLICIES`. */
export function influxSetupQueries(mon: MonitoringConfig, existing: readonly string[]): string[] {
  const db = `"${mon.influxdb.database}"`;
  const rp = `"${mon.influxdb.database}"`;
  const verb = existing.includes(mon.influxdb.database) ? 'ALTER' : 'CREATE';
  return [`CREATE DATABASE ${db}`, `${verb} RETENTION POLICY ${rp} ON ${db} DURATION ${mon.influxdb.retention} REPLICATION 1 DEFAULT`];
}

/** POSTs one InfluxQL statement to `/query`; rejects with InfluxDB's error. */
export async function influxQuery(mon: MonitoringConfig, q: string): Promise<unknown[][]> {
  const res = await fetch(`http://${localAddress(mon.influxdb.listen)}/query`, {
    method: 'POST',
    body: new URLSearchParams({ q }),
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.json().catch(() => ({}))) as {
    error?: string;
    results?: { error?: string; series?: { values?: unknown[][] }[] }[];
  };
  const err = body.error ?? body.results?.find((r) => r.error)?.error;
  if (!res.ok || err) throw new Error(`InfluxDB refused ${q}: ${err ?? `HTTP ${res.status}`}`);
  return body.results?.[0]?.series?.[0]?.values ?? [];
}

/** Creates the database and sets its retention (idempotent: a changed retention is altered). */
export async function ensureInfluxDatabase(mon: MonitoringConfig, query = influxQuery): Promise<void> {
  await query(mon, `CREATE DATABASE "${mon.influxdb.database}"`);
  const existing = (await query(mon, `SHOW RETENTION POLICIES ON "${mon.influxdb.database}"`)).map((row) => String(row[0]));
  for (const q of influxSetupQueries(mon, existing).slice(1)) await query(mon, q);
}

/** What choosing a daemon's user touches (as for nats-server's); the defaults read the real machine. */
export type DaemonUserDeps = NatsUserDeps;

const fsStat = async (p: string): Promise<DirStat | undefined> =>
  stat(p).then(
    (s) => ({ uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 }),
    () => undefined,
  );

/**
 * The system user `kind` runs as when the agent is root (Debian's packages create `prometheus` and
 * `influxdb`): it must exist and reach `dataDir` and `files`; otherwise the daemon runs as the
 * agent's user and the log says why. Undefined = the agent's user. Touches nothing.
 */
export async function daemonUser(deps: DaemonUserDeps, name: string, paths: readonly string[]): Promise<SystemUser | undefined> {
  const euid = (deps.euid ?? (() => process.geteuid?.() ?? -1))();
  if (name === '' || euid !== 0) return undefined;
  const passwd = await (deps.passwd ?? (() => readFile('/etc/passwd', 'utf8')))().catch(() => '');
  const user = findPasswdUser(passwd, name);
  if (!user) {
    deps.log.warn({ user: name }, `runs as the agent's user: no system user ${name}`);
    return undefined;
  }
  for (const dir of [...new Set(paths.flatMap((p) => ancestors(p)))]) {
    const st = await (deps.stat ?? fsStat)(dir);
    if (st && !maySearch(user, st)) {
      deps.log.warn(
        { user: name, dir, mode: st.mode.toString(8).padStart(4, '0') },
        `runs as the agent's user: ${name} may not enter ${dir}`,
      );
      return undefined;
    }
  }
  return user;
}

/** A failure no retry within a wait can fix (the daemon died). */
export class Fatal extends Error {}

/**
 * Calls `attempt` every 200 ms until it resolves true; throws its last error after `timeoutMs`
 * (naming `what`), or at once when it throws a {@link Fatal}.
 */
export async function pollUntil(what: string, timeoutMs: number, attempt: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      if (await attempt()) return;
      last = 'no answer';
    } catch (err) {
      if (err instanceof Fatal) throw err;
      // fetch hides the socket error (ECONNREFUSED) in `cause`.
      const e = err as { cause?: { code?: string }; message?: string };
      last = e.cause?.code ?? e.message ?? String(err);
    }
    if (Date.now() >= deadline) throw new Error(`${what} not healthy after ${Math.round(timeoutMs / 1000)}s: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
