/**
 * Refusal before the body: every authentication check that needs only the request line and the
 * headers (signature data present and well formed, a known access key, the credential scope, the
 * clock) runs as soon as the headers have arrived, so a caller without a valid key cannot make the
 * server read (and buffer) an upload of up to `max_request_bytes`. What passes here is verified in
 * full, body hash included, by the pipeline (`handle.ts`), which repeats these checks.
 */
import { randomUUID } from 'node:crypto';
import { toAwsError } from '../errors.js';
import { countRequest } from '../metrics.js';
import { hasSignature, type RequestHead, type SigV4Verifier } from '../sigv4.js';
import { detectFromHead } from './detect.js';
import { renderError, type WireResponse } from './handle.js';

/**
 * The error answer for a request whose head already fails authentication, in the shape the client
 * speaks; undefined when the request may go on (its body is then read and verified as usual).
 */
export function refuseBeforeBody(head: RequestHead, verifier: SigV4Verifier): WireResponse | undefined {
  // A GET or HEAD has no body to protect; unsigned GETs may be SNS confirmation links (handle.ts),
  // and a receiver may check the signing certificate with a HEAD.
  if ((head.method === 'GET' || head.method === 'HEAD') && !hasSignature(head)) return undefined;
  const { wire, service } = detectFromHead(head);
  try {
    verifier.precheck(head, service);
    return undefined;
  } catch (err) {
    const error = toAwsError(err, service);
    // The body is not read: its action is not known.
    countRequest({ service, action: undefined, outcome: error.code });
    return renderError(error, wire, service, randomUUID());
  }
}
