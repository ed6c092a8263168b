/**
 * The install step of `node add`: `serf` and `mammatus-agent` at this CLI's version. From the
 * cluster's apt repository when `--apt-repo` is given and the host reaches it (an `apt-get update`
 * of just that source tells), else by copying a .deb (`--deb`, or this controller's own from apt's
 * cache) and `apt-get install ./file.deb`; the dependencies (nodejs, serf) come from the host's own
 * Debian mirror either way. Nothing is installed when both are there at this version.
 */
import type { RemoteHost } from '../../core/ssh-remote.js';
import { NODE_PACKAGES, NODE_PATHS, planAptSource } from './node-plan.js';
import { DPKG_QUERY_FORMAT, aptUpdateFailed, aptUpdateOwnSourceArgv, packagesToInstall, parsePackages } from './node-host.js';
import { lastLines, must, syncFiles } from './node-remote.js';

/** Where to install from. */
export interface InstallSource {
  readonly aptRepo?: string;
  readonly aptKey?: string;
  readonly deb?: string;
  /** The mammatus-agent version wanted: this CLI's. */
  readonly version: string;
}

/** apt without prompts; no package may ask anything. */
const APT = ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get'];
const APT_MS = 15 * 60_000;

/** Installs what is missing; returns the packages it installed and a description. */
export async function installPackages(
  host: RemoteHost,
  src: InstallSource,
  readLocal: (file: string) => Promise<Buffer | undefined>,
): Promise<{ installed: string[]; what: string }> {
  const list = NODE_PACKAGES.join(', ');
  const query = await host.exec(['dpkg-query', '-W', `-f=${DPKG_QUERY_FORMAT}`, ...NODE_PACKAGES]);
  const missing = packagesToInstall(parsePackages(query.stdout), src.version);
  if (missing.length === 0) return { installed: [], what: `${list} ${src.version}` };
  let unreachable = '';
  if (src.aptRepo) {
    const key = await readLocal(src.aptKey!);
    if (!key) throw new Error(`cannot read --apt-key ${src.aptKey}`);
    const files = planAptSource(src.aptRepo, key);
    await syncFiles(host, files);
    const update = await host.exec([...APT, ...aptUpdateOwnSourceArgv().slice(1)], { timeoutMs: APT_MS });
    if (!aptUpdateFailed(update.code, `${update.stdout}\n${update.stderr}`)) {
      await aptInstall(host, [`mammatus-agent=${src.version}`, 'serf']);
      return { installed: missing, what: `${list} from the cluster repository` };
    }
    // A source the host cannot reach would break every later `apt-get update` there: take it out.
    await must(host, ['rm', '-f', '--', ...files.map((f) => f.path)]);
    unreachable = lastLines(`${update.stdout}\n${update.stderr}`, 2);
  }
  const local = src.deb ?? `/var/cache/apt/archives/mammatus-agent_${src.version}_all.deb`;
  const why = src.aptRepo ? `the host cannot reach ${src.aptRepo} (${unreachable})` : 'no --apt-repo';
  if (!(await readLocal(local))) {
    throw new Error(`${why}, and there is no .deb to copy at ${local}: give --deb FILE (mammatus-agent_${src.version}_all.deb)`);
  }
  const remote = `${NODE_PATHS.debDir}/mammatus-agent_${src.version}_all.deb`;
  await must(host, ['mkdir', '-p', NODE_PATHS.debDir]);
  await host.copyFile(local, remote, 0o644);
  await aptInstall(host, [remote]);
  return {
    installed: missing,
    what: `${list} from the copied ${local.split('/').pop()} (${src.aptRepo ? 'repository unreachable' : 'no repository given'})`,
  };
}

/** `apt-get install -y …`; when it fails (package lists missing or stale), one `apt-get update` and a retry. */
async function aptInstall(host: RemoteHost, packages: readonly string[]): Promise<void> {
  const argv = [...APT, 'install', '-y', ...packages];
  if ((await host.exec(argv, { timeoutMs: APT_MS })).code === 0) return;
  await must(host, [...APT, 'update'], APT_MS);
  await must(host, argv, APT_MS);
}
