/**
 * The HAProxy renderer against golden files, every golden config checked by the real
 * `haproxy -c`, and the sets of balancers it must refuse. Regenerate the goldens with
 * `npx vitest run test/roles/gateway-lb -u` and review the diff like code.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findOnPath } from '../../../scripts/lib/daemon.js';
import { configPath, HaproxyRenderError, renderHaproxy } from '../../../roles/gateway/lb/render-haproxy.js';
import { selfSignedCertArgv } from '../../../roles/gateway/lb/haproxy-supervisor.js';
import { sanitizeName } from '../../../roles/gateway/lb/names.js';
import { fixtureCases, fixtureSettings, loadLbFixture, record } from './fixtures.js';

const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'gateway-lb');

function listFiles(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
  } catch {
    return [];
  }
}

describe('gateway-lb goldens', () => {
  it.each(fixtureCases)('%s renders the golden files', async (name) => {
    const { balancers, settings } = loadLbFixture(name);
    const files = renderHaproxy(balancers, settings);
    // Pure: the same input twice, and in another order, gives the same files.
    expect(renderHaproxy([...balancers].reverse(), settings)).toEqual(files);
    for (const f of files) await expect(f.content).toMatchFileSnapshot(join(goldenRoot, name, f.path));
  });

  it.each(fixtureCases)('%s has no stale golden files', (name) => {
    const { balancers, settings } = loadLbFixture(name);
    const rendered = new Set(renderHaproxy(balancers, settings).map((f) => f.path));
    expect(listFiles(join(goldenRoot, name)).filter((p) => !rendered.has(p))).toEqual([]);
  });
});

const noHaproxy = findOnPath('haproxy') ? undefined : 'haproxy is not installed (apt-get install haproxy)';
if (noHaproxy) console.warn(`haproxy -c checks skipped: ${noHaproxy}`);

describe.skipIf(noHaproxy !== undefined)('every golden config passes haproxy -c', () => {
  const root = mkdtempSync(join(tmpdir(), 'lb-render-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  // One placeholder for all cases; the supervisor makes the real one the same way.
  const cert = join(root, 'placeholder.pem');
  const [openssl, args] = selfSignedCertArgv(cert);
  execFileSync(openssl, [...args], { stdio: 'pipe' });

  it.each(fixtureCases)('%s', (name) => {
    const dir = join(root, name);
    mkdirSync(join(dir, 'certs'), { recursive: true });
    const { balancers, settings } = loadLbFixture(name, { ...fixtureSettings(dir, dir), placeholderCert: cert });
    // Binding is not checked by -c, so the goldens' WAN addresses need not exist here.
    const files = renderHaproxy(balancers, settings);
    for (const f of files) writeFileSync(f.path, f.content);
    const out = execFileSync('haproxy', ['-c', '-f', configPath(settings)], { stdio: 'pipe', encoding: 'utf8' });
    expect(out).toMatch(/valid/);
  });
});

describe('renderHaproxy path catch-alls', () => {
  it('tries the longest prefix first, whatever the names', () => {
    const r = (name: string, path: string) => ({
      record: record({
        name,
        listen: { port: 80 },
        mode: 'http',
        hosts: [],
        path,
        targets: [],
        health: { kind: 'tcp' },
        tls: 'none',
        balance: 'roundrobin',
      }),
      servers: [],
    });
    const cfg = renderHaproxy([r('a', '/api'), r('b', '/api/v2')], fixtureSettings()).find((f) => f.path.endsWith('haproxy.cfg'))!.content;
    expect(cfg.match(/use_backend lb_\w+ if \{ path_beg .* \}/g)).toEqual([
      'use_backend lb_b if { path_beg /api/v2 }',
      'use_backend lb_a if { path_beg /api }',
    ]);
  });
});

describe('renderHaproxy refuses what one config cannot serve', () => {
  const s = fixtureSettings();
  const base = {
    listen: { port: 80 },
    mode: 'http',
    hosts: ['a.example.org'],
    targets: [],
    health: { kind: 'tcp' },
    tls: 'none',
    balance: 'roundrobin',
  } as const;
  const bad =
    (...records: Parameters<typeof record>[0][]) =>
    () =>
      renderHaproxy(
        records.map((r) => ({ record: record(r), servers: [] })),
        s,
      );

  it('two protocols on one port', () => {
    expect(bad({ ...base, name: 'a' }, { ...base, name: 'b', mode: 'tcp', hosts: [] })).toThrow(HaproxyRenderError);
    expect(bad({ ...base, name: 'a' }, { ...base, name: 'b', tls: 'acme' })).toThrow(/port 80 is http\/none/);
  });
  it('the same host and path twice, or two catch-alls', () => {
    expect(bad({ ...base, name: 'a' }, { ...base, name: 'b' })).toThrow(/a.example.org\/ on port 80 is also lb_a's/);
    expect(bad({ ...base, name: 'a', hosts: [] }, { ...base, name: 'b', hosts: [] })).toThrow(/already takes every name/);
  });
  it('two plain TCP balancers on one port', () => {
    const tcp = { ...base, mode: 'tcp', hosts: [] } as const;
    expect(bad({ ...tcp, name: 'a' }, { ...tcp, name: 'b' })).toThrow(/cannot be shared/);
  });
  it('two addresses on one port (one frontend binds them all)', () => {
    const on = (addr?: string) => ({ port: 80, ...(addr ? { addr } : {}) });
    expect(bad({ ...base, name: 'a' }, { ...base, name: 'b', hosts: ['b.example.org'], listen: on('10.0.0.1') })).toThrow(
      /port 80 is http\/none on \* \(balancer a\), not http\/none on 10.0.0.1/,
    );
    expect(
      bad({ ...base, name: 'a', listen: on('10.0.0.1') }, { ...base, name: 'b', hosts: ['b.example.org'], listen: on('10.0.0.2') }),
    ).toThrow(/on 10.0.0.1/);
  });
  it('hosts and paths that would change the config', () => {
    expect(bad({ ...base, name: 'a', hosts: ['a b'] })).toThrow(/not a lower-case DNS name/);
    expect(bad({ ...base, name: 'a', hosts: ['*.example.org'] })).toThrow(/not a lower-case DNS name/);
    expect(bad({ ...base, name: 'a', hosts: ['a..b'] })).toThrow(/not a lower-case DNS name/);
    expect(bad({ ...base, name: 'a', path: '/x #y' })).toThrow(/must start with \//);
    expect(bad({ ...base, name: 'a', health: { kind: 'http', path: '/"' } })).toThrow(/must start with \//);
  });

  // What a foreign writer could put in the bucket if the record check were bypassed: an environment
  // variable expanded into the config, headers added to the health check by escapes, a quote that
  // breaks `haproxy -c` for every balancer, an ACL or a second command smuggled in.
  const hostile = ['/"${SECRET}"', '/${HOME}', '/x\\r\\nX-Injected: 1', "/'", '/`id`', '/a|b', '/a;b', '/{ x }', '/%zz', '/a\tb'];
  it.each(hostile)('refuses the path %j as prefix and as health check, rendering nothing', (p) => {
    expect(bad({ ...base, name: 'a', path: p })).toThrow(HaproxyRenderError);
    expect(bad({ ...base, name: 'a', hosts: [], path: p })).toThrow(HaproxyRenderError);
    expect(bad({ ...base, name: 'a', health: { kind: 'http', path: p } })).toThrow(/must start with \/ and hold no spaces, quotes/);
  });
  it('refuses hostile hosts and addresses in every place they reach the config', () => {
    const sni = { ...base, mode: 'tcp', tls: 'passthrough', listen: { port: 443 } } as const;
    for (const h of ['a"b.example', 'a$b.example', 'x.example ssl crt /etc/shadow'])
      for (const r of [
        { ...base, name: 'a', hosts: [h] },
        { ...sni, name: 'a', hosts: [h] },
      ])
        expect(bad(r)).toThrow(HaproxyRenderError);
    expect(bad({ ...base, name: 'a', listen: { addr: '10.0.0.1:80 ssl crt /x', port: 80 } })).toThrow(/not an IP address/);
    const server = { name: 'i-a-80', addr: '10.0.0.1:1 backup', port: 80 };
    expect(() => renderHaproxy([{ record: record({ ...base, name: 'a' }), servers: [server] }], s)).toThrow(/not an IP address/);
  });
});

describe('sanitizeName', () => {
  it('keeps clean names and makes unclean ones distinct', () => {
    expect(sanitizeName('web-1-80')).toBe('web-1-80');
    expect(sanitizeName('a.b')).toMatch(/^a_b-[0-9a-f]{6}$/);
    expect(sanitizeName('a.b')).not.toBe(sanitizeName('a_b'));
    expect(sanitizeName('A_b')).not.toBe('a_b');
  });
});
