/**
 * The SQS/SNS API over HTTPS (issue 20): the node certificate on its port, the AWS CLI (a client we
 * did not write) trusting the cluster root with `--ca-bundle`; plain HTTP only on the separately
 * configured `http_listen`; a plain request to the HTTPS port, a client without the root and one
 * trusting another root refused; a renewal served to new connections; an API started before the
 * node's first certificate moves to HTTPS when it arrives. NATS itself is TLS here too.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useNatsRoot } from '../../core/nats.js';
import { nodeTlsChanged, useNodeTls } from '../../core/node-tls.js';
import { natsServerAvailable, sharedTrust, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { makeTestCa, writeNodeCert, type TestCa } from '../../scripts/lib/tls-test-pki.js';
import { eventually } from '../../scripts/lib/wait.js';
import { startMessagingService, type RunningMessagingService } from '../../src/messaging/service.js';
import { parseMessagingSettings } from '../../src/messaging/settings.js';
import { testSection } from '../src/messaging/js-harness.js';
import { CREDENTIALS } from '../src/messaging/helpers.js';
import { readFileSync } from 'node:fs';

const exec = promisify(execFile);
const AWS = '/usr/bin/aws';
const skip = !natsServerAvailable() ? 'nats-server is missing' : !existsSync(AWS) ? 'the AWS CLI (/usr/bin/aws) is missing' : undefined;
if (skip) console.warn(`SQS over HTTPS test skipped: ${skip}`);

/** The serial of the certificate served at `port` (a new TLS connection). */
async function serialAt(port: number, ca: string): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'ctl-1.mammatus' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return socket.getPeerCertificate().serialNumber;
  } finally {
    socket.destroy();
  }
}

describe.skipIf(Boolean(skip))('SQS over HTTPS with the node certificate', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-tls-sqs-'));
  const home = path.join(root, 'home');
  let ca: TestCa;
  let other: TestCa;
  let nats: NatsServer;
  const services: RunningMessagingService[] = [];
  let svc: RunningMessagingService;
  const bundle = path.join(root, 'root.pem');
  const otherBundle = path.join(root, 'other-root.pem');

  /** The AWS CLI against `endpoint`, `caBundle` its trust (undefined: the system's). */
  const aws = async (endpoint: string, caBundle: string | undefined, ...args: string[]) => {
    const { stdout } = await exec(
      AWS,
      ['--no-cli-pager', '--output', 'json', '--endpoint-url', endpoint, ...(caBundle ? ['--ca-bundle', caBundle] : []), 'sqs', ...args],
      {
        env: {
          PATH: '/usr/bin:/bin',
          HOME: home,
          AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_MAX_ATTEMPTS: '1',
        },
        timeout: 60_000,
      },
    );
    return stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : {};
  };
  const start = async (over: Record<string, unknown>, tls?: { cert: string; key: string }) => {
    const s = await startMessagingService({
      settings: parseMessagingSettings(testSection(nats.url, over)),
      log: pino({ level: 'silent' }),
      credentials: sharedTrust().admin,
      ...(tls ? { tls } : {}),
    });
    services.push(s);
    return s;
  };

  beforeAll(async () => {
    [ca, other] = await Promise.all([makeTestCa('mammatus root'), makeTestCa('another root')]);
    writeFileSync(bundle, ca.root.certPem);
    writeFileSync(otherBundle, other.root.certPem);
    const files = await writeNodeCert(ca, 'ctl-1', path.join(root, 'tls'));
    // NATS over TLS as well: the service's client verifies it with the root (core/nats.ts).
    nats = await startNatsServer({ name: 'ctl-1', dir: path.join(root, 'nats'), tls: files });
    useNatsRoot(ca.root.certPem);
    svc = await start({ http_listen: '127.0.0.1:0' }, { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') });
  }, 60_000);

  afterAll(async () => {
    useNodeTls(undefined);
    await Promise.allSettled(services.map((s) => s.stop()));
    await nats?.stop();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('the AWS CLI with --ca-bundle the root: create, send, receive over HTTPS; queue URLs are https', async () => {
    expect(svc.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const created = await aws(svc.url, bundle, 'create-queue', '--queue-name', 'tls-q');
    const url = created.QueueUrl as string;
    expect(url).toMatch(/^https:\/\//);
    await aws(svc.url, bundle, 'send-message', '--queue-url', url, '--message-body', 'over tls');
    const got = await aws(svc.url, bundle, 'receive-message', '--queue-url', url, '--wait-time-seconds', '1');
    expect((got.Messages as { Body: string }[]).map((m) => m.Body)).toEqual(['over tls']);
  }, 90_000);

  it('refuses a client without the root, one trusting another root, and plain HTTP on the HTTPS port', async () => {
    await expect(aws(svc.url, undefined, 'list-queues')).rejects.toThrow(/SSL|certificate/i);
    await expect(aws(svc.url, otherBundle, 'list-queues')).rejects.toThrow(/SSL|certificate/i);
    await expect(aws(svc.url.replace('https:', 'http:'), undefined, 'list-queues')).rejects.toThrow();
  }, 90_000);

  it('serves plain HTTP only on http_listen', async () => {
    expect(svc.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const listed = await aws(svc.httpUrl!, undefined, 'list-queues');
    expect(JSON.stringify(listed)).toMatch(/tls-q/);
  }, 60_000);

  it('a renewal (setTls) is served to new connections', async () => {
    const port = Number(new URL(svc.url).port);
    const before = await serialAt(port, ca.root.certPem);
    const renewed = await writeNodeCert(ca, 'ctl-1', path.join(root, 'tls'));
    svc.setTls({ cert: readFileSync(renewed.cert, 'utf8'), key: readFileSync(renewed.key, 'utf8') });
    expect(await serialAt(port, ca.root.certPem)).toBe(renewed.serial);
    expect(renewed.serial).not.toBe(before);
    await aws(svc.url, bundle, 'list-queues');
  }, 60_000);

  it('an API started before the node certificate moves to HTTPS on its port when it arrives', async () => {
    const early = await start({});
    expect(early.url).toMatch(/^http:/);
    const port = new URL(early.url).port;
    const files = await writeNodeCert(ca, 'ctl-1', path.join(root, 'tls-2'));
    useNodeTls({ cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8'), ca: ca.root.certPem });
    nodeTlsChanged();
    await eventually(() => expect(early.url).toBe(`https://127.0.0.1:${port}`), 10_000);
    expect(await serialAt(Number(port), ca.root.certPem)).toBe(files.serial);
    await aws(early.url, bundle, 'list-queues');
  }, 60_000);
});
