/**
 * The CA files a controller's CA backend reads (`roles.controller.ca.paths`): what the buckets
 * hold, checked, and which files must change. Pure: the hosted service (files-service.ts) reads
 * the buckets and writes.
 *
 * A set is written only when it is whole and consistent: the root matches the bucket's
 * fingerprint, signs itself and the intermediate, the intermediate is a CA valid now, and the key
 * is the intermediate's. Anything else leaves the files as they are (a bad PEM in the bucket
 * never replaces good files).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { PkiError, certFingerprint } from './pki.js';
import type { CaKeys, CaPublic } from './store.js';

/** Where the backend reads the CA (`roles.controller.ca.paths`, the three file keys). */
export interface CaFilePaths {
  readonly root_cert: string;
  readonly intermediate_cert: string;
  readonly intermediate_key: string;
}

/** The three files' contents, checked. */
export interface CaFileSet {
  readonly root: string;
  readonly intermediate: string;
  readonly intermediateKey: string;
}

/** One file to write. */
export interface CaFileWrite {
  readonly path: string;
  readonly content: string;
  /** 0o600 for the key, 0o644 for the certificates. */
  readonly mode: number;
  /** The key: handed to the backend's user. */
  readonly secret: boolean;
}

const withNewline = (pem: string) => (pem.endsWith('\n') ? pem : `${pem}\n`);

/**
 * Checks what the buckets hold and returns the files' contents. @throws PkiError saying what is
 * wrong (shown in the log; the files stay as they are).
 */
export function checkCaFileSet(pub: CaPublic, keys: CaKeys, now = new Date()): CaFileSet {
  let root: X509Certificate;
  let inter: X509Certificate;
  try {
    root = new X509Certificate(pub.root);
  } catch {
    throw new PkiError('the root in mammatus-ca is not a PEM certificate');
  }
  try {
    inter = new X509Certificate(pub.intermediate);
  } catch {
    throw new PkiError('the intermediate in mammatus-ca is not a PEM certificate');
  }
  if (certFingerprint(pub.root) !== pub.fingerprint) throw new PkiError('the root in mammatus-ca does not match its fingerprint');
  if (!(root.ca && root.checkIssued(root) && root.verify(root.publicKey))) throw new PkiError('the root is not a self-signed CA');
  if (!(inter.ca && inter.checkIssued(root) && inter.verify(root.publicKey)))
    throw new PkiError('the intermediate is not a CA signed by the root');
  if (now.getTime() >= Date.parse(inter.validTo))
    throw new PkiError(`the intermediate expired at ${new Date(inter.validTo).toISOString()}`);
  let matches: boolean;
  try {
    matches = inter.checkPrivateKey(createPrivateKey(keys.intermediateKey));
  } catch {
    throw new PkiError('the intermediate key in mammatus-ca-keys is not a PEM private key');
  }
  if (!matches) throw new PkiError("the key in mammatus-ca-keys is not the intermediate's");
  return { root: withNewline(pub.root), intermediate: withNewline(pub.intermediate), intermediateKey: withNewline(keys.intermediateKey) };
}

/** What a file holds now: its content and mode, undefined when absent. */
export interface CurrentFile {
  readonly content?: string;
  readonly mode?: number;
}

/**
 * The files to write so that `paths` hold `set`: those whose content differs, and the key when its
 * mode is not 0600. In this order: key, intermediate, root (the backend checks the files together
 * before it uses them, so the order only keeps the root last, as in the buckets).
 */
export function caFileWrites(paths: CaFilePaths, set: CaFileSet, current: (path: string) => CurrentFile): CaFileWrite[] {
  const wanted: CaFileWrite[] = [
    { path: paths.intermediate_key, content: set.intermediateKey, mode: 0o600, secret: true },
    { path: paths.intermediate_cert, content: set.intermediate, mode: 0o644, secret: false },
    { path: paths.root_cert, content: set.root, mode: 0o644, secret: false },
  ];
  return wanted.filter((w) => {
    const now = current(w.path);
    return now.content !== w.content || (w.secret && now.mode !== undefined && now.mode !== w.mode);
  });
}
