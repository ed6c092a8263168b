/**
 * The gateway's metadata proxy → the controller's metadata service over HTTPS (issue 20): the
 * service serves the node certificate; a proxy holding the cluster root reaches an upstream written
 * as `http://` over verified HTTPS on the same port; a proxy trusting another root, and one
 * without a root (plain HTTP to the HTTPS port), get no answer (502, nothing falls back to plain);
 * a renewal is served to new connections. Instances' side of the proxy stays plain HTTP.
 */
import type { AddressInfo } from 'node:net';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsServerAvailable, sharedTrust, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { makeTestCa, writeNodeCert, type TestCa } from '../../scripts/lib/tls-test-pki.js';
import { eventually } from '../../scripts/lib/wait.js';
import { parseMetadataSettings } from '../../src/metadata/config.js';
import { buildMetadataProxy } from '../../src/metadata/proxy.js';
import { startMetadataService, type RunningMetadataService } from '../../src/metadata/service.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`metadata over HTTPS test skipped: ${skip}`);
const SECRET = 'ab'.repeat(32);

/** GET `url` over HTTPS trusting `ca`: the status and the serial of the certificate served. */
function httpsGet(url: string, ca: string): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false }, (res) => {
      const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('error', reject);
  });
}

describe.skipIf(Boolean(skip))('metadata proxy → metadata service over HTTPS', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mammatus-tls-md-'));
  let ca: TestCa;
  let other: TestCa;
  let nats: NatsServer;
  let svc: RunningMetadataService;
  const proxies: Server[] = [];

  /** A proxy in front of the service, trusting `root` (undefined: none), listening on loopback. */
  const proxy = async (rootPem: string | undefined): Promise<string> => {
    const port = new URL(svc.url).port;
    const server = buildMetadataProxy({
      // As the gateway role writes it: http://, the proxy moves to https:// when it holds a root.
      upstreams: [`http://127.0.0.1:${port}`],
      secret: Buffer.from(SECRET, 'hex'),
      macOf: async () => '',
      log: pino({ level: 'silent' }),
      ca: () => rootPem,
    });
    proxies.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  beforeAll(async () => {
    [ca, other] = await Promise.all([makeTestCa('mammatus root'), makeTestCa('another root')]);
    const files = await writeNodeCert(ca, 'ctl-1', path.join(root, 'tls'));
    nats = await startNatsServer({ name: 'ctl-1', dir: path.join(root, 'nats') });
    svc = await startMetadataService({
      settings: parseMetadataSettings({ nats: nats.url, proxy_secret: SECRET }),
      listen: '127.0.0.1:0',
      vendorData: async () => '',
      log: pino({ level: 'silent' }),
      credentials: sharedTrust().admin,
      tls: { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') },
    });
  }, 60_000);

  afterAll(async () => {
    for (const p of proxies) await new Promise((r) => p.close(r));
    await svc?.stop();
    await nats?.stop();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it('the service listens with HTTPS; plain HTTP to its port gets no answer', async () => {
    expect(svc.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await expect(fetch(svc.url.replace('https:', 'http:') + '/latest/meta-data/')).rejects.toThrow();
  });

  it('a proxy holding the root forwards over verified HTTPS: the service answers (an unknown caller: 404)', async () => {
    const url = await proxy(ca.root.certPem);
    // 503 until the service's registry view is up, then the service's own answer for a caller it does not know.
    await eventually(async () => expect((await fetch(`${url}/latest/meta-data/`)).status).toBe(404), 20_000);
  }, 30_000);

  it('a proxy trusting another root, or none, gets nothing from the service (502), never plain text', async () => {
    for (const rootPem of [other.root.certPem, undefined]) {
      const url = await proxy(rootPem);
      expect((await fetch(`${url}/latest/meta-data/`)).status).toBe(502);
    }
  });

  it('a renewal is served to new connections', async () => {
    const before = await httpsGet(`${svc.url}/latest/meta-data/`, ca.root.certPem);
    const renewed = await writeNodeCert(ca, 'ctl-1', path.join(root, 'tls'));
    svc.setTls({ cert: readFileSync(renewed.cert, 'utf8'), key: readFileSync(renewed.key, 'utf8') });
    const after = await httpsGet(`${svc.url}/latest/meta-data/`, ca.root.certPem);
    expect(after.serial).toBe(renewed.serial);
    expect(after.serial).not.toBe(before.serial);
  });
});
