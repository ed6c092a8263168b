/**
 * The local cluster's storage node when it runs as root (scripts/local-cluster.ts): storage-1 gets
 * a network namespace of its own ({@link NETNS}.st, `st-lan` = {@link LAN}.storage on the LAN: its
 * Serf address, hence its iSCSI portal) and a mount namespace of its own, shared by its tgtd, its
 * mammatus agent and every tgtadm / tgt-admin that agent runs (its serf agent needs only the network). In that mount namespace these
 * directories are private directories under {@link STORAGE_DIR}, bound over the host's:
 *
 * - `/run/tgtd`: tgtd's control socket (`socket.0`), so the agent's tgtadm talks to storage-1's tgtd
 *   and never to a tgtd the host may run (which keeps its port 3260 too: another network namespace);
 * - `/etc/tgt`: `targets.conf` and the role's `conf.d/mammatus.conf` (CHAP secrets), so the host's
 *   tgt never loads storage-1's targets and storage-1 never loads the host's;
 * - `/etc/mammatus`: the storage role's settings file;
 * - `/var/lib/mammatus/volumes`: the backing files, really `.cluster/storage-1/volumes`. The role's
 *   `path` stays the default because `volume create` gives a volume a file under the chosen node's
 *   `path` only when its capacity answer names one, which the storage role's does not yet; under
 *   any other `path` the node would refuse its volumes' files.
 *
 * A mount point missing on the host is made (an empty directory) and removed again at the end.
 * Everything runs through `nsenter` (argv arrays; it execs, so a PID is the program's own).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LAN, NETNS } from './local-lan.js';
import { RUN_DIR } from './local-root.js';
import { runCommand } from './lxd-node.js';
import { BUNDLE } from './mammatus-agent.js';
import { missingTools } from './netns-bed.js';
import { sleep, until } from './wait.js';

/** Storage-1's private directories and its mount namespace (bound at `ns/mnt`). */
export const STORAGE_DIR = path.join(RUN_DIR, 'storage');
const NS_DIR = path.join(STORAGE_DIR, 'ns');
const MNT = path.join(NS_DIR, 'mnt');
/** Mount points this run made on the host (removed at the end, if still empty). */
const CREATED = path.join(STORAGE_DIR, 'created-mountpoints.json');
/** The iSCSI portal of storage-1. */
export const STORAGE_PORTAL = `${LAN.storage}:3260`;

const TOOLS = ['tgtd', 'tgtadm', 'tgt-admin', 'nsenter', 'unshare', 'mount', 'umount', 'ss', 'truncate'];

/** Why storage-1 cannot serve volumes here (tgt or a tool missing), or undefined. */
export function storageMissing(): string | undefined {
  const missing = missingTools(TOOLS);
  return missing && `${missing} (apt-get install tgt)`;
}

/** The argv prefix that runs a command as storage-1: its mount and network namespaces, this directory. */
export function storagePrefix(): string[] {
  return ['nsenter', `--mount=${MNT}`, `--net=/run/netns/${NETNS.st}`, `--wd=${process.cwd()}`, '--'];
}

/** The same prefix as a reader types it (no `--wd`: the commands to try run from the repository). */
export function storagePrefixLine(): string {
  return `nsenter --mount=${MNT} --net=/run/netns/${NETNS.st}`;
}

const run = (file: string, ...args: string[]) => execFileSync(file, args, { stdio: ['ignore', 'ignore', 'inherit'] });

/**
 * Makes storage-1's mount namespace (after the LAN, which made its network namespace), with
 * `volumesDir` as its backing-file directory.
 */
export function setUpStorageNs(volumesDir: string): void {
  const binds: Record<string, string> = {
    '/run/tgtd': path.join(STORAGE_DIR, 'tgtd'),
    '/etc/tgt': path.join(STORAGE_DIR, 'etc-tgt'),
    '/etc/mammatus': path.join(STORAGE_DIR, 'etc-mammatus'),
    '/var/lib/mammatus/volumes': volumesDir,
  };
  for (const dir of [NS_DIR, ...Object.values(binds), path.join(STORAGE_DIR, 'etc-tgt/conf.d')]) mkdirSync(dir, { recursive: true });
  // What tgt-admin reads (`-c /etc/tgt/targets.conf`), as Debian's: the role's conf.d file.
  writeFileSync(path.join(STORAGE_DIR, 'etc-tgt/targets.conf'), 'include /etc/tgt/conf.d/*.conf\n');
  const created: string[] = [];
  for (const target of Object.keys(binds)) {
    // Each missing level, outermost first, so the end removes them innermost first.
    const missing: string[] = [];
    for (let d = target; !existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      mkdirSync(d);
      created.push(d);
    }
  }
  writeFileSync(CREATED, JSON.stringify(created));
  // A namespace is kept by binding its nsfs file, which needs a private mount to live in.
  run('mount', '--bind', NS_DIR, NS_DIR);
  run('mount', '--make-private', NS_DIR);
  writeFileSync(MNT, '');
  run('unshare', `--mount=${MNT}`, '--propagation', 'private', 'true');
  for (const [target, source] of Object.entries(binds)) run('nsenter', `--mount=${MNT}`, 'mount', '--bind', source, target);
}

/** Starts storage-1's tgtd (listening on {@link STORAGE_PORTAL} only) and waits until it answers. */
export async function startStorageTgtd(logFile: string): Promise<ChildProcess> {
  const [file, ...prefix] = storagePrefix();
  const out = openSync(logFile, 'a');
  const tgtd = spawn(file, [...prefix, 'tgtd', '-f', '--iscsi', `portal=${STORAGE_PORTAL}`], { stdio: ['ignore', out, out] });
  closeSync(out);
  tgtd.on('error', () => undefined);
  await until(
    'tgtd of storage-1 answering',
    () => {
      if (tgtd.exitCode !== null || tgtd.signalCode !== null) throw new Error(`tgtd exited: ${readFileSync(logFile, 'utf8').trim()}`);
      return spawnSync(file, [...prefix, 'tgtadm', '--mode', 'sys', '--op', 'show'], { stdio: 'ignore' }).status === 0 || undefined;
    },
    { timeoutMs: 10_000 },
  );
  return tgtd;
}

/**
 * Removes storage-1's mount namespace and private directories, and the mount points this run made.
 * Its processes must be gone (removeLocalLan kills what is left in its network namespace). Also
 * what a killed run left.
 */
export function removeStorageNs(): void {
  let created: string[] = [];
  try {
    created = JSON.parse(readFileSync(CREATED, 'utf8')) as string[];
  } catch {
    /* no run left anything */
  }
  for (const m of [MNT, NS_DIR]) spawnSync('umount', [m], { stdio: 'ignore' });
  for (const d of created.reverse()) {
    try {
      rmdirSync(d);
    } catch {
      /* not empty (someone else's now) or gone */
    }
  }
  rmSync(STORAGE_DIR, { recursive: true, force: true });
}

/**
 * Waits (30 s at most) until storage-1 answers `mammatus.storage-capacity` ready, so that the
 * commands to try can create a volume at once; returns its last answer when it never was.
 */
export async function storageReady(rpc: string): Promise<string | undefined> {
  let last = '';
  for (let i = 0; i < 30; i++) {
    const r = await runCommand(process.execPath, [
      BUNDLE,
      '--rpc-addr',
      rpc,
      'query',
      'mammatus.storage-capacity',
      '--tag',
      'role=storage',
    ]);
    last = (r.stdout + r.stderr).trim();
    if (/"node":"storage-1","ready":true/.test(r.stdout)) return undefined;
    await sleep(1000);
  }
  return last || 'no answer';
}
