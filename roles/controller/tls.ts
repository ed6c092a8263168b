/**
 * TLS on the controller's NATS (issue 20, docs/ca.md "TLS on internal links"): once the agent holds
 * the node certificate (`<state_dir>/tls/{node.crt,node.key,ca.crt}`, agent/certs.ts), nats-server
 * serves its client port with it and its routes with it too, both ways verified against the root.
 *
 * - Client port: TLS required, client certificates not asked for (`verify` off): every client
 *   authenticates with its node's nkey already, and a client of ours verifies the server.
 * - Routes: `verify: true` with the root as CA: a controller whose certificate comes from another
 *   root (another cluster, a forged CA) is refused in the handshake, in both directions.
 *
 * A renewal changes the files, not the config: the rendered file carries the certificate's SHA-256 in
 * a comment, so a renewal changes the file and the role's usual path reloads nats-server (SIGHUP,
 * which re-reads the certificate) without a restart. Turning TLS on (the first certificate)
 * restarts it, as the client port's protocol changes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Run } from '../../core/contracts.js';

/** `roles.controller.tls`: where the node certificate, its key and the root are. */
export interface ControllerTlsConfig {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /**
   * Also accept plain clients on the client port (nats-server `allow_non_tls`): only while nodes
   * admitted before `ca init` are admitted again (they hold no root and cannot verify). Off by default.
   */
  readonly allow_plain?: boolean;
}

/** The defaults: the agent's files under its default `state_dir` (/var/lib/mammatus). */
export const CONTROLLER_TLS_DEFAULTS: ControllerTlsConfig = {
  cert: '/var/lib/mammatus/tls/node.crt',
  key: '/var/lib/mammatus/tls/node.key',
  ca: '/var/lib/mammatus/tls/ca.crt',
  allow_plain: false,
};

/** The TLS files as found on disk when rendering: their paths and the certificate's SHA-256. */
export interface NatsTlsFiles extends ControllerTlsConfig {
  /** SHA-256 (hex) of the certificate file: a renewal changes the rendered file, hence a reload. */
  readonly stamp: string;
}

/** nats-server's `tls` block. */
export interface NatsTlsBlock {
  readonly cert_file: string;
  readonly key_file: string;
  readonly ca_file: string;
  readonly verify: boolean;
  /** Seconds for the handshake (nats-server's default 0.5 s is short on a Raspberry Pi). */
  readonly timeout: number;
}

const HANDSHAKE_TIMEOUT_S = 2;

/**
 * The TLS files when all three are there and look like what they are; undefined otherwise (no CA
 * yet, or a certificate not yet issued: plain NATS). Reads the disk: called at the role's edge, not by
 * the pure renderer.
 */
export function findNatsTls(cfg: ControllerTlsConfig, read: (p: string) => string | undefined = readText): NatsTlsFiles | undefined {
  const cert = read(cfg.cert);
  const ca = read(cfg.ca);
  if (!cert?.includes('BEGIN CERTIFICATE') || !ca?.includes('BEGIN CERTIFICATE')) return undefined;
  // The key only has to exist: nats-server (maybe another user) reads it, the agent made it 0600.
  if (read(cfg.key) === undefined) return undefined;
  return { ...cfg, stamp: createHash('sha256').update(cert).digest('hex') };
}

function readText(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8');
  } catch (err) {
    // Present but unreadable is still present (the key, for a non-root `mammatus render`).
    return (err as NodeJS.ErrnoException).code === 'EACCES' ? '' : undefined;
  }
}

/** The `tls` block of the client port (`verify` false) or of the routes (`verify` true). */
export function natsTlsBlock(files: ControllerTlsConfig, verify: boolean): NatsTlsBlock {
  return { cert_file: files.cert, key_file: files.key, ca_file: files.ca, verify, timeout: HANDSHAKE_TIMEOUT_S };
}

/** A nats-server config with TLS on its client port and routes when `files` are given; as is otherwise. */
export function withNatsTls<C extends { readonly cluster?: object }>(
  conf: C,
  files: ControllerTlsConfig | undefined,
): C & { tls?: NatsTlsBlock; allow_non_tls?: boolean } {
  if (!files) return conf;
  return {
    ...conf,
    tls: natsTlsBlock(files, false),
    ...(files.allow_plain ? { allow_non_tls: true } : {}),
    ...(conf.cluster ? { cluster: { ...conf.cluster, tls: natsTlsBlock(files, true) } } : {}),
  };
}

/** The comment line after the managed header that ties the file to the certificate it serves. */
export function tlsStampLine(files: NatsTlsFiles | undefined): string {
  return files ? `# tls: node certificate sha256 ${files.stamp}\n` : '';
}

/**
 * Hands the key to nats-server's system user (when it runs as one): the agent made it 0600 for
 * root, which keeps reading it as root. The certificate and the root are 0644.
 */
export async function shareKeyWithNats(run: Run, user: string | undefined, files: ControllerTlsConfig | undefined): Promise<void> {
  if (!user || !files) return;
  await run('chown', [`${user}:`, files.key]);
}
