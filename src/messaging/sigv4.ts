/**
 * Verification of AWS Signature Version 4 on incoming requests: the `Authorization` header form
 * every SDK uses, and the presigned query-string form (`X-Amz-Signature=…`).
 *
 * The server recomputes the signature from the request exactly as received: method, the path as
 * sent (normalised and URI-encoded again, as SigV4 prescribes for services other than S3), the query
 * string re-encoded and sorted, the signed headers (trimmed, inner spaces collapsed), and the SHA-256
 * of the raw body bytes (awscli sends no `x-amz-content-sha256`; when a client sends one it must
 * match the body). Outcomes use the codes AWS returns: `MissingAuthenticationToken`,
 * `IncompleteSignature`, `InvalidClientTokenId`, `SignatureDoesNotMatch` (also for a stale or future
 * `X-Amz-Date`: SQS answers "Signature expired: … (… - 15 min.)" with that code and 403).
 *
 * Regions: any region in the credential scope is accepted unless `regions` is given. The region is
 * still part of the signing key, so a signature cannot be moved to another region; clients need an
 * endpoint override to reach us anyway, and refusing their configured region would only break them.
 * Session tokens (`x-amz-security-token`) are ignored: the static secret already proved the caller.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { commonError } from './errors.js';
import { canonicalRequest, decodeQuery } from './sigv4-canonical.js';

/** A request as received, before any decoding. */
export interface SignedRequest {
  readonly method: string;
  /** The path as sent, without the query string. */
  readonly rawPath: string;
  /** The query string as sent, without `?`; empty when there is none. */
  readonly rawQuery: string;
  /** Header names in lower case (as Node delivers them). */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body: Uint8Array;
}

/** One accepted key pair. */
export interface Credential {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** Who signed a request, and for what. */
export interface SigV4Identity {
  readonly accessKeyId: string;
  readonly region: string;
  readonly service: string;
  readonly presigned: boolean;
}

/** The unverified credential scope of a request: enough to tell SQS from SNS before verifying. */
export interface CredentialScope {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly terminator: string;
}

/** Settings of a verifier; a new verifier is built when credentials change. */
export interface SigV4VerifierOptions {
  readonly credentials: readonly Credential[];
  /** Regions accepted in the credential scope; undefined accepts any. */
  readonly regions?: readonly string[];
  /** Allowed clock difference in seconds; AWS uses 15 minutes. */
  readonly maxSkewSeconds?: number;
  /** The clock, epoch ms (tests pass a fixed one). */
  readonly now?: () => number;
}

/** What arrives before the body: enough to refuse a request without reading it. */
export type RequestHead = Omit<SignedRequest, 'body'>;

/** Verifies requests against one set of credentials, caching derived signing keys. */
export interface SigV4Verifier {
  /**
   * Verifies `req` as signed for `service` (`sqs` or `sns`) and returns the signer.
   * @throws MessagingError with one of the codes above.
   */
  verify(req: SignedRequest, service: string): SigV4Identity;
  /**
   * Every check that needs no body (form of the signature data, known access key, credential
   * scope, clock, `host` signed), so that a request that will be refused is refused before its body
   * is read. `verify` repeats them. Returns the claimed scope.
   * @throws MessagingError with the code `verify` would throw.
   */
  precheck(req: RequestHead, service: string): CredentialScope;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const TERMINATOR = 'aws4_request';
const KEY_CACHE_LIMIT = 256;

// Kept importable from here: tests and callers that build presigned URLs use it.
export { uriEncode } from './sigv4-canonical.js';

/** True when the request carries SigV4 data in either form (valid or not). */
export function hasSignature(req: RequestHead): boolean {
  return header(req, 'authorization') !== undefined || /(?:^|&)X-Amz-(?:Algorithm|Signature|Credential)=/i.test(req.rawQuery);
}

/** The credential scope as claimed by the request (not verified), or undefined if unreadable. */
export function readCredentialScope(req: RequestHead): CredentialScope | undefined {
  try {
    return parseAuth(req).scope;
  } catch {
    return undefined;
  }
}

/** Builds a verifier for `options.credentials`. */
export function createSigV4Verifier(options: SigV4VerifierOptions): SigV4Verifier {
  const secrets = new Map(options.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]));
  const skewMs = (options.maxSkewSeconds ?? 900) * 1000;
  const now = options.now ?? Date.now;
  const keys = new Map<string, Buffer>();

  function signingKey(accessKeyId: string, secret: string, scope: CredentialScope): Buffer {
    const id = `${accessKeyId}/${scope.date}/${scope.region}/${scope.service}`;
    let key = keys.get(id);
    if (!key) {
      const kDate = hmac(`AWS4${secret}`, scope.date);
      key = hmac(hmac(hmac(kDate, scope.region), scope.service), TERMINATOR);
      // Dates roll over daily, so the cache only ever needs a handful of entries per key.
      if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
      keys.set(id, key);
    }
    return key;
  }

  // `precheck` (before the body) and `verify` (after it) see the same headers object: the second
  // reuses what the first parsed, for the same query string.
  const parsed = new WeakMap<object, { readonly rawQuery: string; readonly auth: ParsedAuth }>();

  function parseOnce(req: RequestHead): ParsedAuth {
    const hit = parsed.get(req.headers);
    if (hit && hit.rawQuery === req.rawQuery) return hit.auth;
    const auth = parseAuth(req);
    parsed.set(req.headers, { rawQuery: req.rawQuery, auth });
    return auth;
  }

  function checkHead(req: RequestHead, service: string): { auth: ParsedAuth; secret: string } {
    const auth = parseOnce(req);
    const secret = secrets.get(auth.scope.accessKeyId);
    if (secret === undefined) throw commonError('InvalidClientTokenId');
    checkScope(auth.scope, auth.amzDate, service, options.regions);
    checkTime(auth, now(), skewMs);
    if (!auth.signedHeaders.includes('host')) {
      throw commonError('IncompleteSignature', "'Host' must be a 'SignedHeader' in the AWS Authorization.");
    }
    return { auth, secret };
  }

  return {
    precheck: (req, service) => checkHead(req, service).auth.scope,
    verify(req, service) {
      const { auth, secret } = checkHead(req, service);
      const { scope } = auth;
      const payloadHash = sha256Hex(req.body);
      const claimed = header(req, 'x-amz-content-sha256');
      if (claimed !== undefined && claimed.toLowerCase() !== payloadHash) {
        throw commonError('SignatureDoesNotMatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
      const canonical = canonicalRequest(req, auth, payloadHash);
      const stringToSign = [ALGORITHM, auth.amzDate, scopeString(scope), sha256Hex(canonical)].join('\n');
      const expected = createHmac('sha256', signingKey(scope.accessKeyId, secret, scope))
        .update(stringToSign)
        .digest();
      const wellFormed = /^[0-9a-f]{64}$/i.test(auth.signature);
      const given = wellFormed ? Buffer.from(auth.signature, 'hex') : Buffer.alloc(expected.length);
      // Constant-time comparison; a malformed signature fails after the same work.
      if (!timingSafeEqual(expected, given) || !wellFormed) throw commonError('SignatureDoesNotMatch');
      return { accessKeyId: scope.accessKeyId, region: scope.region, service: scope.service, presigned: auth.presigned };
    },
  };
}

interface ParsedAuth {
  readonly scope: CredentialScope;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
  readonly amzDate: string;
  readonly presigned: boolean;
  /** Presigned only: validity in seconds. */
  readonly expires?: number;
}

function parseAuth(req: RequestHead): ParsedAuth {
  const authorization = header(req, 'authorization');
  const query = decodeQuery(req.rawQuery);
  const presignedAlgorithm = query.find(([k]) => k === 'X-Amz-Algorithm')?.[1];
  if (authorization !== undefined && presignedAlgorithm !== undefined) {
    throw commonError('IncompleteSignature', "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.");
  }
  if (authorization !== undefined) return parseHeaderAuth(authorization, req);
  if (presignedAlgorithm !== undefined || query.some(([k]) => k === 'X-Amz-Signature' || k === 'X-Amz-Credential')) {
    return parseQueryAuth(query, presignedAlgorithm);
  }
  throw commonError('MissingAuthenticationToken');
}

function parseHeaderAuth(authorization: string, req: RequestHead): ParsedAuth {
  const space = authorization.indexOf(' ');
  const algorithm = space < 0 ? authorization : authorization.slice(0, space);
  if (algorithm !== ALGORITHM) throw commonError('IncompleteSignature', `Unsupported AWS 'algorithm': '${clip(algorithm)}'.`);
  const fields = new Map<string, string>();
  for (const part of authorization.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  for (const name of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!fields.get(name)) throw commonError('IncompleteSignature', `Authorization header requires '${name}' parameter.`);
  }
  const amzDate = header(req, 'x-amz-date');
  if (amzDate === undefined) {
    throw commonError('IncompleteSignature', "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  return {
    scope: parseScope(fields.get('Credential') ?? ''),
    signedHeaders: (fields.get('SignedHeaders') ?? '').split(';'),
    signature: fields.get('Signature') ?? '',
    amzDate,
    presigned: false,
  };
}

function parseQueryAuth(query: readonly (readonly [string, string])[], algorithm: string | undefined): ParsedAuth {
  const get = (name: string): string => {
    const value = query.find(([k]) => k === name)?.[1];
    if (!value) throw commonError('IncompleteSignature', `AWS query-string parameters must include '${name}'.`);
    return value;
  };
  if (algorithm !== ALGORITHM) throw commonError('IncompleteSignature', `Unsupported AWS 'algorithm': '${clip(algorithm ?? '')}'.`);
  const expiresText = query.find(([k]) => k === 'X-Amz-Expires')?.[1];
  const expires = expiresText === undefined ? undefined : Number(expiresText);
  if (expires !== undefined && !(Number.isInteger(expires) && expires >= 1 && expires <= 604800)) {
    throw commonError('IncompleteSignature', 'X-Amz-Expires must be between 1 and 604800 seconds.');
  }
  return {
    scope: parseScope(get('X-Amz-Credential')),
    signedHeaders: get('X-Amz-SignedHeaders').split(';'),
    signature: get('X-Amz-Signature'),
    amzDate: get('X-Amz-Date'),
    presigned: true,
    expires,
  };
}

function parseScope(credential: string): CredentialScope {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts.some((p) => p === '')) {
    throw commonError(
      'IncompleteSignature',
      'Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.',
    );
  }
  const [accessKeyId = '', date = '', region = '', service = '', terminator = ''] = parts;
  return { accessKeyId, date, region, service, terminator };
}

function checkScope(scope: CredentialScope, amzDate: string, service: string, regions?: readonly string[]): void {
  if (!/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw commonError('IncompleteSignature', `Date must be in ISO-8601 'basic format'. Got '${clip(amzDate)}'.`);
  }
  if (scope.date !== amzDate.slice(0, 8)) {
    throw commonError(
      'SignatureDoesNotMatch',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${clip(scope.date)}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (scope.terminator !== TERMINATOR) {
    throw commonError(
      'SignatureDoesNotMatch',
      `Credential should be scoped with a valid terminator: '${TERMINATOR}', not '${clip(scope.terminator)}'.`,
    );
  }
  if (scope.service !== service) {
    throw commonError('SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'. `);
  }
  if (regions !== undefined && !regions.includes(scope.region)) {
    throw commonError('SignatureDoesNotMatch', `Credential should be scoped to a valid region, not '${clip(scope.region)}'. `);
  }
}

function checkTime(auth: ParsedAuth, nowMs: number, skewMs: number): void {
  const d = auth.amzDate;
  const signedAt = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
  if (Number.isNaN(signedAt)) throw commonError('IncompleteSignature', `Date must be in ISO-8601 'basic format'. Got '${clip(d)}'.`);
  // A presigned URL may be shorter-lived than the skew window; SQS caps it at the window.
  const window = auth.expires === undefined ? skewMs : Math.min(skewMs, auth.expires * 1000);
  const minutes = `${Math.round(window / 60000)} min.`;
  if (signedAt < nowMs - window) {
    throw commonError(
      'SignatureDoesNotMatch',
      `Signature expired: ${d} is now earlier than ${basic(nowMs - window)} (${basic(nowMs)} - ${minutes})`,
    );
  }
  if (signedAt > nowMs + skewMs) {
    throw commonError(
      'SignatureDoesNotMatch',
      `Signature not yet current: ${d} is still later than ${basic(nowMs + skewMs)} (${basic(nowMs)} + ${Math.round(skewMs / 60000)} min.)`,
    );
  }
}

function header(req: RequestHead, name: string): string | undefined {
  const value = req.headers[name];
  return value === undefined ? undefined : typeof value === 'string' ? value : value.join(',');
}

function scopeString(scope: CredentialScope): string {
  return `${scope.date}/${scope.region}/${scope.service}/${scope.terminator}`;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function sha256Hex(data: string | Uint8Array): string {
  return hash('sha256', data, 'hex');
}

function basic(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

// Client-supplied text echoed in a message is capped; it never includes the signature itself.
function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}
