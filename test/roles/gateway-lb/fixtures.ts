/**
 * The gateway-lb fixtures: each `__fixtures__/gateway-lb/<case>.yaml` lists resolved balancers
 * (records without their timestamps) and optional settings over `fixtureSettings`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { LoadBalancerRecord, ResolvedBalancer } from '../../../core/lb-record.js';
import { HAPROXY_DEFAULTS, type HaproxySettings } from '../../../roles/gateway/lb/render-haproxy.js';

export const fixturesDir = join(import.meta.dirname, '..', '__fixtures__', 'gateway-lb');

/** The fixture case names, sorted. */
export const fixtureCases = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

/** Settings rooted at `dir` (the goldens use /etc/mammatus/haproxy and /run/mammatus). */
export function fixtureSettings(dir = '/etc/mammatus/haproxy', run = '/run/mammatus'): HaproxySettings {
  return {
    ...HAPROXY_DEFAULTS,
    configDir: dir,
    adminSocket: join(run, 'haproxy-admin.sock'),
    certDir: join(dir, 'certs'),
    placeholderCert: join(dir, 'placeholder.pem'),
  };
}

/** A record with timestamps filled in. */
export function record(r: Omit<LoadBalancerRecord, 'created_at' | 'updated_at'>): LoadBalancerRecord {
  return { created_at: '2026-12-01T00:00:00.000Z', updated_at: '2026-12-01T00:00:00.000Z', ...r };
}

/** One fixture: its balancers and its settings (`base` overridden by the fixture's `settings`). */
export function loadLbFixture(name: string, base = fixtureSettings()): { balancers: ResolvedBalancer[]; settings: HaproxySettings } {
  const raw = parse(readFileSync(join(fixturesDir, `${name}.yaml`), 'utf8')) as {
    balancers: { record: Omit<LoadBalancerRecord, 'created_at' | 'updated_at'>; servers: ResolvedBalancer['servers'] }[];
    settings?: Partial<HaproxySettings>;
  };
  return {
    balancers: raw.balancers.map((b) => ({ record: record(b.record), servers: b.servers })),
    settings: { ...base, ...raw.settings },
  };
}
