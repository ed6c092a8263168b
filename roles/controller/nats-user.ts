/**
 * Which user the controller's nats-server runs as. Debian's nats-server package creates the system
 * user `nats` (and runs its own unit as it); a root agent runs the server it supervises as that user
 * too, so a flaw in nats-server, which strangers on the LAN can reach, does not hand out root.
 *
 * The server then needs its store and its config file: the store directory is handed to the user
 * (recursively once, when a server that ran as root left files behind), and the config file — mode
 * 0600, it holds the users' keys and the route secret — is handed to it after every write. When the
 * user is missing, or cannot reach those paths (a directory on the way it may not search, as in a
 * private temporary directory), the server runs as the agent's own user and the log says why. A
 * non-root agent never switches. `nats.user: ""` keeps the agent's user on purpose.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger, Run } from '../../core/contracts.js';
import { findPasswdUser, type SystemUser } from '../../core/users.js';

/** A directory's owner and permission bits, as the search check needs them. */
export interface DirStat {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/** The effects the choice needs; the defaults read the real machine. */
export interface NatsUserDeps {
  readonly run: Run;
  readonly log: Logger;
  /** The agent's effective uid (default `process.geteuid()`). */
  readonly euid?: () => number;
  /** passwd-format text (default: /etc/passwd). */
  readonly passwd?: () => Promise<string>;
  /** A path's owner and mode; undefined when it does not exist (default: fs.stat). */
  readonly stat?: (path: string) => Promise<DirStat | undefined>;
}

/** Pure: may `user` search (traverse) a directory with these owner and bits? (Its only group is its primary one.) */
export function maySearch(user: SystemUser, dir: DirStat): boolean {
  if (dir.uid === user.uid) return (dir.mode & 0o100) !== 0;
  if (dir.gid === user.gid) return (dir.mode & 0o010) !== 0;
  return (dir.mode & 0o001) !== 0;
}

/** Pure: every directory from `/` down to (not including) `target`, e.g. `/`, `/var`, `/var/lib` for `/var/lib/x`. */
export function ancestors(target: string): string[] {
  const out: string[] = [];
  for (let dir = path.dirname(path.resolve(target)); ; dir = path.dirname(dir)) {
    out.unshift(dir);
    if (dir === path.dirname(dir)) return out;
  }
}

const fsStat = async (p: string): Promise<DirStat | undefined> =>
  stat(p).then(
    (s) => ({ uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 }),
    () => undefined,
  );

/**
 * Chooses the user for nats-server and hands it the store and `confPath`. Returns the user's name,
 * or undefined to run as the agent's own user (not root, `user` empty, user missing, paths it cannot
 * reach: each but the first two logged as a warning).
 */
export async function prepareNatsUser(deps: NatsUserDeps, name: string, storeDir: string, confPath: string): Promise<string | undefined> {
  const euid = deps.euid ?? (() => process.geteuid?.() ?? -1);
  if (name === '' || euid() !== 0) return undefined;
  const passwd = await (deps.passwd ?? (() => readFile('/etc/passwd', 'utf8')))().catch(() => '');
  const user = findPasswdUser(passwd, name);
  const asRoot = (why: string) => {
    deps.log.warn({ user: name, why }, `nats-server runs as the agent's user, not ${name}: ${why}`);
    return undefined;
  };
  if (!user) return asRoot(`no system user ${name} (Debian's nats-server package creates it; or set roles.controller.nats.user)`);
  const statOf = deps.stat ?? fsStat;
  await deps.run('mkdir', ['-p', storeDir]);
  for (const dir of [...new Set([...ancestors(storeDir), ...ancestors(confPath)])]) {
    const s = await statOf(dir);
    if (s && !maySearch(user, s)) return asRoot(`${name} may not enter ${dir} (mode ${s.mode.toString(8).padStart(4, '0')})`);
  }
  const ids = `${user.uid}:${user.gid}`;
  const store = await statOf(storeDir);
  // After a server that ran as root (even once, inside a store that was already the user's):
  // everything it wrote becomes the user's. `find -quit` stops at the first foreign file.
  const foreign =
    store && (store.uid !== user.uid || store.gid !== user.gid)
      ? true
      : (
          await deps.run('find', [
            storeDir,
            '(',
            '!',
            '-user',
            String(user.uid),
            '-o',
            '!',
            '-group',
            String(user.gid),
            ')',
            '-print',
            '-quit',
          ])
        ).stdout.trim() !== '';
  if (foreign) await deps.run('chown', ['-R', ids, storeDir]);
  // Stays 0600: readable by the server's user alone.
  if (await statOf(confPath)) await deps.run('chown', [ids, confPath]);
  return user.name;
}
