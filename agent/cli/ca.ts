/**
 * `mammatus ca init|status` (issue 20, docs/ca.md): the cluster's certificate authority.
 *
 * `ca init` makes the root (ECDSA P-256, 10 years) and the one intermediate every controller
 * shares (1 year), stores them in the CA buckets (src/ca/store.ts) and prints the root's SHA-256
 * fingerprint, which admission pins from then on. With `--root-key-out FILE` the root key is
 * written there (0600) for offline keeping and never reaches the cluster. Run with a controller's
 * credentials (only controllers may write the buckets).
 *
 * `ca rotate` makes a new intermediate under the same root (the root key from the controllers'
 * bucket, or `--root-key FILE` when it is kept offline) and stores it: the controllers' CA files
 * and backends take it up within seconds, nodes and instances keep trusting the same root.
 *
 * `ca status` shows the issuer and expiry of the root and the intermediate (any admitted node may
 * run it), and, from the agents' status answers, each node's certificate: when it expires, when it
 * renews, its last error.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { checkPinnedRoot } from '../../core/ca.js';
import { errorMessage } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/files.js';
import { readCredentials } from '../../core/trust.js';
import { inspectCert, makeIntermediate, makeRoot } from '../../src/ca/pki.js';
import { CaStore, fetchCaPublic, type CaPublic } from '../../src/ca/store.js';
import { formatTable, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { credentialsPath } from './credentials.js';
import { withNats } from './instance.js';

/** `ca init` flags. */
export interface CaInitOptions {
  rootKeyOut?: string;
  force?: boolean;
  replicas?: string;
  nats?: string;
  json?: boolean;
}

/** `ca rotate` flags. */
export interface CaRotateOptions {
  rootKey?: string;
  nats?: string;
  json?: boolean;
}

/** What `ca rotate --json` prints. */
export interface CaRotateResult {
  fingerprint: string;
  old_intermediate: { serial: string; not_after: string };
  intermediate: { serial: string; not_after: string };
}

/** `ca status` flags. */
export interface CaStatusOptions {
  nats?: string;
  json?: boolean;
  timeout?: string;
}

/** What `ca init --json` prints. */
export interface CaInitResult {
  fingerprint: string;
  root_not_after: string;
  intermediate_not_after: string;
  /** `stored` (controllers-only bucket) or the file it was written to. */
  root_key: string;
  /** The credentials file that now pins the new root (this node's, when it is a controller). */
  pinned?: string;
}

/** Pins `fingerprint` and `root` in this node's credentials when they are a controller's (the file is rewritten, 0600). */
async function pinLocally(g: GlobalOptions, fingerprint: string, root: string): Promise<string | undefined> {
  const file = credentialsPath(g);
  const creds = await readCredentials(file).catch(() => undefined);
  if (!creds?.authority_seed) return undefined;
  await writeFileAtomic(
    file,
    `${JSON.stringify({ ...creds, ca_fingerprint: fingerprint, ca_root: checkPinnedRoot(root, fingerprint) }, null, 2)}\n`,
    0o600,
  );
  return file;
}

/** `mammatus ca init [--root-key-out FILE] [--force] [--json]` */
export async function initCommand(g: GlobalOptions, o: CaInitOptions, io: CliIo): Promise<number> {
  const replicas = o.replicas === undefined ? 1 : Number(o.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new UsageError('--replicas must be 1 to 5');
  if (o.rootKeyOut && existsSync(o.rootKeyOut)) throw new UsageError(`--root-key-out ${o.rootKeyOut} exists: give a new file`);
  return withNats(g, o.nats, io, async (nc) => {
    let store: CaStore;
    let existing: CaPublic | undefined;
    try {
      store = await CaStore.open(nc, replicas);
      existing = await store.publicParts();
    } catch (err) {
      io.err(`error: cannot open the CA buckets (run ca init with a controller's credentials): ${errorMessage(err)}`);
      return 1;
    }
    if (existing && !o.force) {
      io.err(
        `error: the cluster already has a CA (root ${existing.fingerprint}); --force replaces it, and every node must then be admitted again to pin the new root`,
      );
      return 1;
    }
    const root = await makeRoot();
    const intermediate = await makeIntermediate(root);
    // The key file first: if it cannot be written, nothing was stored.
    if (o.rootKeyOut) await writeFileAtomic(o.rootKeyOut, root.keyPem, 0o600);
    const stored = await store.write(root.certPem, intermediate, o.rootKeyOut ? undefined : root.keyPem);
    const pinned = await pinLocally(g, stored.fingerprint, stored.root).catch((err: unknown) => {
      io.err(`warning: could not pin the new root in ${credentialsPath(g)}: ${errorMessage(err)}`);
      return undefined;
    });
    const result: CaInitResult = {
      fingerprint: stored.fingerprint,
      root_not_after: inspectCert(root.certPem).notAfter.toISOString(),
      intermediate_not_after: inspectCert(intermediate.certPem).notAfter.toISOString(),
      root_key: o.rootKeyOut ?? 'stored',
      ...(pinned ? { pinned } : {}),
    };
    if (o.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(`root fingerprint (SHA-256): ${result.fingerprint}`);
      io.out(`root valid until ${result.root_not_after}; intermediate valid until ${result.intermediate_not_after}`);
      io.out(
        o.rootKeyOut
          ? `root key written to ${o.rootKeyOut} (0600): keep it offline; the cluster holds only the intermediate's key`
          : 'root key stored on the controllers (bucket mammatus-ca-keys); ca init --root-key-out FILE keeps it off the cluster',
      );
      if (existing)
        io.out(`replaced the CA with root ${existing.fingerprint}: admit every node again (node add / node admit) to pin the new root`);
    }
    return 0;
  });
}

/** The root key for a rotation: from `file`, else the controllers' bucket; checked against `rootPem`. */
async function rotationRootKey(store: CaStore, rootPem: string, file: string | undefined): Promise<string> {
  const keyPem = file ? await readFile(file, 'utf8') : (await store.keyParts())?.rootKey;
  if (!keyPem)
    throw new UsageError('the root key is not on the controllers (ca init --root-key-out kept it offline): give it with --root-key FILE');
  let matches = false;
  try {
    matches = new X509Certificate(rootPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    // An unreadable key matches nothing.
  }
  if (!matches) throw new UsageError(`${file ?? 'the stored root key'} is not the key of the cluster's root`);
  return keyPem;
}

/** `mammatus ca rotate [--root-key FILE] [--json]` */
export async function rotateCommand(g: GlobalOptions, o: CaRotateOptions, io: CliIo): Promise<number> {
  return withNats(g, o.nats, io, async (nc) => {
    let store: CaStore;
    let pub: CaPublic | undefined;
    try {
      store = await CaStore.open(nc);
      pub = await store.publicParts();
    } catch (err) {
      io.err(`error: cannot open the CA buckets (run ca rotate with a controller's credentials): ${errorMessage(err)}`);
      return 1;
    }
    if (!pub) {
      io.err('error: the cluster has no CA yet: mammatus ca init');
      return 1;
    }
    const rootKey = await rotationRootKey(store, pub.root, o.rootKey);
    const intermediate = await makeIntermediate({ certPem: pub.root, keyPem: rootKey });
    await store.replaceIntermediate(intermediate);
    const was = inspectCert(pub.intermediate);
    const now = inspectCert(intermediate.certPem);
    const result: CaRotateResult = {
      fingerprint: pub.fingerprint,
      old_intermediate: { serial: was.serial, not_after: was.notAfter.toISOString() },
      intermediate: { serial: now.serial, not_after: now.notAfter.toISOString() },
    };
    if (o.json) io.out(JSON.stringify(result, null, 2));
    else {
      io.out(`new intermediate ${now.serial}, valid until ${result.intermediate.not_after}, under root ${pub.fingerprint}`);
      io.out(`replaced intermediate ${was.serial}; certificates it issued stay valid until they expire`);
    }
    return 0;
  });
}

/** One node's certificate as its agent reports it. */
export interface NodeCertRow {
  node: string;
  not_after: string | null;
  renew_at: string | null;
  last_error: string | null;
}

/** What `ca status --json` prints. */
export interface CaStatusResult {
  fingerprint: string;
  root: { subject: string; not_after: string };
  intermediate: { subject: string; issuer: string; not_after: string };
  /** Nodes sorted by their next renewal (those without one last); null when Serf could not be asked. */
  nodes: NodeCertRow[] | null;
}

/** The nodes' certificates from their status answers (needs the local Serf agent). */
async function nodeCerts(g: GlobalOptions, timeout: string | undefined): Promise<NodeCertRow[] | null> {
  try {
    const { collectStatus } = await import('./status.js');
    const rows = await collectStatus(g, { timeout });
    return rows
      .filter((r) => r.answer)
      .map((r) => {
        const tls = r.answer!.tls;
        return { node: r.node, not_after: tls?.not_after ?? null, renew_at: tls?.renew_at ?? null, last_error: tls?.last_error ?? null };
      })
      .sort((a, b) => (a.renew_at ?? '~').localeCompare(b.renew_at ?? '~') || a.node.localeCompare(b.node));
  } catch {
    return null;
  }
}

/** `mammatus ca status [--json]` */
export async function statusCommand(g: GlobalOptions, o: CaStatusOptions, io: CliIo): Promise<number> {
  return withNats(g, o.nats, io, async (nc) => {
    // The public bucket only: any admitted node's credentials will do.
    let pub: CaPublic | undefined;
    try {
      pub = await fetchCaPublic(nc);
    } catch (err) {
      io.err(`error: cannot read the CA bucket mammatus-ca: ${errorMessage(err)}`);
      return 1;
    }
    if (!pub) {
      io.err('error: the cluster has no CA yet: mammatus ca init');
      return 1;
    }
    const root = inspectCert(pub.root);
    const inter = inspectCert(pub.intermediate);
    const result: CaStatusResult = {
      fingerprint: pub.fingerprint,
      root: { subject: root.subject, not_after: root.notAfter.toISOString() },
      intermediate: { subject: inter.subject, issuer: inter.issuer, not_after: inter.notAfter.toISOString() },
      nodes: await nodeCerts(g, o.timeout),
    };
    if (o.json) {
      io.out(JSON.stringify(result, null, 2));
      return 0;
    }
    io.out(`root          ${result.root.subject}, valid until ${result.root.not_after}, SHA-256 ${result.fingerprint}`);
    io.out(
      `intermediate  ${result.intermediate.subject} (issued by ${result.intermediate.issuer}), valid until ${result.intermediate.not_after}`,
    );
    if (result.nodes === null) io.out('node certificates: unknown (no Serf agent to ask)');
    else {
      const table = [['NODE', 'EXPIRES', 'RENEWS', 'LAST ERROR']];
      for (const n of result.nodes) table.push([n.node, n.not_after ?? '-', n.renew_at ?? '-', n.last_error ?? '-']);
      for (const line of formatTable(table)) io.out(line);
    }
    return 0;
  });
}
