/**
 * The cluster CA in vendor-data (issue 20, docs/metadata.md): once `mammatus ca init` ran, every
 * instance gets the root and the ACME directory URL, in two parts.
 *
 * - `mammatus-ca.cfg` (`text/cloud-config`): cloud-init's `ca_certs` module adds the root to the
 *   system trust store (`trusted:`), so curl, apt, certbot and the distribution's TLS libraries
 *   trust the cluster's services.
 * - `mammatus-ca.sh` (`text/x-shellscript`): writes the root to `/etc/mammatus/ca.crt` and the
 *   directory URL to `/etc/mammatus/acme-directory`, at fixed paths for ACME clients
 *   (`LEGO_CA_CERTIFICATES`, `REQUESTS_CA_BUNDLE`). A script, because a user's own cloud-config
 *   replaces vendor cloud-config key by key (a user `ca_certs` drops ours), while vendor scripts
 *   always run; it sorts before the other parts, so they may use the CA.
 *
 * Pure. The root is a public certificate: nothing here is secret.
 */
import type { MimePart } from './vendor-data-mime.js';
import { shellQuote } from './vendor-data-templates.js';

/** The cluster CA as instances get it. */
export interface VendorDataCa {
  /** The root certificate, PEM (the `root` of bucket `mammatus-ca`). */
  readonly rootPem: string;
  /** `https://ca.mammatus:<port>/acme/<provisioner>/directory`. */
  readonly acmeDirectory: string;
}

/** Where the script puts the root and the directory URL on the instance. */
export const INSTANCE_CA_FILE = '/etc/mammatus/ca.crt';
export const INSTANCE_ACME_FILE = '/etc/mammatus/acme-directory';

const PEM = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE-----$/;
const DIRECTORY = /^https:\/\/[a-z0-9.-]+(?::\d{1,5})?\/acme\/[a-z0-9_-]+\/directory$/;

/** The ACME directory URL of a CA listening on `port` with provisioner `provisioner`. */
export function acmeDirectoryUrl(port: number, provisioner: string): string {
  return `https://ca.mammatus:${port}/acme/${provisioner}/directory`;
}

/**
 * The two CA parts. @throws Error when the root is not one PEM certificate or the URL is not an
 * ACME directory URL (the caller leaves the parts out and logs why; the rest still goes out).
 */
export function renderCaParts(ca: VendorDataCa): MimePart[] {
  const pem = ca.rootPem.replace(/\r\n/g, '\n').trim();
  if (!PEM.test(pem)) throw new Error('the CA root is not one PEM certificate');
  if (!DIRECTORY.test(ca.acmeDirectory)) throw new Error(`${JSON.stringify(ca.acmeDirectory)} is not an ACME directory URL`);
  const indented = pem
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n');
  const cloudConfig = [
    '#cloud-config',
    '# mammatus: trust the cluster CA (docs/metadata.md)',
    'ca_certs:',
    '  trusted:',
    '    - |',
    indented,
    '',
  ];
  const script = [
    '#!/bin/sh',
    '# mammatus: the cluster CA root and ACME directory for ACME clients (docs/metadata.md)',
    'set -eu',
    'umask 022',
    'mkdir -p /etc/mammatus',
    // A quoted here-document: the PEM (base64 and dashes only, checked above) is taken literally.
    `cat > ${INSTANCE_CA_FILE}.tmp <<'MAMMATUS_CA_PEM'`,
    pem,
    'MAMMATUS_CA_PEM',
    `mv ${INSTANCE_CA_FILE}.tmp ${INSTANCE_CA_FILE}`,
    `printf '%s\\n' ${shellQuote(ca.acmeDirectory)} > ${INSTANCE_ACME_FILE}`,
    '',
  ];
  return [
    { contentType: 'text/cloud-config', filename: 'mammatus-ca.cfg', content: cloudConfig.join('\n') },
    { contentType: 'text/x-shellscript', filename: 'mammatus-ca.sh', content: script.join('\n') },
  ];
}
