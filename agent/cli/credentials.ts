/**
 * The credentials a CLI command uses: `--credentials FILE` (or `MAMMATUS_CREDENTIALS`), else the
 * agent's default state directory's. Commands that talk to NATS connect with them; commands that
 * list members check trust tags with the authority's public key (readable without root).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Member } from '../../core/contracts.js';
import { AUTHORITY_FILE, CREDENTIALS_FILE, annotateTrust, readCredentials, type NodeCredentials } from '../../core/trust.js';
import type { GlobalOptions } from './common.js';
import { useNatsRootFile } from '../../core/nats.js';

/** The agent's default state directory (agent config `state_dir`). */
const DEFAULT_STATE_DIR = '/var/lib/mammatus';

/** Where this command's credentials are. */
export function credentialsPath(g: Pick<GlobalOptions, 'credentials'>): string {
  return g.credentials || path.join(DEFAULT_STATE_DIR, CREDENTIALS_FILE);
}

/** The credentials, or undefined when there are none (or they are not readable by this user). */
export async function cliCredentials(g: Pick<GlobalOptions, 'credentials'>): Promise<NodeCredentials | undefined> {
  // The root beside them (<state_dir>/tls/ca.crt): NATS over TLS verified against it, once it exists.
  useNatsRootFile(path.join(path.dirname(credentialsPath(g)), 'tls', 'ca.crt'));
  try {
    return await readCredentials(credentialsPath(g));
  } catch (err) {
    // Someone else's file (not root): anonymous, which the controllers refuse with a clear error.
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return undefined;
    throw err;
  }
}

/** The authority's public key: from the credentials, else the public file beside them. */
export async function cliAuthority(g: Pick<GlobalOptions, 'credentials'>): Promise<string | undefined> {
  const file = credentialsPath(g);
  const creds = await cliCredentials(g).catch(() => undefined);
  if (creds) return creds.authority;
  const text = await readFile(path.join(path.dirname(file), AUTHORITY_FILE), 'utf8').catch(() => undefined);
  return text?.trim() || undefined;
}

/** `members` with `trusted` set when this node knows the authority (see core/trust.ts). */
export async function withTrust(g: Pick<GlobalOptions, 'credentials'>, members: readonly Member[]): Promise<Member[]> {
  return annotateTrust(members, await cliAuthority(g));
}
