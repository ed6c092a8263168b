/**
 * The `tls acme` parts of the gateway's render (roles/gateway/lb/render-acme.ts: DNS names, the
 * firewall's port 80) and the certificate owner (acme.ts) with a scripted lego: what it runs, what
 * it writes, when HAProxy reloads, and that a failure is logged with the host and lego's reason.
 * The real lego, caddy and HAProxy run in test/integration/lb-acme.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { renderGateway } from '../../../roles/gateway/render.js';
import { AcmeCertificates, GatewayAcme, legoArgs } from '../../../roles/gateway/lb/acme.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { selfSignedCert } from '../../helpers/self-signed.js';
import { record } from './fixtures.js';

const self: Member = { name: 'gw', addr: '10.88.0.1', port: 7946, tags: { role: 'gateway' }, status: 'alive' };
const web1: Member = { name: 'web-1', addr: '10.88.0.51', port: 7946, tags: { role: 'compute' }, status: 'alive' };

function lb(name: string, port: number, hosts: string[], tls: 'acme' | 'none' = 'acme'): ResolvedBalancer {
  const r = record({
    name,
    listen: { port },
    mode: 'http',
    hosts,
    targets: [{ selector: { kind: 'instance', name }, port: 80 }],
    health: { kind: 'tcp' },
    tls,
    balance: 'roundrobin',
  });
  return { record: r, servers: [] };
}
const render = (balancers: ResolvedBalancer[]) =>
  renderGateway({ node: 'gw', config: { lan: { address: '10.88.0.1/24' } }, members: [self, web1], balancers });
const rules = (files: ReturnType<typeof render>) => files.find((f) => f.path.endsWith('iptables.rules'))!.content;

describe('gateway render with tls acme balancers', () => {
  const cfg = parseGatewayConfig({});

  it('answers the acme hosts under the cluster domain with the LAN address, except machines’ own names', () => {
    const files = render([lb('shop', 443, ['shop.mammatus', 'www.shop.mammatus', 'web-1.mammatus', 'shop.example.org'])]);
    const hosts = files.find((f) => f.path === `${cfg.paths.hosts_dir}/balancers.hosts`);
    expect(hosts?.content.split('\n').slice(1)).toEqual(['10.88.0.1 shop.mammatus', '10.88.0.1 www.shop.mammatus', '']);
    expect(hosts?.mode).toBe(0o644);
    // Plain balancers add no name.
    expect(render([lb('web', 80, ['web.mammatus'], 'none')]).some((f) => f.path.endsWith('balancers.hosts'))).toBe(false);
  });

  it('opens port 80 on both sides while a tls acme balancer exists, and routes the challenges to lego', () => {
    const files = render([lb('shop', 443, ['shop.mammatus'])]);
    expect(rules(files).match(/^-A INPUT .*--dport (80|443) .*$/gm)).toEqual([
      `-A INPUT -i ${cfg.wan.interface} -p tcp --dport 80 -j ACCEPT`,
      `-A INPUT -i ${cfg.wan.interface} -p tcp --dport 443 -j ACCEPT`,
      `-A INPUT -i ${cfg.lan.interface} -p tcp --dport 80 -j ACCEPT`,
    ]);
    const haproxy = files.find((f) => f.path === '/etc/mammatus/haproxy/haproxy.cfg')!.content;
    expect(haproxy).toContain('frontend ft_acme_80');
    expect(haproxy).toContain('server lego 127.0.0.1:402');
    const plain = render([lb('web', 80, ['web.mammatus'], 'none')]);
    expect(rules(plain)).not.toMatch(new RegExp(`-i ${cfg.lan.interface} -p tcp --dport 80 `));
  });

  it('routes only the acme hosts’ challenges to lego, and only on port 80: other hosts’ reach their servers', () => {
    const files = render([
      lb('shop', 443, ['shop.mammatus']),
      lb('blog', 80, ['blog.example.org'], 'none'),
      lb('api', 8080, ['api.example.org'], 'none'),
    ]);
    const haproxy = files.find((f) => f.path === '/etc/mammatus/haproxy/haproxy.cfg')!.content;
    expect(haproxy.match(/^ {2}use_backend mammatus_acme .*$/gm)).toEqual([
      '  use_backend mammatus_acme if { path_beg /.well-known/acme-challenge/ } { var(txn.lb_host) -m str shop.mammatus }',
    ]);
    expect(haproxy.indexOf('use_backend mammatus_acme')).toBeGreaterThan(haproxy.indexOf('frontend ft_80'));
    expect(haproxy.indexOf('use_backend mammatus_acme')).toBeLessThan(haproxy.indexOf('frontend ft_8080'));
  });

  it('leaves tls acme out while port 80 is not plain HTTP (a TCP backend there would answer the CA)', () => {
    const tcp80: ResolvedBalancer = {
      record: { ...lb('raw', 80, []).record, mode: 'tcp', tls: 'none' },
      servers: [],
    };
    const files = render([lb('shop', 443, ['shop.mammatus']), tcp80]);
    const leftOut = files.find((f) => f.path.endsWith('/lb-left-out'))!.content;
    expect(leftOut).toContain(
      "shop: left out: tls acme needs plain HTTP on port 80 for the CA's http-01 challenges; port 80 is tcp/none (balancer raw)",
    );
    expect(files.find((f) => f.path === '/etc/mammatus/haproxy/haproxy.cfg')!.content).not.toContain('mammatus_acme');
  });

  it('never answers a name the cluster gives out itself (ca, a member down, an instance) with the gateway', () => {
    const files = render([lb('shop', 443, ['shop.mammatus', 'ca.mammatus', 'gateway.mammatus', 'gw.mammatus'])]);
    const hosts = files.find((f) => f.path === `${cfg.paths.hosts_dir}/balancers.hosts`)!;
    expect(hosts.content.split('\n').slice(1)).toEqual(['10.88.0.1 shop.mammatus', '']);
  });
});

describe('AcmeCertificates', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'acme-unit-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const acme = { ...parseGatewayConfig({}).lb.acme, state_dir: '/lego', email: 'ops@example.org' };
  const certDir = '/haproxy/certs';
  /** A self-signed certificate for `host`, as lego would leave it. */
  const legoCert = (host: string) => selfSignedCert(tmp, host);

  function owner(script: Parameters<typeof recordingRun>[0], failReloads = 0) {
    const files = memoryFiles();
    const run = recordingRun(script);
    const lines: { host?: string; reason?: string; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
    let reloads = 0;
    const reload = async () => {
      if (reloads++ < failReloads) throw new Error('haproxy did not come up');
    };
    const o = new AcmeCertificates({ run, files, log, reload });
    return { o, files, run, lines, reloads: () => reloads };
  }

  it('runs lego for a new host, installs chain + key 0600, reloads; removes a host no balancer names', async () => {
    const cert = legoCert('shop.mammatus');
    const t = owner((argv) => {
      if (argv[0] === 'find') return { stdout: 'old.mammatus.pem\n.tmp-x.pem\nplaceholder\n', stderr: '', exitCode: 0 };
      if (argv[0] === 'lego') {
        t.files.entries.set('/lego/certificates/shop.mammatus.crt', { content: cert.crt, mode: 0o644 });
        t.files.entries.set('/lego/certificates/shop.mammatus.key', { content: cert.key, mode: 0o600 });
      }
      return undefined;
    });
    t.o.update(acme, certDir, ['shop.mammatus']);
    await t.o.check();
    t.o.stop();
    expect(t.run.calls.find((c) => c[0] === 'lego')).toEqual(['lego', ...legoArgs(acme, 'shop.mammatus', 'run')]);
    expect(legoArgs(acme, 'shop.mammatus', 'run')).toEqual([
      '--server',
      acme.directory,
      '--accept-tos',
      '--email',
      'ops@example.org',
      '--path',
      '/lego',
      '--http',
      '--http.port',
      '127.0.0.1:402',
      '-d',
      'shop.mammatus',
      'run',
    ]);
    expect(t.run.calls[0]).toEqual(['install', '-d', '-m', '0700', '/lego']);
    const pem = t.files.entries.get(`${certDir}/shop.mammatus.pem`);
    expect(pem).toEqual({ content: `${cert.crt.trimEnd()}\n${cert.key.trimEnd()}\n`, mode: 0o600 });
    expect(t.files.ops).toContain(`remove ${certDir}/old.mammatus.pem`);
    expect(t.files.ops).not.toContain(`remove ${certDir}/.tmp-x.pem`);
    expect(t.reloads()).toBe(1);
  });

  it('a reload that fails is tried again at the next check, without another lego', async () => {
    const cert = legoCert('api.mammatus');
    const t = owner((argv) => {
      if (argv[0] !== 'lego') return undefined;
      t.files.entries.set('/lego/certificates/api.mammatus.crt', { content: cert.crt, mode: 0o644 });
      t.files.entries.set('/lego/certificates/api.mammatus.key', { content: cert.key, mode: 0o600 });
      return undefined;
    }, 1);
    t.o.update(acme, certDir, ['api.mammatus']);
    await t.o.check();
    expect(t.lines.some((l) => l.msg === 'acme: certificates changed but haproxy did not reload')).toBe(true);
    await t.o.check();
    t.o.stop();
    expect(t.reloads()).toBe(2);
    expect(t.lines.some((l) => l.msg === 'acme: certificates changed; haproxy reloaded')).toBe(true);
    expect(t.run.calls.filter((c) => c[0] === 'lego')).toHaveLength(1);
  });

  it('a failing lego is logged with the host and reason, writes nothing, and is retried later', async () => {
    const t = owner((argv) =>
      argv[0] === 'lego'
        ? commandFailed(argv, 1, '2026/12/07 03:00:00 [shop.mammatus] acme: error: 400 :: urn:ietf:params:acme:error:connection\n')
        : undefined,
    );
    t.o.update(acme, certDir, ['shop.mammatus']);
    await t.o.check();
    await t.o.check(); // within the backoff: no second lego
    t.o.stop();
    expect(t.run.calls.filter((c) => c[0] === 'lego')).toHaveLength(1);
    const warn = t.lines.find((l) => l.msg === 'acme: no certificate; retrying');
    expect(warn).toMatchObject({
      host: 'shop.mammatus',
      reason: '[shop.mammatus] acme: error: 400 :: urn:ietf:params:acme:error:connection',
    });
    expect([...t.files.entries.keys()].filter((p) => p.startsWith(certDir))).toEqual([]);
    expect(t.reloads()).toBe(0);
  });
});

describe('GatewayAcme', () => {
  it('follows the balancers HAProxy’s files on disk were rendered from, not the desired set', async () => {
    const files = memoryFiles();
    const run = recordingRun((argv) => (argv[0] === 'lego' ? commandFailed(argv, 1, 'no directory') : undefined));
    const log = pino({ level: 'silent' });
    const acme = new GatewayAcme(async () => undefined);
    const cfg = parseGatewayConfig({});
    // No copy on disk (no balancer): nothing to get.
    await acme.update({ run, files, log }, cfg);
    await new Promise((r) => setTimeout(r, 50));
    expect(run.calls.filter((c) => c[0] === 'lego')).toEqual([]);
    // The copy a render wrote: its tls acme hosts.
    const copy = render([lb('shop', 443, ['shop.mammatus']), lb('web', 80, ['web.mammatus'], 'none')]).find((f) =>
      f.path.endsWith('balancers.json'),
    )!;
    await files.write(copy.path, copy.content);
    await acme.update({ run, files, log }, cfg);
    await new Promise((r) => setTimeout(r, 50));
    acme.stop();
    expect(run.calls.filter((c) => c[0] === 'lego').map((c) => c.at(-2))).toEqual(['shop.mammatus']);
  });
});
