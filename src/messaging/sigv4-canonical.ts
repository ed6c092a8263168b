/**
 * SigV4 canonicalisation, server side: the request is rebuilt from what arrived on the wire, the
 * same way the AWS signers (smithy, botocore) build it from what they send.
 */
import type { SignedRequest } from './sigv4.js';

/**
 * The canonical request of SigV4: method, canonical path, canonical query, the signed headers as
 * `name:value` lines, the signed header list and the payload hash, newline-separated.
 * `presigned` leaves `X-Amz-Signature` out of the query, as the signer did.
 */
export function canonicalRequest(
  req: SignedRequest,
  auth: { readonly signedHeaders: readonly string[]; readonly presigned: boolean },
  payloadHash: string,
): string {
  const query = decodeQuery(req.rawQuery)
    .filter(([k]) => !(auth.presigned && k === 'X-Amz-Signature'))
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const headerLines = auth.signedHeaders.map((name) => `${name}:${canonicalHeaderValue(req.headers[name])}\n`).join('');
  return [req.method.toUpperCase(), canonicalPath(req.rawPath), query, headerLines, auth.signedHeaders.join(';'), payloadHash].join('\n');
}

/** Normalises `.`/`..`/empty segments, then encodes the path as sent once more (non-S3 SigV4). */
function canonicalPath(rawPath: string): string {
  const segments: string[] = [];
  for (const segment of rawPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return `/${segments.map(uriEncode).join('/')}${trailing}`;
}

function canonicalHeaderValue(value: string | readonly string[] | undefined): string {
  const joined = value === undefined ? '' : typeof value === 'string' ? value : value.join(',');
  return joined.trim().replace(/\s+/g, ' ');
}

/** Splits a raw query string into decoded pairs; undecodable parts stay as sent (and will not match). */
export function decodeQuery(rawQuery: string): [string, string][] {
  if (rawQuery === '') return [];
  return rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? [percentDecode(pair), ''] : [percentDecode(pair.slice(0, eq)), percentDecode(pair.slice(eq + 1))];
    });
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** RFC 3986 encoding: everything but `A-Za-z0-9-_.~` as `%XX` (upper-case hex). */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
