/**
 * The TLS decisions of core/nats.ts and core/node-tls.ts: which nats.js `tls` option a connection
 * gets, the name check (loopback spared, the chain never), and where the root and the node
 * certificate come from (a file read at each call, or PEMs handed to a child), with their change
 * notifications.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  forwardNatsRoot,
  natsCaField,
  natsRootChanged,
  natsRootPem,
  natsServerIdentity,
  natsTlsOption,
  takeNatsRootMessage,
  useNatsRoot,
  useNatsRootFile,
} from '../../core/nats.js';
import { makeTestCa, writeNodeCert } from '../../scripts/lib/tls-test-pki.js';
import { forwardNodeTls, isNodeTlsPem, nodeTls, nodeTlsChanged, nodeTlsField, useNodeTls, useNodeTlsFiles } from '../../core/node-tls.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';
const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-nats-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  useNatsRoot(undefined);
  useNodeTls(undefined);
});

/** A certificate as node:tls hands it to checkServerIdentity. */
const cert = (names: string): PeerCertificate =>
  ({ subject: { CN: 'ctl-1.mammatus' }, subjectaltname: names }) as unknown as PeerCertificate;

describe('natsTlsOption', () => {
  it('plain without a root, verified with one, never unverified', () => {
    expect(natsTlsOption(undefined)).toBeNull();
    expect(natsTlsOption('plain')).toBeNull();
    const opt = natsTlsOption({ ca: PEM })!;
    expect(opt.ca).toBe(PEM);
    expect(opt.rejectUnauthorized).toBeUndefined();
    useNatsRoot(PEM);
    expect(natsTlsOption(undefined)?.ca).toBe(PEM);
    expect(natsTlsOption('plain')).toBeNull();
  });

  it('reads the root file at each call: it may appear after the start (ca init)', () => {
    const file = path.join(dir, 'ca.crt');
    useNatsRootFile(file);
    expect(natsRootPem()).toBeUndefined();
    writeFileSync(file, 'not a certificate');
    expect(natsRootPem()).toBeUndefined();
    writeFileSync(file, PEM);
    expect(natsRootPem()).toBe(PEM);
    expect(natsCaField()).toEqual({ nats_ca: PEM });
  });

  it('checks the server name except on loopback', () => {
    const ip = cert('DNS:ctl-1.mammatus, DNS:ctl-1, IP Address:10.0.0.5');
    // As node:tls calls it: on its connect options, with the socket underneath.
    const on = (peer: string, servername = '') => ({ servername, socket: { remoteAddress: peer } });
    expect(natsServerIdentity.call(on('127.0.0.1'), 'localhost', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity.call(on('127.3.4.5'), 'localhost', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity.call(on('::1'), 'localhost', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity.call(on('::ffff:127.0.0.1'), 'localhost', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity.call(on('10.0.0.5'), 'localhost', ip)).toBeUndefined();
    expect(natsServerIdentity.call(on('10.0.0.9', 'ctl-1.mammatus'), 'ctl-1.mammatus', ip)).toBeUndefined();
    expect(natsServerIdentity.call(on('10.0.0.9', 'ctl-2.mammatus'), 'ctl-2.mammatus', ip)).toBeInstanceOf(Error);
  });

  it('never spares a remote server because node:tls named it localhost (a server dialled by IP)', () => {
    const other = cert('DNS:worker-7.mammatus, IP Address:10.0.0.7');
    // nats.js upgrades nats://10.0.0.6:4222 with servername '': node:tls then passes 'localhost'.
    expect(natsServerIdentity.call({ servername: '', socket: { remoteAddress: '10.0.0.6' } }, 'localhost', other)).toBeInstanceOf(Error);
    // A gossiped server inherits the servername 'localhost' of a first URL nats://localhost:4222.
    expect(natsServerIdentity.call({ servername: 'localhost', socket: { remoteAddress: '10.0.0.6' } }, 'localhost', other)).toBeInstanceOf(
      Error,
    );
    // Not a loopback address, whatever it starts with.
    expect(natsServerIdentity.call({ socket: { remoteAddress: '::ffff:10.0.0.6' } }, 'localhost', other)).toBeInstanceOf(Error);
    // Without node:tls's context nothing is spared, not even a loopback name.
    expect(natsServerIdentity('localhost', other)).toBeInstanceOf(Error);
    expect(natsServerIdentity('127.0.0.1', other)).toBeInstanceOf(Error);
  });

  it('is called by node:tls with the peer: a server dialled by IP on loopback passes, with host "localhost"', async () => {
    const pki = await makeTestCa();
    const files = await writeNodeCert(pki, 'ctl-1', path.join(dir, 'real'), { ips: ['10.0.0.5'] });
    const server = createTlsServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, (s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const hosts: string[] = [];
      const opt = natsTlsOption({ ca: pki.root.certPem })!;
      const check = opt.checkServerIdentity as typeof natsServerIdentity;
      const socket = netConnect((server.address() as AddressInfo).port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => {
        // The way nats.js upgrades a plain socket (transport-node startTLS).
        const t = tlsConnect({
          socket,
          servername: '',
          rejectUnauthorized: true,
          ...opt,
          checkServerIdentity(this: unknown, host: string, c: PeerCertificate) {
            hosts.push(host);
            return check.call(this as never, host, c);
          },
        } as ConnectionOptions);
        t.once('secureConnect', () => (t.destroy(), resolve()));
        t.once('error', reject);
      });
      expect(hosts).toEqual(['localhost']);
    } finally {
      server.close();
    }
  });

  it('never drops a root once read: an unreadable or broken file later keeps the last good one', () => {
    const file = path.join(dir, 'kept.crt');
    writeFileSync(file, PEM);
    useNatsRootFile(file);
    expect(natsRootPem()).toBe(PEM);
    rmSync(file);
    expect(natsRootPem()).toBe(PEM);
    writeFileSync(file, '');
    expect(natsTlsOption(undefined)?.ca).toBe(PEM);
    const next = PEM.replace('MIIB', 'MIIC');
    writeFileSync(file, next);
    expect(natsRootPem()).toBe(next);
    useNatsRootFile(path.join(dir, 'absent.crt'));
    expect(natsRootPem()).toBeUndefined();
  });

  it("a child's nats_ca message without a root keeps the one it holds", () => {
    takeNatsRootMessage(PEM);
    expect(natsRootPem()).toBe(PEM);
    takeNatsRootMessage(undefined);
    takeNatsRootMessage('garbage');
    expect(natsRootPem()).toBe(PEM);
  });

  it('forwards the root to a child each time it may have changed, until stopped', () => {
    const sent: unknown[] = [];
    const stop = forwardNatsRoot((m) => sent.push(m));
    useNatsRoot(PEM);
    natsRootChanged();
    stop();
    natsRootChanged();
    expect(sent).toEqual([{ type: 'nats_ca', nats_ca: PEM }]);
  });
});

describe('node-tls', () => {
  it('has a certificate only when chain, key and root are all there', () => {
    const files = { cert: path.join(dir, 'node.crt'), key: path.join(dir, 'node.key'), ca: path.join(dir, 'root.crt') };
    useNodeTlsFiles(files);
    expect(nodeTls()).toBeUndefined();
    writeFileSync(files.cert, PEM);
    writeFileSync(files.ca, PEM);
    expect(nodeTls()).toBeUndefined();
    writeFileSync(files.key, KEY);
    expect(nodeTls()).toEqual({ cert: PEM, key: KEY, ca: PEM });
    expect(nodeTlsField()).toEqual({ node_tls: { cert: PEM, key: KEY, ca: PEM } });
  });

  it('forwards renewals (only when there is a certificate) and checks messages', () => {
    const sent: unknown[] = [];
    const stop = forwardNodeTls((m) => sent.push(m));
    nodeTlsChanged();
    useNodeTls({ cert: PEM, key: KEY, ca: PEM });
    nodeTlsChanged();
    stop();
    expect(sent).toEqual([{ type: 'node_tls', node_tls: { cert: PEM, key: KEY, ca: PEM } }]);
    expect(isNodeTlsPem({ cert: PEM, key: KEY, ca: PEM })).toBe(true);
    expect(isNodeTlsPem({ cert: PEM, key: KEY })).toBe(false);
    expect(isNodeTlsPem(null)).toBe(false);
  });
});
