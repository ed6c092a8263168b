/** Self-signed certificates for tests, made with the real `openssl`. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** A P-256 self-signed certificate for `host` (also its subjectAltName), valid `days`, written in `dir`. */
export function selfSignedCert(dir: string, host: string, days = 1): { crt: string; key: string } {
  const out = path.join(dir, `${host}.pem`);
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days)],
      ...['-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-keyout', `${out}.key`, '-out', out],
    ],
    { stdio: 'ignore' },
  );
  return { crt: readFileSync(out, 'utf8'), key: readFileSync(`${out}.key`, 'utf8') };
}
