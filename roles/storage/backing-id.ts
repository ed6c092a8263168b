/**
 * Which volume record a backing file belongs to: a sidecar `<file>.id` (0600, root's) holding the
 * record's `created_at`, written through the file writer before the file is made and checked
 * before the file is served (both backends). A file left behind by `volume rm --force` keeps its
 * sidecar, so a new volume of the same name (another `created_at`) is refused instead of being
 * handed the old tenant's data (docs/security.md, "No data from a deleted volume").
 */
import type { FileOps } from '../../core/contracts.js';
import type { VolumeRecord } from '../../core/volume-record.js';

/** The sidecar of backing file `file`. */
export function backingIdPath(file: string): string {
  return `${file}.id`;
}

/** What the check needs of a volume record. */
export interface BackingIdentity {
  readonly volume: string;
  /** The record's `created_at`: what the sidecar holds. */
  readonly id: string;
  /**
   * The record is no longer `creating`, so it has been served: an existing file without a sidecar
   * (made before sidecars existed) is its own and is adopted. A `creating` record has never been
   * served, so such a file may be an earlier volume's and is refused.
   */
  readonly adopt: boolean;
}

/** The identity of a record's backing file. */
export function backingIdentity(v: Pick<VolumeRecord, 'name' | 'created_at' | 'state'>): BackingIdentity {
  return { volume: v.name, id: v.created_at, adopt: v.state !== 'creating' };
}

/**
 * Claims `file` for the record before it is created, grown or served; `exists`: whether the file
 * exists now. A new file (a sidecar without its file means nothing) or an adopted one gets the
 * record's sidecar. @throws when the file is another record's, or unknown and the record is new.
 */
export async function claimBackingFile(files: FileOps, file: string, exists: boolean, who: BackingIdentity): Promise<void> {
  const sidecar = backingIdPath(file);
  const want = `${who.id}\n`;
  const have = await files.read(sidecar);
  if (have === want) return;
  if (exists && (have !== undefined || !who.adopt)) throw leftover(file, who, have, 'not served');
  await files.write(sidecar, want, 0o600);
}

/**
 * Removes a deleted record's backing file, then its sidecar, when the sidecar says the file is the
 * record's; `exists`: whether the file exists. Returns whether the file was removed. @throws when
 * the file exists and is another record's or unknown: a leftover is left alone, as it is not served.
 */
export async function releaseBackingFile(files: FileOps, file: string, exists: boolean, who: BackingIdentity): Promise<boolean> {
  const have = await files.read(backingIdPath(file));
  if (have !== `${who.id}\n`) {
    if (exists) throw leftover(file, who, have, 'left alone');
    return false;
  }
  if (exists) await files.remove(file);
  await files.remove(backingIdPath(file));
  return exists;
}

/** The error for a backing file that is not the record's (short: `observed.error` keeps 300 characters). */
function leftover(file: string, who: BackingIdentity, have: string | undefined, what: string): Error {
  const why = have === undefined ? `no ${backingIdPath(file)}` : `its .id says ${JSON.stringify(have.trim().slice(0, 40))}, not ${who.id}`;
  return new Error(
    `${file} is a leftover of an earlier volume named ${who.volume} (${why}): ${what}. ` +
      `Check its data is not needed, then rm ${file} ${backingIdPath(file)} (docs/storage.md, "Leftovers")`,
  );
}
