/**
 * The certificate owner's planner (roles/gateway/lb/plan-acme.ts): which `tls acme` hosts get a
 * first certificate, a renewal, a copy into HAProxy's directory or a removal, and the backoff.
 */
import { describe, expect, it } from 'vitest';
import { acmeHosts, planAcme, renewalDue, retryDelay, type AcmeView, type IssuedCert } from '../../../roles/gateway/lb/plan-acme.js';
import { record } from './fixtures.js';

const H = 3_600_000;
const NOW = Date.parse('2026-12-07T12:00:00.000Z');
/** A 12 h certificate (the cluster CA's) issued `ago` ms before NOW. */
const cert = (ago: number, coversHost = true): IssuedCert => ({ notBefore: NOW - ago, notAfter: NOW - ago + 12 * H, coversHost });
const view = (over: Partial<AcmeView>): AcmeView => ({
  wanted: [],
  issued: new Map(),
  served: new Map(),
  retryAt: new Map(),
  now: NOW,
  ...over,
});

describe('acmeHosts', () => {
  it('takes the hosts of tls acme balancers only, sorted, each once', () => {
    const b = (name: string, tls: 'acme' | 'none', hosts: string[]) => ({
      record: record({
        name,
        listen: { port: 443 },
        mode: 'http',
        hosts,
        targets: [],
        health: { kind: 'tcp' },
        tls,
        balance: 'roundrobin',
      }),
      servers: [],
    });
    const balancers = [b('a', 'acme', ['z.mammatus', 'a.mammatus']), b('b', 'acme', ['a.mammatus']), b('c', 'none', ['plain.mammatus'])];
    expect(acmeHosts(balancers)).toEqual(['a.mammatus', 'z.mammatus']);
    expect(acmeHosts(undefined)).toEqual([]);
  });
});

describe('planAcme', () => {
  it('obtains a certificate for a host lego has none for, or one not naming the host', () => {
    const plan = planAcme(view({ wanted: ['b.mammatus', 'a.mammatus'], issued: new Map([['b.mammatus', cert(H, false)]]) }));
    expect(plan).toEqual({ obtain: ['a.mammatus', 'b.mammatus'], renew: [], install: [], remove: [], waiting: [] });
  });

  it('renews once less than a third of the lifetime is left, and an expired one', () => {
    const issued = new Map([
      ['fresh.mammatus', cert(7.9 * H)],
      ['due.mammatus', cert(8 * H)],
      ['expired.mammatus', cert(13 * H)],
    ]);
    const served = new Map([...issued.keys()].map((h) => [h, true]));
    const plan = planAcme(view({ wanted: [...issued.keys()], issued, served }));
    expect(plan.renew).toEqual(['due.mammatus', 'expired.mammatus']);
    expect(plan.obtain).toEqual([]);
    expect(plan.install).toEqual([]);
  });

  it('a 90-day certificate is due with 30 days left', () => {
    const d = 24 * H;
    expect(renewalDue({ notBefore: NOW - 59 * d, notAfter: NOW + 31 * d, coversHost: true }, NOW)).toBe(false);
    expect(renewalDue({ notBefore: NOW - 60 * d, notAfter: NOW + 30 * d, coversHost: true }, NOW)).toBe(true);
  });

  it('installs a current certificate HAProxy does not serve (missing or another file)', () => {
    const issued = new Map([
      ['a.mammatus', cert(H)],
      ['b.mammatus', cert(H)],
      ['c.mammatus', cert(H)],
    ]);
    const served = new Map([
      ['b.mammatus', false],
      ['c.mammatus', true],
    ]);
    expect(planAcme(view({ wanted: ['a.mammatus', 'b.mammatus', 'c.mammatus'], issued, served })).install).toEqual([
      'a.mammatus',
      'b.mammatus',
    ]);
  });

  it('removes the served certificate of a host no balancer names', () => {
    const served = new Map([
      ['gone.mammatus', true],
      ['kept.mammatus', true],
    ]);
    const plan = planAcme(view({ wanted: ['kept.mammatus'], issued: new Map([['kept.mammatus', cert(H)]]), served }));
    expect(plan).toEqual({ obtain: [], renew: [], install: [], remove: ['gone.mammatus'], waiting: [] });
  });

  it('a host that failed waits for its retry time, then is tried again', () => {
    const wanted = ['a.mammatus', 'b.mammatus'];
    const issued = new Map([['b.mammatus', cert(9 * H)]]);
    const retryAt = new Map([
      ['a.mammatus', NOW + 1000],
      ['b.mammatus', NOW + 1000],
    ]);
    expect(planAcme(view({ wanted, issued, retryAt }))).toMatchObject({ obtain: [], renew: [], waiting: wanted });
    expect(planAcme(view({ wanted, issued, retryAt, now: NOW + 1000 }))).toMatchObject({ obtain: ['a.mammatus'], renew: ['b.mammatus'] });
  });

  it('backs off 30 s doubling, at most the check interval', () => {
    expect([1, 2, 3, 4, 10].map((n) => retryDelay(n, 3_600_000))).toEqual([30_000, 60_000, 120_000, 240_000, 3_600_000]);
  });
});
