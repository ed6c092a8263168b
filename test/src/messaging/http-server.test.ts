/**
 * The node:http front of the API (issue 23): what the server answers itself, before or around the
 * pipeline — the signing certificate, broken media types and framing, and requests that arrive
 * while it closes — through injected requests (light-my-request).
 */
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { buildMessagingApp } from '../../../src/messaging/http.js';
import { createMemoryEngine } from './memory-engine.js';
import { injectInto, testConfig, xmlText } from './helpers.js';

const CERT = { path: '/SimpleNotificationService-test.pem', pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };

function app(over: Record<string, unknown> = {}) {
  const engine = createMemoryEngine();
  const built = buildMessagingApp({
    config: testConfig(over),
    sqs: engine.sqs,
    sns: engine.sns,
    log: pino({ level: 'silent' }),
    signingCertificate: CERT,
  });
  onTestFinished(() => built.close());
  return built;
}

describe('the SNS signing certificate', () => {
  test('served unauthenticated at its path (GET, a query ignored), with its length on an unsigned HEAD', async () => {
    const a = app();
    for (const url of [CERT.path, `${CERT.path}?x=1`]) {
      const res = await injectInto(a, { method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-pem-file');
      expect(res.body).toBe(CERT.pem);
    }
    // HEAD, unsigned as a receiver's check would be, with signatures on and off.
    for (const verify of [true, false]) {
      const res = await injectInto(app({ verify_signatures: verify }), { method: 'HEAD', url: CERT.path });
      expect([res.statusCode, res.headers['content-length'], res.body]).toEqual([200, String(Buffer.byteLength(CERT.pem)), '']);
    }
  });

  test('an unsigned HEAD anywhere else is still refused', async () => {
    const res = await injectInto(app(), { method: 'HEAD', url: '/?Action=ListQueues' });
    expect(res.statusCode).toBe(403);
  });

  test('other methods at its path reach the pipeline', async () => {
    const res = await injectInto(app({ verify_signatures: false }), { method: 'POST', url: CERT.path });
    expect(xmlText(res.body, 'Code')).toBe('MissingAction');
  });
});

describe('refused in front of the pipeline', () => {
  test('a media type that is not type/subtype: MalformedQueryString (Query) or SerializationException (JSON)', async () => {
    const a = app({ verify_signatures: false });
    const query = await injectInto(a, { method: 'POST', url: '/', headers: { 'content-type': 'form' }, payload: 'Action=ListQueues' });
    expect([query.statusCode, xmlText(query.body, 'Code')]).toEqual([404, 'MalformedQueryString']);
    const json = await injectInto(a, {
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-amz-json-1.0 x', 'x-amz-target': 'AmazonSQS.ListQueues' },
      payload: '{}',
    });
    expect([json.statusCode, json.headers['x-amzn-query-error']]).toEqual([400, 'SerializationException;Sender']);
  });

  test('a body shorter than its content-length: MalformedQueryString, connection closed', async () => {
    const a = app({ verify_signatures: false });
    const res = await injectInto(a, {
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '40' },
      payload: 'Action=ListQueues',
    });
    expect([res.statusCode, xmlText(res.body, 'Code'), res.headers.connection]).toEqual([404, 'MalformedQueryString', 'close']);
  });

  test('an undecodable path is refused for every method, before authentication', async () => {
    const a = app();
    for (const method of ['GET', 'POST', 'PROPFIND'] as const) {
      const res = await injectInto(a, { method: method, url: '/%e9/?Action=ListQueues' });
      expect([method, res.statusCode, xmlText(res.body, 'Code')]).toEqual([method, 404, 'MalformedQueryString']);
    }
  });
});

test('a request arriving while the server closes: 503 ServiceUnavailable in the client shape, connection closed', async () => {
  const a = app({ verify_signatures: false });
  await a.close();
  const res = await injectInto(a, {
    method: 'POST',
    url: '/',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues' },
    payload: '{}',
  });
  expect([res.statusCode, res.headers['x-amzn-query-error'], res.headers.connection]).toEqual([
    503,
    'ServiceUnavailable;Receiver',
    'close',
  ]);
});
