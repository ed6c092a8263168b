/**
 * OpenSSH's known_hosts, read through the real `ssh-keygen -F` (it knows hashed entries, patterns and
 * markers, so mammatus carries no parser of its own for them) and appended to the way
 * `StrictHostKeyChecking=accept-new` does. What a host's key is checked against before any key of
 * the operator's is offered to it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Run } from './contracts.js';
import { CommandFailedError } from './exec.js';

/** One known_hosts line that names the host, as `ssh-keygen -F` printed it. */
export interface KnownHostEntry {
  /** Line number in the file (1-based). */
  readonly line: number;
  /** The file the line is in (set by {@link lookupKnownHost}). */
  readonly file?: string;
  /** `@revoked` and `@cert-authority` lines; plain host keys have none. */
  readonly marker?: 'revoked' | 'cert-authority';
  readonly keyType: string;
  /** The key in SSH wire form. */
  readonly key: Buffer;
}

/** What a host's key is, measured against its known_hosts entries. */
export type HostKeyVerdict = 'known' | 'unknown' | 'changed' | 'revoked';

/** The name a host has in known_hosts: `host` on port 22, `[host]:port` elsewhere (as OpenSSH writes it). */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** A key's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64. */
export function sshFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type inside an SSH wire-form key (its first length-prefixed string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString('latin1');
}

/** Reads `ssh-keygen -F` output: a `# Host … found: line N` comment before each matching line. */
export function parseKeygenFind(output: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  let line = 0;
  for (const text of output.split('\n')) {
    const found = /^# Host .* found: line (\d+)/.exec(text);
    if (found) {
      line = Number(found[1]);
      continue;
    }
    const fields = text.trim().split(/\s+/);
    if (fields.length < 3 || text.startsWith('#')) continue;
    const marker = fields[0] === '@revoked' ? 'revoked' : fields[0] === '@cert-authority' ? 'cert-authority' : undefined;
    const [, keyType, base64] = marker ? fields.slice(1) : fields;
    if (!keyType || !base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) continue;
    entries.push({ line, keyType, key: Buffer.from(base64, 'base64'), ...(marker ? { marker } : {}) });
  }
  return entries;
}

/** The lines of `file` that name `host` on `port` (none when the file does not exist). */
export async function lookupKnownHost(run: Run, file: string, host: string, port: number): Promise<KnownHostEntry[]> {
  if (!existsSync(file)) return [];
  try {
    // OpenSSH looks hosts up in lower case (and hashes them so): `Host` must find `host`.
    const { stdout } = await run('ssh-keygen', ['-F', knownHostName(host.toLowerCase(), port), '-f', file]);
    return parseKeygenFind(stdout).map((e) => ({ ...e, file }));
  } catch (err) {
    // ssh-keygen -F exits 1 when the host is not in the file.
    if (err instanceof CommandFailedError && err.exitCode === 1) return [];
    throw err;
  }
}

/**
 * The verdict on `key`: revoked if a `@revoked` line holds it, known if a host-key line holds it,
 * changed if the host is known by other keys (of any type: mammatus asks for the known types first,
 * so a host that has its old key offers it), unknown otherwise. `@cert-authority` lines are not
 * host keys (mammatus does not take host certificates) and count for nothing.
 */
export function checkHostKey(entries: readonly KnownHostEntry[], key: Buffer): HostKeyVerdict {
  if (entries.some((e) => e.marker === 'revoked' && e.key.equals(key))) return 'revoked';
  const plain = entries.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(key))) return 'known';
  return plain.length > 0 ? 'changed' : 'unknown';
}

/**
 * Adds `HOST keytype base64` for `key` to `file`, creating its directory (0700) and the file (0600)
 * when absent. Appended (O_APPEND), as OpenSSH does: a symlinked file stays a link, an existing
 * file keeps its mode, and two runs at once cannot lose each other's line.
 */
export async function appendKnownHost(file: string, host: string, port: number, key: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const handle = await open(file, 'a+', 0o600);
  try {
    const { size } = await handle.stat();
    const last = Buffer.alloc(1);
    if (size > 0) await handle.read(last, 0, 1, size - 1);
    const sep = size === 0 || last[0] === 0x0a ? '' : '\n';
    await handle.appendFile(`${sep}${knownHostName(host.toLowerCase(), port)} ${keyTypeOf(key)} ${key.toString('base64')}\n`);
  } finally {
    await handle.close();
  }
}
