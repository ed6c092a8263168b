/**
 * System users as the spawn funnel needs them: a pure parser of passwd lines (the format of
 * /etc/passwd and of `getent passwd`), so which uid and gid a child runs as is testable without
 * touching the machine.
 */

/** A system user's name and numeric ids. */
export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** The user who runs tenant-facing services unless `services.user` says otherwise (docs/security.md). */
export const DEFAULT_SERVICE_USER = 'mammatus';

/** Used when the configured user does not exist: present on every Debian system, owns nothing. */
export const FALLBACK_SERVICE_USER = 'nobody';

/**
 * Finds `name` in passwd-format `text` (`name:x:uid:gid:gecos:home:shell`, one per line). A line
 * with non-numeric ids, or uid 0 under another name than root, is skipped: such a user is not a
 * way to drop privileges. Undefined when there is no usable entry.
 */
export function findPasswdUser(text: string, name: string): SystemUser | undefined {
  for (const line of text.split('\n')) {
    const fields = line.trim().split(':');
    if (fields.length < 4 || fields[0] !== name) continue;
    const [uid, gid] = [fields[2], fields[3]].map((f) => (/^\d{1,10}$/.test(f) ? Number(f) : NaN));
    if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) continue;
    if (uid === 0 && name !== 'root') continue;
    return { name, uid, gid };
  }
  return undefined;
}
