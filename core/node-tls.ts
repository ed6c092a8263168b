/**
 * The node certificate for this process's HTTPS listeners (issue 20): the SQS/SNS API and the
 * metadata service serve it once the agent holds one (`<state_dir>/tls/{node.crt,node.key,ca.crt}`,
 * agent/certs.ts). The agent says once where the files are (`useNodeTlsFiles`) and, after each
 * renewal, `nodeTlsChanged()`; a listener then swaps its secure context (`setSecureContext`), so
 * open connections carry on. A service child gets the PEMs from the agent instead (`useNodeTls`),
 * as it may not read the key (docs/security.md).
 */
import { readFileSync } from 'node:fs';

/** The certificate chain, its key and the root, as PEM. */
export interface NodeTlsPem {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

let source: { readonly files: { cert: string; key: string; ca: string } } | { readonly pem: NodeTlsPem } | undefined;
const listeners = new Set<() => void>();

/** Uses the files (read at each `nodeTls()` call); undefined: none. */
export function useNodeTlsFiles(files: { cert: string; key: string; ca: string } | undefined): void {
  source = files ? { files } : undefined;
}

/** Uses these PEMs (a service child, told by the agent); undefined: none. */
export function useNodeTls(pem: NodeTlsPem | undefined): void {
  source = pem ? { pem } : undefined;
}

/** The node certificate now, when all three parts are there; undefined before the first one (plain HTTP). */
export function nodeTls(): NodeTlsPem | undefined {
  if (!source) return undefined;
  if ('pem' in source) return source.pem;
  try {
    const [cert, key, ca] = [source.files.cert, source.files.key, source.files.ca].map((f) => readFileSync(f, 'utf8'));
    return cert.includes('BEGIN CERTIFICATE') && key.includes('PRIVATE KEY') && ca.includes('BEGIN CERTIFICATE')
      ? { cert, key, ca }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Checks that `value` (an IPC message field) is a `NodeTlsPem`. */
export function isNodeTlsPem(value: unknown): value is NodeTlsPem {
  const v = value as Partial<NodeTlsPem> | null | undefined;
  return typeof v?.cert === 'string' && typeof v.key === 'string' && typeof v.ca === 'string';
}

/** Calls `listener` after each `nodeTlsChanged()`; returns how to stop. */
export function watchNodeTls(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Says the node certificate may have changed (the agent, after a renewal; a child, after its message). */
export function nodeTlsChanged(): void {
  for (const listener of listeners) {
    try {
      listener();
    } catch {
      // A listener that fails keeps the old certificate; the next renewal tries again.
    }
  }
}

/** The message a service child takes a renewed certificate from, and the field its init carries it in. */
export const NODE_TLS_MESSAGE = 'node_tls';

/** The field of a service child's init message that carries the certificate (absent: plain). */
export function nodeTlsField(): { node_tls?: NodeTlsPem } {
  const pem = nodeTls();
  return pem ? { node_tls: pem } : {};
}

/** Sends each renewed certificate to a service child; returns how to stop. */
export function forwardNodeTls(send: (message: Record<string, unknown>) => void): () => void {
  return watchNodeTls(() => {
    const field = nodeTlsField();
    if (field.node_tls) send({ type: NODE_TLS_MESSAGE, ...field });
  });
}
