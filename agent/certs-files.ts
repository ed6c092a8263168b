/**
 * The node certificate keeper's file steps (agent/certs.ts), split from it: the node's key and the
 * root written from the credentials. Effects only through the injected `FileOps`.
 */
import { checkPinnedRoot } from '../core/ca.js';
import type { FileOps } from '../core/contracts.js';
import type { NodeCredentials } from '../core/trust.js';
import { makeNodeKey } from '../src/ca/pki.js';

/** The node's key: the one on disk (made 0600 if it was not), else a new one written first (0600). */
export async function nodeKey(files: FileOps, path: string): Promise<string> {
  const existing = await files.read(path);
  if (existing?.includes('PRIVATE KEY')) {
    // A key restored or copied with a wider mode is readable by others: it is this node's identity.
    if (((await files.mode?.(path)) ?? 0o600) !== 0o600) await files.write(path, existing, 0o600);
    return existing;
  }
  const key = await makeNodeKey();
  await files.write(path, key, 0o600);
  return key;
}

/**
 * Writes `file` (`ca.crt`) from the root `creds` carry, checked against their pin, unless it holds
 * it already. Not for a controller: its own nats-server turns TLS on only with its first
 * certificate, and a root on disk before then would make its clients refuse that plain server.
 * True when the file changed. @throws when the root does not match the pin or cannot be written.
 */
export async function writeCredentialsRoot(files: FileOps, file: string, creds: NodeCredentials | undefined): Promise<boolean> {
  if (!creds?.ca_root || creds.roles.includes('controller')) return false;
  const root = checkPinnedRoot(creds.ca_root, creds.ca_fingerprint);
  if ((await files.read(file)) === root) return false;
  await files.write(file, root, 0o644);
  return true;
}
