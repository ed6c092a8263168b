import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { MessagingError } from '../../../src/messaging/errors.js';
import { createSigV4Verifier, hasSignature, readCredentialScope, uriEncode, type SignedRequest } from '../../../src/messaging/sigv4.js';

interface Captured {
  client: string;
  action: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/captured-requests.json', import.meta.url), 'utf8')) as {
  secret_access_key: string;
  requests: Captured[];
};

const KEY = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: fixtures.secret_access_key };
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);

function amzDateMs(d: string): number {
  return Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
}

function fromCaptured(c: Captured): SignedRequest {
  const q = c.url.indexOf('?');
  return {
    method: c.method,
    rawPath: q < 0 ? c.url : c.url.slice(0, q),
    rawQuery: q < 0 ? '' : c.url.slice(q + 1),
    headers: c.headers,
    body: Buffer.from(c.body, 'utf8'),
  };
}

/** Captures `code` of the MessagingError that `fn` throws. */
function errorOf(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof MessagingError) return { code: err.code, status: err.def.status, message: err.message };
    throw err;
  }
  throw new Error('expected a MessagingError');
}

/** Signs with the SDK's own signer, as a client would. */
async function sdkSigned(opts: {
  service?: string;
  region?: string;
  method?: string;
  path?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string;
  presign?: number;
  date?: number;
  secret?: string;
}): Promise<SignedRequest> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: opts.secret ?? KEY.secretAccessKey },
    region: opts.region ?? 'us-east-1',
    service: opts.service ?? 'sqs',
    sha256: Hash.bind(null, 'sha256'),
  });
  const request = {
    method: opts.method ?? 'POST',
    protocol: 'http:',
    hostname: 'sqs.local',
    port: 9324,
    path: opts.path ?? '/',
    query: opts.query ?? {},
    headers: { host: 'sqs.local:9324', 'content-type': 'application/x-www-form-urlencoded', ...(opts.headers ?? {}) },
    body: opts.body ?? '',
  };
  const signingDate = new Date(opts.date ?? T0);
  const signed = opts.presign
    ? await signer.presign(request, { expiresIn: opts.presign, signingDate })
    : await signer.sign(request, { signingDate });
  const query = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${uriEncode(k)}=${uriEncode(String(v))}`)
    .join('&');
  return {
    method: signed.method,
    rawPath: signed.path,
    rawQuery: query,
    headers: lower(signed.headers),
    body: Buffer.from(opts.body ?? ''),
  };
}

function lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

const verifier = (now = T0, extra: Partial<Parameters<typeof createSigV4Verifier>[0]> = {}) =>
  createSigV4Verifier({ credentials: [{ accessKeyId: 'OTHERKEY', secretAccessKey: 'other-secret' }, KEY], now: () => now, ...extra });

describe('captured vectors from awscli 2.9.19, client-sqs 3.445 and 3.1174, client-sns 3.1168', () => {
  test.each(fixtures.requests.map((c, i) => [`${i} ${c.client} ${c.action}`, c] as const))('%s verifies', (_name, c) => {
    const req = fromCaptured(c);
    const service = readCredentialScope(req)?.service ?? '';
    const identity = verifier(amzDateMs(c.headers['x-amz-date'] ?? '') + 5000).verify(req, service);
    expect(identity).toEqual({ accessKeyId: 'AKIDEXAMPLE', region: 'us-east-1', service, presigned: false });
  });

  test('a captured request with one body byte changed fails', () => {
    const c = fixtures.requests.find((r) => r.client === 'awscli-2.9.19' && r.action === 'SendMessage');
    if (!c) throw new Error('fixture missing');
    const req = { ...fromCaptured(c), body: Buffer.from(c.body.replace('hello', 'hellO')) };
    expect(errorOf(() => verifier(amzDateMs(c.headers['x-amz-date'] ?? '')).verify(req, 'sqs')).code).toBe('SignatureDoesNotMatch');
  });
});

describe('signatures made by @smithy/signature-v4', () => {
  test('header form, any region accepted by default', async () => {
    const req = await sdkSigned({ region: 'eu-central-1', body: 'Action=ListQueues&Version=2012-11-05' });
    expect(verifier().verify(req, 'sqs')).toMatchObject({ region: 'eu-central-1', service: 'sqs' });
  });

  test('queue paths and query strings are canonicalised like the SDK does', async () => {
    const req = await sdkSigned({
      method: 'GET',
      path: '/000000000000/my-queue',
      query: { Action: 'ReceiveMessage', 'AttributeName.1': 'All', Weird: "a b+c/d~e*f'(g)!", Empty: '' },
      headers: { 'x-custom': '  several   spaces  here ' },
    });
    expect(verifier().verify(req, 'sqs').presigned).toBe(false);
  });

  test('presigned query form', async () => {
    const req = await sdkSigned({ method: 'GET', query: { Action: 'ListTopics' }, service: 'sns', presign: 300 });
    expect(hasSignature(req)).toBe(true);
    expect(verifier(T0 + 60_000).verify(req, 'sns')).toMatchObject({ service: 'sns', presigned: true });
    expect(errorOf(() => verifier(T0 + 301_000).verify(req, 'sns'))).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
  });

  test('a region list restricts the scope', async () => {
    const req = await sdkSigned({ region: 'eu-central-1' });
    expect(errorOf(() => verifier(T0, { regions: ['us-east-1'] }).verify(req, 'sqs')).code).toBe('SignatureDoesNotMatch');
  });
});

describe('tampering', () => {
  test('a changed signed header', async () => {
    const req = await sdkSigned({ body: 'x=1' });
    const tampered = { ...req, headers: { ...req.headers, 'content-type': 'text/plain' } };
    expect(errorOf(() => verifier().verify(tampered, 'sqs'))).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
  });

  test('a changed body', async () => {
    const req = await sdkSigned({ body: 'Action=SendMessage&MessageBody=a' });
    expect(errorOf(() => verifier().verify({ ...req, body: Buffer.from('Action=SendMessage&MessageBody=b') }, 'sqs')).code).toBe(
      'SignatureDoesNotMatch',
    );
  });

  test('a changed path or query', async () => {
    const req = await sdkSigned({ method: 'GET', path: '/000000000000/q1', query: { Action: 'PurgeQueue' } });
    expect(errorOf(() => verifier().verify({ ...req, rawPath: '/000000000000/q2' }, 'sqs')).code).toBe('SignatureDoesNotMatch');
    expect(errorOf(() => verifier().verify({ ...req, rawQuery: 'Action=DeleteQueue' }, 'sqs')).code).toBe('SignatureDoesNotMatch');
  });

  test('a changed date (signed header) no longer matches', async () => {
    const req = await sdkSigned({});
    const headers = { ...req.headers, 'x-amz-date': '20261125T120001Z' };
    expect(errorOf(() => verifier().verify({ ...req, headers }, 'sqs')).code).toBe('SignatureDoesNotMatch');
  });

  test('x-amz-content-sha256 must be the hash of the body actually sent', async () => {
    const req = await sdkSigned({
      body: 'abc',
      headers: { 'x-amz-content-sha256': 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
    });
    expect(verifier().verify(req, 'sqs').service).toBe('sqs');
    const other = { ...req, body: Buffer.from('abd') };
    expect(errorOf(() => verifier().verify(other, 'sqs')).message).toContain('x-amz-content-sha256');
  });

  test('a wrong secret', async () => {
    const req = await sdkSigned({ secret: 'not-the-secret' });
    expect(errorOf(() => verifier().verify(req, 'sqs'))).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
  });

  test('an unknown access key', async () => {
    const req = await sdkSigned({});
    const v = createSigV4Verifier({ credentials: [{ accessKeyId: 'SOMEONEELSE', secretAccessKey: 'x' }], now: () => T0 });
    expect(errorOf(() => v.verify(req, 'sqs'))).toMatchObject({ code: 'InvalidClientTokenId', status: 403 });
  });

  test('the wrong service', async () => {
    const req = await sdkSigned({ service: 'sns' });
    expect(errorOf(() => verifier().verify(req, 'sqs')).message).toContain("correct service: 'sqs'");
  });

  test('a malformed signature', async () => {
    const req = await sdkSigned({});
    const authorization = (req.headers.authorization as string).replace(/Signature=\w+/, 'Signature=xyz');
    expect(errorOf(() => verifier().verify({ ...req, headers: { ...req.headers, authorization } }, 'sqs')).code).toBe(
      'SignatureDoesNotMatch',
    );
  });
});

describe('clock skew: AWS answers SignatureDoesNotMatch (403) with "Signature expired"', () => {
  test('15 minutes either way are fine, more is not', async () => {
    const req = await sdkSigned({});
    expect(verifier(T0 + 15 * 60_000).verify(req, 'sqs').service).toBe('sqs');
    expect(verifier(T0 - 15 * 60_000).verify(req, 'sqs').service).toBe('sqs');
    expect(errorOf(() => verifier(T0 + 15 * 60_000 + 1000).verify(req, 'sqs'))).toEqual({
      code: 'SignatureDoesNotMatch',
      status: 403,
      message: 'Signature expired: 20261125T120000Z is now earlier than 20261125T120001Z (20261125T121501Z - 15 min.)',
    });
    expect(errorOf(() => verifier(T0 - 16 * 60_000).verify(req, 'sqs')).message).toMatch(
      /^Signature not yet current: 20261125T120000Z is still later than/,
    );
  });
});

describe('missing or incomplete authentication', () => {
  const bare: SignedRequest = { method: 'POST', rawPath: '/', rawQuery: '', headers: { host: 'h' }, body: Buffer.alloc(0) };

  test('no authentication at all', () => {
    expect(hasSignature(bare)).toBe(false);
    expect(errorOf(() => verifier().verify(bare, 'sqs'))).toMatchObject({ code: 'MissingAuthenticationToken', status: 403 });
  });

  test.each([
    ['another algorithm', 'AWS4-HMAC-SHA512 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00'],
    ['no Signature', 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=host'],
    ['a short Credential', 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/sqs/aws4_request, SignedHeaders=host, Signature=00'],
  ])('%s', (_name, authorization) => {
    const req = { ...bare, headers: { host: 'h', 'x-amz-date': '20261125T120000Z', authorization } };
    expect(errorOf(() => verifier().verify(req, 'sqs'))).toMatchObject({ code: 'IncompleteSignature', status: 400 });
  });

  test('no X-Amz-Date', () => {
    const authorization = 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00';
    expect(errorOf(() => verifier().verify({ ...bare, headers: { host: 'h', authorization } }, 'sqs')).code).toBe('IncompleteSignature');
  });

  test('host must be signed', async () => {
    const req = await sdkSigned({});
    const authorization = (req.headers.authorization as string).replace(/SignedHeaders=[^,]+/, 'SignedHeaders=x-amz-date');
    expect(errorOf(() => verifier().verify({ ...req, headers: { ...req.headers, authorization } }, 'sqs')).code).toBe(
      'IncompleteSignature',
    );
  });

  test('a scope date that differs from X-Amz-Date', async () => {
    const req = await sdkSigned({});
    const authorization = (req.headers.authorization as string).replace('/20261125/', '/20261124/');
    expect(errorOf(() => verifier().verify({ ...req, headers: { ...req.headers, authorization } }, 'sqs')).message).toContain(
      'Date in Credential scope',
    );
  });
});

test('uriEncode is RFC 3986', () => {
  expect(uriEncode("a b+c/d~e*f'(g)!é")).toBe('a%20b%2Bc%2Fd~e%2Af%27%28g%29%21%C3%A9');
});
