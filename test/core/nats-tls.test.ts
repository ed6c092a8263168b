/**
 * The TLS decisions of core/nats.ts and core/node-tls.ts: which nats.js `tls` option a connection
 * gets, the name check (loopback spared, the chain never), and where the root and the node
 * certificate come from (a file read at each call, or PEMs handed to a child), with their change
 * notifications.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  forwardNatsRoot,
  natsCaField,
  natsRootChanged,
  natsRootPem,
  natsServerIdentity,
  natsTlsOption,
  useNatsRoot,
  useNatsRootFile,
} from '../../core/nats.js';
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
    expect(natsTlsOption(undefined)).toBeUndefined();
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
    expect(natsServerIdentity('127.0.0.1', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity('localhost', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity('[::1]', cert('DNS:other.mammatus'))).toBeUndefined();
    expect(natsServerIdentity('10.0.0.5', ip)).toBeUndefined();
    expect(natsServerIdentity('ctl-1.mammatus', ip)).toBeUndefined();
    expect(natsServerIdentity('10.0.0.6', ip)).toBeInstanceOf(Error);
    expect(natsServerIdentity('ctl-2.mammatus', ip)).toBeInstanceOf(Error);
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
