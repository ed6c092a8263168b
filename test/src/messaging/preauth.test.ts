/**
 * Authentication before the body (issue 16): a request that fails the checks needing no body is
 * answered while the client has sent only its headers, and the connection is closed; and a chunked
 * body over `max_request_bytes` is cut off at the limit. Real listener on 127.0.0.1, raw sockets.
 */
import { connect, type Socket } from 'node:net';
import type { MessagingApp } from '../../../src/messaging/http.js';
import { describe, expect, onTestFinished, test } from 'vitest';
import { buildTestApp, CREDENTIALS, signRequest, xmlText } from './helpers.js';

/** An answer read off a raw socket. */
interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

async function listening(over: Record<string, unknown> = {}): Promise<{ app: MessagingApp; port: number }> {
  const { app } = await buildTestApp(over);
  onTestFinished(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  return { app, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
    onTestFinished(() => void socket.destroy());
  });
}

/** Reads one response (head and content-length body) from `socket`, or fails after `timeoutMs`. */
function readAnswer(socket: Socket, timeoutMs: number): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (data.length < end + 4 + length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString('utf8') });
    };
    socket.on('data', onData);
  });
}

function closed(socket: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.readableEnded) return resolve(true);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

const amzDate = (d = new Date()) =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

/** A request head announcing a 4,000,000-byte body (never sent). */
function bigHead(headers: Record<string, string>): string {
  const all: Record<string, string> = {
    host: 'localhost',
    'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    'content-length': '4000000',
    ...headers,
  };
  return `POST / HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

function authorization(credential: string, signedHeaders = 'host;x-amz-date'): string {
  return `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${'0'.repeat(64)}`;
}

describe('refused before the body is read', () => {
  const now = amzDate();
  const day = now.slice(0, 8);
  const cases: { name: string; headers: Record<string, string>; status: number; code: string; message?: RegExp }[] = [
    { name: 'unsigned', headers: {}, status: 403, code: 'MissingAuthenticationToken' },
    {
      name: 'unknown access key',
      headers: { 'x-amz-date': now, authorization: authorization(`AKIDUNKNOWN/${day}/us-east-1/sqs/aws4_request`) },
      status: 403,
      code: 'InvalidClientTokenId',
    },
    {
      name: 'scope for another service',
      headers: { 'x-amz-date': now, authorization: authorization(`${CREDENTIALS.accessKeyId}/${day}/us-east-1/s3/aws4_request`) },
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: /scoped to correct service/,
    },
    {
      name: 'date in a wrong format',
      headers: {
        'x-amz-date': '2026-12-06',
        authorization: authorization(`${CREDENTIALS.accessKeyId}/20261206/us-east-1/sqs/aws4_request`),
      },
      status: 400,
      code: 'IncompleteSignature',
      message: /ISO-8601/,
    },
    {
      name: 'scope date that is not the request date',
      headers: { 'x-amz-date': now, authorization: authorization(`${CREDENTIALS.accessKeyId}/19990101/us-east-1/sqs/aws4_request`) },
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: /Date in Credential scope/,
    },
    {
      name: 'malformed credential',
      headers: { 'x-amz-date': now, authorization: authorization(`${CREDENTIALS.accessKeyId}/us-east-1/sqs`) },
      status: 400,
      code: 'IncompleteSignature',
    },
    {
      name: 'host not signed',
      headers: {
        'x-amz-date': now,
        authorization: authorization(`${CREDENTIALS.accessKeyId}/${day}/us-east-1/sqs/aws4_request`, 'x-amz-date'),
      },
      status: 400,
      code: 'IncompleteSignature',
    },
  ];

  for (const c of cases) {
    test(`Query: ${c.name} → ${c.code}, answered after the headers only, connection closed`, async () => {
      const { port } = await listening();
      const socket = await open(port);
      socket.write(bigHead(c.headers));
      const answer = await readAnswer(socket, 3000);
      expect(answer.status).toBe(c.status);
      expect(xmlText(answer.body, 'Code')).toBe(c.code);
      if (c.message) expect(xmlText(answer.body, 'Message')).toMatch(c.message);
      expect(answer.headers.connection).toBe('close');
      expect(answer.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/);
      expect(await closed(socket, 3000)).toBe(true);
    });
  }

  test('JSON 1.0: the JSON shape with x-amzn-query-error', async () => {
    const { port } = await listening();
    const socket = await open(port);
    socket.write(
      bigHead({
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'AmazonSQS.SendMessage',
        'x-amz-date': now,
        authorization: authorization(`AKIDUNKNOWN/${day}/us-east-1/sqs/aws4_request`),
      }),
    );
    const answer = await readAnswer(socket, 3000);
    expect(answer.status).toBe(403);
    expect(answer.headers['x-amzn-query-error']).toBe('InvalidClientTokenId;Sender');
    expect(JSON.parse(answer.body)).toMatchObject({ __type: 'com.amazon.coral.service#UnrecognizedClientException' });
  });

  test('SNS (by the signing name): the SNS namespace', async () => {
    const { port } = await listening();
    const socket = await open(port);
    socket.write(bigHead({ 'x-amz-date': now, authorization: authorization(`AKIDUNKNOWN/${day}/us-east-1/sns/aws4_request`) }));
    const answer = await readAnswer(socket, 3000);
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('xmlns="http://sns.amazonaws.com/doc/2010-03-31/"');
    expect(xmlText(answer.body, 'Code')).toBe('InvalidClientTokenId');
  });

  test('with verify_signatures off nothing is refused early: the body is awaited', async () => {
    const { port } = await listening({ verify_signatures: false });
    const socket = await open(port);
    socket.write(bigHead({}));
    await expect(readAnswer(socket, 500)).rejects.toThrow(/no answer/);
  });

  test('a well-signed request still goes through (the checks run again with the body)', async () => {
    const { port } = await listening();
    const body = 'Action=ListQueues&Version=2012-11-05';
    const signed = await signRequest({ body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const socket = await open(port);
    const head = Object.entries({ ...signed.headers, 'content-length': String(Buffer.byteLength(body)) })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`POST / HTTP/1.1\r\n${head}\r\n${body}`);
    const answer = await readAnswer(socket, 3000);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('<ListQueuesResponse');
  });
});

describe('body limit', () => {
  test('a chunked body (no content-length) over max_request_bytes is cut off near the limit', { timeout: 30_000 }, async () => {
    const limit = 1024 * 1024 + 64 * 1024;
    const { port } = await listening({ max_request_bytes: limit });
    // Passes the checks before the body (known key, right scope, fresh date); the signature itself
    // would only be checked once the whole body is in.
    const signed = await signRequest({ body: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const socket = await open(port);
    socket.on('error', () => undefined);
    const head = Object.entries({ ...signed.headers, 'transfer-encoding': 'chunked' })
      .filter(([k]) => k !== 'content-length')
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`POST / HTTP/1.1\r\n${head}\r\n`);
    const answered = readAnswer(socket, 20_000);
    let state: 'sending' | 'answered' = 'sending';
    void answered.then(
      () => (state = 'answered'),
      () => undefined,
    );
    // Sends 64 KiB chunks with backpressure until the server answers, closes, or 64 MiB went out.
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    let sent = 0;
    while (state === 'sending' && !socket.destroyed && sent < 64 * 1024 * 1024) {
      const ok = socket.write(frame);
      sent += chunk.length;
      if (!ok) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, 200);
          socket.once('drain', () => {
            clearTimeout(t);
            r();
          });
        });
      }
    }
    const answer = await answered;
    expect(answer.status).toBe(400);
    expect(xmlText(answer.body, 'Code')).toBe('InvalidParameterValue');
    expect(answer.headers.connection).toBe('close');
    // Socket buffers on both sides hold a few MiB; the server stopped reading at the limit.
    expect(sent).toBeLessThan(32 * 1024 * 1024);
    expect(await closed(socket, 3000)).toBe(true);
  });
});
