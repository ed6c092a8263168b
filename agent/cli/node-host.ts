/**
 * The commands `mammatus node add` runs on a host and the readers of their answers (dpkg-query,
 * sha256sum, stat, os-release, apt-get update, start-stop-daemon): argv arrays and pure parsers,
 * unit-tested with the plan (node-plan.ts).
 */
import { NODE_PACKAGES, NODE_PATHS, type NodeService } from './node-plan.js';

/** `apt-get update` of only the cluster's source: is it reachable (and its signature good)? */
export function aptUpdateOwnSourceArgv(): string[] {
  return [
    'apt-get',
    'update',
    '-o',
    `Dir::Etc::sourcelist=${NODE_PATHS.aptSources}`,
    '-o',
    'Dir::Etc::sourceparts=-',
    '-o',
    'APT::Get::List-Cleanup=0',
    // A source that cannot be fetched is only a warning (exit 0) unless this says otherwise (apt >= 2.1.16).
    '-o',
    'APT::Update::Error-Mode=any',
  ];
}

/** Did that update fail? Older apt exits 0 on a fetch failure, so its output is read too. */
export function aptUpdateFailed(code: number, output: string): boolean {
  return code !== 0 || /^(Err:\d|W: Failed to fetch|W: Some index files failed|E: )/m.test(output);
}

/** Installed state of a package as `dpkg-query -W -f '${Package} ${db:Status-Abbrev} ${Version}\n'` lists it. */
export interface PackageState {
  readonly installed: boolean;
  readonly version: string;
}

/** The format string {@link parsePackages} reads. */
export const DPKG_QUERY_FORMAT = '${Package} ${db:Status-Abbrev} ${Version}\\n';

/** Parses that `dpkg-query` output; packages dpkg does not know are absent. */
export function parsePackages(text: string): Map<string, PackageState> {
  const out = new Map<string, PackageState>();
  for (const line of text.split('\n')) {
    // db:Status-Abbrev is three characters, the last often a space: split on runs of spaces.
    const [name, status, version = ''] = line.trim().split(/\s+/);
    if (name && status) out.set(name, { installed: status === 'ii', version });
  }
  return out;
}

/** Packages missing or at another version (mammatus-agent must be `version`). */
export function packagesToInstall(state: ReadonlyMap<string, PackageState>, version: string): string[] {
  return NODE_PACKAGES.filter((p) => {
    const s = state.get(p);
    return !s?.installed || (p === 'mammatus-agent' && s.version !== version);
  });
}

/** The parts of `/etc/os-release` node add needs; throws unless the host is Debian or Ubuntu (or like them). */
export function checkOsRelease(text: string): string {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2'));
  }
  const id = fields.get('ID') ?? '';
  const like = (fields.get('ID_LIKE') ?? '').split(/\s+/);
  if (id !== 'debian' && id !== 'ubuntu' && !like.includes('debian'))
    throw new Error(
      `the host runs ${fields.get('PRETTY_NAME') ?? (id || 'an unknown system')}; node add needs Debian or Ubuntu (apt, dpkg)`,
    );
  return fields.get('PRETTY_NAME') ?? id;
}

/** Parses `sha256sum FILE…` output (missing files are simply absent). */
export function parseSha256(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2], m[1]);
  }
  return out;
}

/** Parses `stat -c '%a %n' FILE…` output into modes. */
export function parseModes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([0-7]{3,4}) (.+)$/.exec(line);
    if (m) out.set(m[2], parseInt(m[1], 8));
  }
  return out;
}

/** Pid file and log of a daemon started without systemd. */
export function daemonFiles(service: NodeService): { pid: string; log: string } {
  return { pid: `${NODE_PATHS.runDir}/${service}.pid`, log: `${NODE_PATHS.logDir}/${service === 'agent' ? 'agent' : 'serf'}.log` };
}

/** The command that starts a service detached without systemd (start-stop-daemon from dpkg). */
export function daemonStartArgv(service: NodeService): string[] {
  const { pid, log } = daemonFiles(service);
  const [exe, ...args] = service === 'serf' ? ['/usr/bin/serf', 'agent', '-config-dir=/etc/serf/'] : ['/usr/bin/mammatus', 'agent'];
  return [
    'start-stop-daemon',
    '--start',
    '--background',
    '--make-pidfile',
    '--pidfile',
    pid,
    '--output',
    log,
    '--startas',
    exe,
    '--',
    ...args,
  ];
}

/** Is the daemon of that pid file running? (`start-stop-daemon --status`: exit 0 = running). */
export function daemonStatusArgv(service: NodeService): string[] {
  return ['start-stop-daemon', '--status', '--pidfile', daemonFiles(service).pid];
}

/** Stops it (SIGINT for serf: it then leaves the cluster gracefully), waiting up to 15 s. */
export function daemonStopArgv(service: NodeService): string[] {
  const signal = service === 'serf' ? 'INT' : 'TERM';
  return [
    'start-stop-daemon',
    '--stop',
    '--oknodo',
    '--remove-pidfile',
    '--pidfile',
    daemonFiles(service).pid,
    '--retry',
    `${signal}/15/KILL/5`,
  ];
}
