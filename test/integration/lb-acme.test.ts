/**
 * `tls acme` balancers end to end, in network namespaces (scripts/lib/netns-bed.ts): the cluster CA
 * (Debian's caddy with `ca init`'s PKI, run by our backend supervisor in `ctl`, 10.88.0.10), the
 * gateway (`gw`, 10.88.0.1) with the files the gateway role renders (dnsmasq answering
 * `shop.mammatus` with the gateway's LAN address, HAProxy's config with the challenge route),
 * HAProxy run by our supervisor, and the certificate owner (roles/gateway/lb/acme.ts) running
 * Debian's lego in `gw`. The CA checks http-01 at shop.mammatus:80 → HAProxy → lego's loopback port.
 *
 * Shown: the balancer first serves the placeholder, then a certificate for its host chained to the
 * cluster root, with no request failing while HAProxy reloads for it; a directory that fails leaves
 * the placeholder served for its host and logs the host and why.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run, Spawn } from '../../core/contracts.js';
import type { ResolvedBalancer } from '../../core/lb-record.js';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { CaBackend } from '../../roles/controller/ca-backend.js';
import { parseGatewayConfig, type GatewayConfig } from '../../roles/gateway/config.js';
import { renderGateway } from '../../roles/gateway/render.js';
import { AcmeCertificates } from '../../roles/gateway/lb/acme.js';
import { haproxySettings, masterSocket } from '../../roles/gateway/lb/config.js';
import { HaproxySupervisor } from '../../roles/gateway/lb/haproxy-supervisor.js';
import { canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { describeCert, verifyChain, type TestPki } from '../../scripts/lib/test-pki.js';
import { caBed, gatewayBedConfig, member, resolveThroughGateway, startClusterCa, startGatewayDns } from '../helpers/ca-bed.js';
import { record } from '../roles/gateway-lb/fixtures.js';

const skip = canUseNetns() ?? missingTools(['busybox', 'curl', 'dnsmasq', 'caddy', 'lego', 'haproxy', 'openssl', 'setpriv']);
if (skip) console.warn(`lb ACME end-to-end tests skipped: ${skip}`);

const DIRECTORY = 'https://ca.mammatus:9000/acme/acme/directory';
const GW = '10.88.0.1';
const APP_PORT = 18080;

function acmeBalancer(name: string, host: string): ResolvedBalancer {
  const r = record({
    name,
    listen: { port: 443 },
    mode: 'http',
    hosts: [host],
    targets: [],
    health: { kind: 'tcp' },
    tls: 'acme',
    balance: 'roundrobin',
  });
  return { record: r, servers: [{ name: `m-app-${APP_PORT}`, addr: '127.0.0.1', port: APP_PORT }] };
}

describe.skipIf(skip)('tls acme balancers get certificates from the cluster CA', () => {
  let bed: GatewayBed;
  let tmp: string;
  let pki: TestPki;
  let cfg: GatewayConfig;
  let backend: CaBackend | undefined;
  let haproxy: HaproxySupervisor | undefined;
  let runGw: Run;
  const owners: AcmeCertificates[] = [];
  const netnsEtc: string[] = [];
  const files = buildFileOps();
  const logLines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void logLines.push(JSON.parse(l) as Record<string, unknown>) });

  /** The certificate's subject and the HTTP answer for `host`, asked from the controller's namespace. */
  async function ask(host: string, trust: 'root' | 'any') {
    const tls = trust === 'root' ? ['--cacert', pki.rootCert] : ['-k'];
    const r = await bed.exec('ctl', [
      'curl',
      '-sS',
      '-m',
      '5',
      ...tls,
      '--resolve',
      `${host}:443:${GW}`,
      '-w',
      '\n%{http_code}',
      `https://${host}/`,
    ]);
    const nl = r.stdout.lastIndexOf('\n');
    return { code: r.code, status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl), err: r.stderr };
  }
  async function subject(host: string): Promise<string> {
    const r = await bed.exec('ctl', ['openssl', 's_client', '-connect', `${GW}:443`, '-servername', host], { timeoutMs: 5000 });
    return /subject=(.*)/.exec(r.stdout)?.[1] ?? r.stderr;
  }

  beforeAll(async () => {
    ({ tmp, bed, pki } = await caBed('lb-acme'));
    const gwDir = path.join(tmp, 'gw');
    const p = (f: string) => path.join(gwDir, f);
    const config = gatewayBedConfig(bed, gwDir, {
      lb: { dir: p('haproxy'), run_dir: p('run'), acme: { ca_file: pki.rootCert, state_dir: p('lego') } },
    });
    cfg = parseGatewayConfig(config);
    const balancers = [acmeBalancer('shop', 'shop.mammatus'), acmeBalancer('other', 'other.mammatus')];
    const members = [member('ctl-1', '10.88.0.10', 'controller'), member('gw-1', GW, 'gateway')];
    // Everything the role renders but the firewall (the bed leaves iptables open) goes live.
    await startGatewayDns(bed, files, renderGateway({ node: 'gw-1', config, members, balancers }), gwDir);
    // The controller (the CA, and our client) and the gateway (lego) resolve through the gateway.
    netnsEtc.push(...resolveThroughGateway(bed, ['ctl', 'gw']));
    ({ backend } = await startClusterCa(bed, tmp, pki, files, log));

    // The application, and HAProxy in the gateway's namespace.
    writeFileSync(path.join(tmp, 'index.html'), 'shop\n');
    bed.spawn('gw', ['busybox', 'httpd', '-f', '-p', `127.0.0.1:${APP_PORT}`, '-h', tmp]);
    const [spawn, run] = [await buildSpawn(), buildRun()];
    const inGw = (file: string, args: readonly string[]) => ['netns', 'exec', bed.ns.gw, file, ...args];
    const spawnGw: Spawn = (file, args, o) => spawn('ip', inGw(file, args), o);
    runGw = (file, args, o) => run('ip', inGw(file, args), o);
    const settings = haproxySettings(cfg.lb);
    haproxy = new HaproxySupervisor({ spawn: spawnGw, run: runGw, files, log, settings, masterSocket: masterSocket(cfg.lb) });
    await haproxy.validate();
    await haproxy.reload();
  }, 120_000);

  afterAll(async () => {
    for (const o of owners) o.stop();
    await haproxy?.stop();
    await backend?.stop();
    await bed?.destroy();
    for (const etc of netnsEtc) rmSync(etc, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves the placeholder, then a certificate for its host from the cluster CA, reloading without a failed request', async () => {
    expect(await subject('shop.mammatus')).toContain('placeholder.invalid');
    // The default directory: the cluster CA's.
    expect(cfg.lb.acme.directory).toBe(DIRECTORY);
    const owner = new AcmeCertificates({ run: runGw, files, log, reload: () => haproxy!.reload(), legoTimeoutMs: 60_000 });
    owners.push(owner);
    const certDir = haproxySettings(cfg.lb).certDir;
    // Requests (each its own connection) from the controller's side while lego runs and HAProxy reloads.
    let done = false;
    const results: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 2000 && (!done || i < 5); i++) results.push((await ask('shop.mammatus', 'any')).status);
    };
    const loops = Promise.all([loop(), loop(), loop()]);
    owner.update(cfg.lb.acme, certDir, ['shop.mammatus']);
    await owner.check();
    done = true;
    await loops;
    const issued = logLines.find((l) => l.msg === 'acme: certificate issued');
    expect(issued, JSON.stringify(logLines.filter((l) => String(l.msg).startsWith('acme')))).toMatchObject({
      host: 'shop.mammatus',
      op: 'run',
    });
    expect(logLines.some((l) => l.msg === 'acme: certificates changed; haproxy reloaded')).toBe(true);
    expect(results.length).toBeGreaterThan(15);
    expect(results.filter((s) => s !== 200)).toEqual([]);

    // The file HAProxy reads: chain + key, 0600, for the host, chained to the cluster root.
    const pemFile = path.join(certDir, 'shop.mammatus.pem');
    expect(statSync(pemFile).mode & 0o777).toBe(0o600);
    const pem = readFileSync(pemFile, 'utf8');
    expect(pem).toMatch(/-----BEGIN EC PRIVATE KEY-----|-----BEGIN PRIVATE KEY-----/);
    expect(verifyChain(pki.rootCert, pem, tmp)).toMatch(/OK/);
    expect(describeCert(pem, tmp).sans).toEqual(['shop.mammatus']);
    // What a client trusting only the root sees: the new certificate, the application's answer.
    const r = await ask('shop.mammatus', 'root');
    expect(r, r.err).toMatchObject({ code: 0, status: 200, body: 'shop\n' });
    expect(await subject('shop.mammatus')).toContain('shop.mammatus');
    // lego's state is root's alone.
    expect(statSync(cfg.lb.acme.state_dir).mode & 0o777).toBe(0o700);
  }, 120_000);

  it('a directory that fails leaves the placeholder served and logs the host and why', async () => {
    const before = logLines.length;
    const acme = { ...cfg.lb.acme, directory: 'https://ca.mammatus:9000/acme/nope/directory', state_dir: path.join(tmp, 'lego-bad') };
    const owner = new AcmeCertificates({ run: runGw, files, log, reload: () => haproxy!.reload(), legoTimeoutMs: 30_000 });
    owners.push(owner);
    owner.update(acme, haproxySettings(cfg.lb).certDir, ['other.mammatus', 'shop.mammatus']);
    await owner.check();
    owner.stop();
    const warns = logLines.slice(before).filter((l) => l.msg === 'acme: no certificate; retrying');
    expect(warns.map((w) => w.host)).toEqual(['other.mammatus', 'shop.mammatus']);
    expect(String(warns[0].reason)).toMatch(/nope|404|directory/i);
    expect(warns[0].retry_in_s).toBe(30);
    expect(await subject('other.mammatus')).toContain('placeholder.invalid');
    // The certificate already served stays.
    expect(await subject('shop.mammatus')).toContain('shop.mammatus');
    expect((await ask('other.mammatus', 'root')).code).not.toBe(0);
  }, 90_000);
});
