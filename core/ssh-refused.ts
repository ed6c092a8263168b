/**
 * Why `openSsh` would not connect, with messages an operator can act on: each names the host and
 * port, and for host keys the fingerprint, the known_hosts file and its lines.
 */
import type { KeyCandidate } from './ssh-keys.js';
import { keyTypeOf, sshFingerprint, type HostKeyVerdict, type KnownHostEntry } from './known-hosts.js';

/** The reason of an {@link SshRefused}. */
export type SshRefusal = 'target' | 'connect' | 'host-key-unknown' | 'host-key-mismatch' | 'auth' | 'no-key';

/** An SSH connection refused before any command ran. */
export class SshRefused extends Error {
  override readonly name = 'SshRefused';
  readonly reason: SshRefusal;
  /** `SHA256:…` of the server's host key, when the server got as far as showing it. */
  readonly fingerprint?: string;

  constructor(reason: SshRefusal, message: string, fingerprint?: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
    if (fingerprint !== undefined) this.fingerprint = fingerprint;
  }
}

/** What a host-key refusal is about. */
export interface HostKeyContext {
  /** The host's known_hosts name (`host` or `[host]:port`). */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** `user@host port N`, for the messages. */
  readonly where: string;
  readonly key: Buffer;
  readonly fingerprint: string;
  readonly knownHosts: string;
  readonly entries: readonly KnownHostEntry[];
}

/** The refusal for a host key that is not known (and not to be accepted), changed, or revoked. */
export function hostKeyRefusal(verdict: Exclude<HostKeyVerdict, 'known'>, c: HostKeyContext): SshRefused {
  const type = keyTypeOf(c.key);
  const file = c.knownHosts;
  if (verdict === 'revoked') {
    const lines = c.entries.filter((e) => e.marker === 'revoked' && e.key.equals(c.key)).map((e) => `${e.file ?? file}:${e.line}`);
    return new SshRefused(
      'host-key-mismatch',
      `${c.where} offered the ${type} host key ${c.fingerprint}, which known_hosts marks @revoked (${lines.join(', ')}): refused, nothing was sent to the host.`,
      c.fingerprint,
    );
  }
  if (verdict === 'changed') {
    const known = c.entries
      .filter((e) => e.marker === undefined)
      .map((e) => `${e.file ?? file}:${e.line} (${e.keyType} ${sshFingerprint(e.key)})`)
      .join(', ');
    return new SshRefused(
      'host-key-mismatch',
      `WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for ${c.name}! ${c.where} offered the ${type} key ${c.fingerprint}, ` +
        `but known_hosts has ${known}. Someone could be eavesdropping on you right now (man-in-the-middle attack), ` +
        `or the host key has just been changed. Nothing was sent to the host. If you know the key changed, remove the old ` +
        `entry with: ssh-keygen -R '${c.name}' -f ${file}`,
      c.fingerprint,
    );
  }
  const portArg = c.port === 22 ? '' : `-p ${c.port} `;
  return new SshRefused(
    'host-key-unknown',
    `The authenticity of host ${c.name} can't be established: it is not in ${file}. Its ${type} key fingerprint is ` +
      `${c.fingerprint}. Compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console), then ` +
      `run again with --accept-new, or add it yourself: ssh-keyscan ${portArg}${c.host} >> ${file}`,
    c.fingerprint,
  );
}

/** The refusal for a failed authentication: which keys were offered, what the server wanted. */
export function authRefusal(
  where: string,
  offered: readonly KeyCandidate[],
  serverMethods: readonly string[] | undefined,
  fingerprint: string,
): SshRefused {
  const keys = offered.flatMap((c) => c.offers.map((o) => `${o} (${c.label})`));
  const wants = serverMethods?.length ? ` The server accepts: ${serverMethods.join(', ')}.` : '';
  const pw = serverMethods && !serverMethods.includes('publickey') ? ' It does not take SSH keys at all;' : '';
  return new SshRefused(
    'auth',
    `${where} refused every key mammatus offered: ${keys.join('; ')}.${wants}${pw} mammatus never sends passwords: ` +
      `add one of these public keys to the user's ~/.ssh/authorized_keys on the host, or pass --identity with a key that is there.`,
    fingerprint,
  );
}
