/**
 * Test pieces for SNS http(s) subscriptions: a loopback endpoint that records what SNS POSTs, and
 * the signature check that AWS's message validators (sns-validator, the SDKs') make.
 */
import { createVerify, X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cleanup } from './js-harness.js';

/** Verifies an SNS JSON document like sns-validator / the AWS SDK validators: fixed key order, cert from SigningCertURL. */
export async function verifySnsSignature(doc: Record<string, string>): Promise<boolean> {
  const keys =
    doc.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const text = keys
    .filter((k) => doc[k] !== undefined)
    .map((k) => `${k}\n${doc[k]}\n`)
    .join('');
  const pem = await (await fetch(doc.SigningCertURL ?? '')).text();
  const cert = new X509Certificate(pem);
  return createVerify(doc.SignatureVersion === '2' ? 'RSA-SHA256' : 'RSA-SHA1')
    .update(text, 'utf8')
    .verify(cert.publicKey, doc.Signature ?? '', 'base64');
}

/** One POST the endpoint received. */
export interface Hit {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** When the request arrived (Date.now()). */
  readonly at: number;
  status?: number;
}

/** A loopback http endpoint recording POSTs; `status()` decides each answer. Closed by `cleanup`. */
export async function endpoint(
  cleanup: Cleanup,
  status: (hit: Hit, n: number) => number,
): Promise<{ url: string; hits: Hit[]; server: Server }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit: Hit = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      hits.push(hit);
      hit.status = status(hit, hits.length);
      res.writeHead(hit.status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanup.add(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits, server };
}
