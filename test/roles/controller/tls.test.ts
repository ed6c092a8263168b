/**
 * TLS on the controller's NATS (roles/controller/tls.ts): the rendered config with the node
 * certificate against golden files, what turns it on, and how a renewal reaches the server (a
 * changed file with the same restart key: SIGHUP, not a restart).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { admittedNode, annotateTrust } from '../../../core/trust.js';
import { CONTROLLER_DEFAULTS, parseControllerConfig } from '../../../roles/controller/config.js';
import { parseNatsConf, renderController, restartKey } from '../../../roles/controller/render.js';
import { CONTROLLER_TLS_DEFAULTS, findNatsTls, shareKeyWithNats, withNatsTls, type NatsTlsFiles } from '../../../roles/controller/tls.js';
import type { DesiredState } from '../../../roles/types.js';
import { fixedCredentials } from '../../helpers/trust.js';

const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'controller-tls');

/** ctl-1 with `peers` more controllers (admitted), as the agent hands them: trust checked, sorted. */
function desired(peers: number, config: Record<string, unknown> = {}): DesiredState {
  const names = ['ctl-1', 'ctl-2', 'ctl-3'].slice(0, peers + 1);
  const creds = names.map((n, i) => fixedCredentials(n, ['controller'], i));
  const members: Member[] = names.map((name, i) => ({
    name,
    addr: `10.88.0.${10 + i}`,
    port: 7946,
    status: 'alive',
    tags: { role: 'controller', trust: creds[i].tag },
  }));
  return {
    node: 'ctl-1',
    config,
    members: annotateTrust(members, creds[0].authority),
    credentials: creds[0],
    admitted: creds.map(admittedNode),
  };
}

const FILES: NatsTlsFiles = { ...CONTROLLER_TLS_DEFAULTS, stamp: 'a'.repeat(64) };
const natsConf = (d: DesiredState, tls?: NatsTlsFiles) =>
  renderController(d, tls).find((f) => f.path === CONTROLLER_DEFAULTS.paths.nats_conf)!.content;

describe('controller nats-server config with TLS', () => {
  it.each([
    ['single', 0],
    ['three', 2],
  ])('%s renders the golden nats-server.conf', async (name, peers) => {
    await expect(natsConf(desired(peers), FILES)).toMatchFileSnapshot(join(goldenRoot, name, 'nats-server.conf'));
  });

  it('serves the client port with TLS, clients not asked for certificates (nkeys authenticate)', () => {
    const conf = parseNatsConf(natsConf(desired(2), FILES))!;
    expect(conf.tls).toEqual({
      cert_file: '/var/lib/mammatus/tls/node.crt',
      key_file: '/var/lib/mammatus/tls/node.key',
      ca_file: '/var/lib/mammatus/tls/ca.crt',
      verify: false,
      timeout: 2,
    });
    // Routes: the peer's certificate is required and checked against the root.
    expect(conf.cluster?.tls).toMatchObject({ verify: true, ca_file: '/var/lib/mammatus/tls/ca.crt' });
  });

  it('a standalone controller has no cluster block to secure', () => {
    const conf = parseNatsConf(natsConf(desired(0), FILES))!;
    expect(conf.tls?.verify).toBe(false);
    expect(conf.cluster).toBeUndefined();
  });

  it('renders plain NATS without the files (no CA yet): the header comes first either way', () => {
    const plain = natsConf(desired(2));
    expect(plain).not.toMatch(/tls/);
    expect(natsConf(desired(2), FILES).startsWith('# managed by mammatus role=controller\n# tls: node certificate sha256 aaaa')).toBe(true);
  });

  it('a renewal changes the file, not the restart key (SIGHUP); turning TLS on restarts', () => {
    const d = desired(2);
    const before = natsConf(d, FILES);
    const after = natsConf(d, { ...FILES, stamp: 'b'.repeat(64) });
    expect(after).not.toBe(before);
    expect(restartKey(parseNatsConf(after)!)).toBe(restartKey(parseNatsConf(before)!));
    expect(restartKey(parseNatsConf(natsConf(d))!)).not.toBe(restartKey(parseNatsConf(before)!));
    // The routes' TLS alone (a first peer appears later with the same files) is in the key too.
    const conf = parseNatsConf(before)!;
    const { tls: _routeTls, ...cluster } = conf.cluster!;
    expect(restartKey({ ...conf, cluster })).not.toBe(restartKey(conf));
  });

  it('takes its paths from roles.controller.tls', () => {
    const cfg = parseControllerConfig({ tls: { cert: '/etc/x/c.pem', key: '/etc/x/k.pem', ca: '/etc/x/ca.pem' } });
    expect(cfg.tls).toEqual({ cert: '/etc/x/c.pem', key: '/etc/x/k.pem', ca: '/etc/x/ca.pem', allow_plain: false });
    expect(parseControllerConfig({}).tls).toEqual(CONTROLLER_TLS_DEFAULTS);
    expect(() => parseControllerConfig({ tls: { cert: 'relative.pem' } })).toThrow(/roles\.controller\.tls\.cert/);
  });

  it('allow_plain (migration aid) lets plain clients in beside TLS; off by default', () => {
    expect(parseNatsConf(natsConf(desired(2), FILES))!.allow_non_tls).toBeUndefined();
    const conf = parseNatsConf(natsConf(desired(2, { tls: { allow_plain: true } }), { ...FILES, allow_plain: true }))!;
    expect(conf.allow_non_tls).toBe(true);
    expect(conf.cluster?.tls?.verify).toBe(true);
  });

  it('withNatsTls leaves a config alone without files', () => {
    const conf: { listen: string; cluster?: object } = { listen: '0.0.0.0:4222' };
    expect(withNatsTls(conf, undefined)).toBe(conf);
  });
});

describe('findNatsTls: TLS is on once the three files are there', () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'mammatus-ctl-tls-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = { cert: join(dir, 'node.crt'), key: join(dir, 'node.key'), ca: join(dir, 'ca.crt') };
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

  it('is off while any file is missing or not a certificate, on with all three; the stamp follows the certificate', () => {
    expect(findNatsTls(cfg)).toBeUndefined();
    writeFileSync(cfg.cert, PEM);
    writeFileSync(cfg.ca, PEM);
    expect(findNatsTls(cfg)).toBeUndefined();
    writeFileSync(cfg.key, 'key', { mode: 0o600 });
    const first = findNatsTls(cfg);
    expect(first).toMatchObject(cfg);
    expect(first?.stamp).toMatch(/^[0-9a-f]{64}$/);
    writeFileSync(cfg.cert, PEM.replace('MIIB', 'MIIC'));
    expect(findNatsTls(cfg)?.stamp).not.toBe(first?.stamp);
    writeFileSync(cfg.ca, 'garbage');
    expect(findNatsTls(cfg)).toBeUndefined();
  });

  it('hands the key to the nats user, and only when there is one', async () => {
    const calls: string[][] = [];
    const run = (file: string, args: readonly string[]) => {
      calls.push([file, ...args]);
      return Promise.resolve({ stdout: '', stderr: '', exitCode: 0 });
    };
    await shareKeyWithNats(run, undefined, cfg);
    await shareKeyWithNats(run, 'nats', undefined);
    await shareKeyWithNats(run, 'nats', cfg);
    expect(calls).toEqual([['chown', 'nats:', cfg.key]]);
  });
});
