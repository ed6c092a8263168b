/**
 * Test helpers for the messaging wire layer: a server over the in-memory engine, and requests signed
 * with the AWS SDK's own SigV4 signer (`@smithy/signature-v4`, test-only import).
 */
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { inject, type InjectOptions, type Response } from 'light-my-request';
import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { parseMessagingConfig, type MessagingConfig } from '../../../src/messaging/config.js';
import { buildMessagingApp, type MessagingApp } from '../../../src/messaging/http.js';
import { createMemoryEngine } from './memory-engine.js';

/** The key pair the test apps accept. */
export const CREDENTIALS = { accessKeyId: 'AKIDTESTKEY', secretAccessKey: 'test-secret-access-key' } as const;

/** A resolved config with the test credentials; `over` replaces keys of the raw section. */
export function testConfig(over: Record<string, unknown> = {}): MessagingConfig {
  return parseMessagingConfig({
    credentials: [{ access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey }],
    ...over,
  });
}

/** An app over a fresh in-memory engine (the caller closes it). */
export async function buildTestApp(
  over: Record<string, unknown> = {},
): Promise<{ app: MessagingApp; engine: ReturnType<typeof createMemoryEngine> }> {
  const engine = createMemoryEngine();
  const app = buildMessagingApp({ config: testConfig(over), sqs: engine.sqs, sns: engine.sns, log: pino({ level: 'silent' }) });
  return { app, engine };
}

/** An app over a fresh in-memory engine, closed when the test ends. */
export async function testApp(
  over: Record<string, unknown> = {},
): Promise<{ app: MessagingApp; engine: ReturnType<typeof createMemoryEngine> }> {
  const built = await buildTestApp(over);
  onTestFinished(() => built.app.close());
  return built;
}

/** What to send; `service` picks the signing name. */
export interface TestRequest {
  readonly service?: 'sqs' | 'sns';
  readonly method?: 'GET' | 'POST';
  readonly path?: string;
  readonly query?: Record<string, string>;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly signingDate?: Date;
  /** Leave the request unsigned. */
  readonly unsigned?: boolean;
}

/** Signs `req` like an SDK would (host `localhost`) and returns method, url, headers and body. */
export async function signRequest(
  req: TestRequest,
): Promise<{ method: 'GET' | 'POST'; url: string; headers: Record<string, string>; body: string }> {
  const method = req.method ?? 'POST';
  const path = req.path ?? '/';
  const query = req.query ?? {};
  const body = req.body ?? '';
  const headers: Record<string, string> = { host: 'localhost', ...(req.headers ?? {}) };
  const qs = new URLSearchParams(query).toString().replace(/\+/g, '%20');
  const url = qs ? `${path}?${qs}` : path;
  if (req.unsigned) return { method, url, headers, body };
  const signer = new SignatureV4({
    credentials: req.credentials ?? CREDENTIALS,
    region: 'us-east-1',
    service: req.service ?? 'sqs',
    sha256: Hash.bind(null, 'sha256'),
  });
  const signed = await signer.sign(
    { method, protocol: 'http:', hostname: 'localhost', path, query, headers, body },
    req.signingDate ? { signingDate: req.signingDate } : undefined,
  );
  return { method, url, headers: signed.headers, body };
}

/** Injects a request into `app`'s request listener (light-my-request), as fastify's `inject` did. */
export function injectInto(app: MessagingApp, opts: InjectOptions): Promise<Response> {
  return inject(app.handle, opts);
}

/** Signs and injects `req`. */
export async function send(app: MessagingApp, req: TestRequest): Promise<Response> {
  const r = await signRequest(req);
  return injectInto(app, { method: r.method, url: r.url, headers: r.headers, payload: r.body });
}

/** A signed SQS Query POST of `params` (Action included). */
export function sqsQuery(app: MessagingApp, params: Record<string, string>, extra: TestRequest = {}): Promise<Response> {
  return send(app, {
    body: new URLSearchParams({ ...params, Version: '2012-11-05' }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    ...extra,
  });
}

/** A signed SQS JSON 1.0 POST. */
export function sqsJson(app: MessagingApp, action: string, input: unknown, extra: TestRequest = {}): Promise<Response> {
  return send(app, {
    body: JSON.stringify(input),
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}`, 'x-amzn-query-mode': 'true' },
    ...extra,
  });
}

/** A signed SNS Query POST of `params`. */
export function snsQuery(app: MessagingApp, params: Record<string, string>, extra: TestRequest = {}): Promise<Response> {
  return send(app, {
    service: 'sns',
    body: new URLSearchParams({ ...params, Version: '2010-03-31' }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    ...extra,
  });
}

/** Undoes the writer's escaping (the three entities and `&#xD;`). */
export function decodeXml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#xD;/g, '\r').replace(/&amp;/g, '&');
}

/** The decoded text of the first `<name>` element in `xml`. */
export function xmlText(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m?.[1] === undefined ? undefined : decodeXml(m[1]);
}

/** The decoded text of every `<name>` element in `xml`. */
export function xmlTexts(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g'))].map((m) => decodeXml(m[1] ?? ''));
}
