/**
 * No request lost through the gateway's balancer (issue 21), along the whole path: the registry's
 * records → the gateway agent → HAProxy in the gateway namespace (the bed of
 * scripts/lib/lb-gateway-bed.ts). A client on the WAN side sends 20,000 GETs over ~20 s
 * (scripts/lib/http-load.ts: 8 workers, half with keep-alive, half a connection per request) while
 * a target is added (an instance gets the selected tag), one is removed (it loses the tag), a
 * backend is killed (its instance stays in the registry), and HAProxy's config is reloaded twice (a
 * second balancer created, then removed). Every request must get a 2xx answer, and every target
 * must take traffic while it is in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadInNetns, type LoadResult } from '../../scripts/lib/http-load.js';
import { lbGatewaySkip, startLbGateway, type LbGateway } from '../../scripts/lib/lb-gateway-bed.js';
import { sleep, until } from '../../scripts/lib/wait.js';

const skip = lbGatewaySkip();
if (skip) console.warn(`lb-noloss test skipped: ${skip}`);

/** Seconds into the load at which each change is made. */
const AT = { add: 3, remove: 7, kill: 10, reload: 13, reloadBack: 16 } as const;
const LOAD = { total: 20_000, seconds: 20, workers: 8, keepAliveShare: 0.5 } as const;

describe.skipIf(Boolean(skip))('the balancer under load while its targets and config change', () => {
  let gw: LbGateway;
  const reloads = async () => (await gw.master.processes()).find((x) => x.type === 'master')?.reloads ?? 0;
  const get = async (host: string) => {
    const r = await gw.bed.curl('up', `http://${gw.bed.addrs.gwWan}/`, { timeoutS: 3, args: ['-H', `Host: ${host}`] });
    return `${r.status} ${r.body.trim()}`;
  };

  /** An HTTP balancer on port 80 for `host` over the instances tagged app=web. */
  const createLb = (name: string, host: string) =>
    gw.cli(...`lb create ${name} --listen 80 --mode http --host ${host} --target tag:app=web:8080`.split(' '));

  beforeAll(async () => {
    // w3 is registered without the tag (its backend already answers), so adding it is a tag change.
    gw = await startLbGateway({
      prefix: 'lbn',
      backends: { w1: '10.88.0.21', w2: '10.88.0.22', w3: '10.88.0.23' },
      tags: { w1: { app: 'web' }, w2: { app: 'web' } },
    });
    const created = await createLb('web', 'web.test');
    expect(created, created.out).toMatchObject({ code: 0 });
    const seen = new Set<string>();
    await until(
      `w1 and w2 served (${gw.errors()})`,
      async () => seen.add(await get('web.test')).has('200 w1') && seen.has('200 w2'),
      20_000,
    );
  }, 90_000);

  afterAll(async () => {
    await gw?.destroy();
  });

  it('20,000 requests over 20 s: none lost while targets come and go and HAProxy reloads', async () => {
    const reloadsBefore = await reloads();
    const at: Partial<Record<keyof typeof AT, number>> = {};
    let began = 0;
    const changes = async () => {
      await until('the load started', () => began > 0, 15_000);
      const step = async (name: keyof typeof AT, change: () => Promise<unknown>) => {
        await sleep(Math.max(0, began + AT[name] * 1000 - Date.now()));
        at[name] = Date.now();
        await change();
      };
      await step('add', () => gw.running('w3', { app: 'web' }));
      await step('remove', () => gw.running('w1', { app: 'retired' }));
      await step('kill', () => gw.bed.kill(gw.backends.get('w2')!));
      await step('reload', async () => expect(await createLb('api', 'api.test')).toMatchObject({ code: 0 }));
      await until('api.test served', async () => (await get('api.test')).startsWith('200 '), 10_000);
      await step('reloadBack', async () => expect(await gw.cli('lb', 'rm', 'api')).toMatchObject({ code: 0 }));
      await until('api.test gone', async () => (await get('api.test')).startsWith('503 '), 10_000);
    };
    const [load] = await Promise.all([
      runLoadInNetns(gw.bed.ns.up, { url: `http://${gw.bed.addrs.gwWan}/`, host: 'web.test', ...LOAD }, () => (began = Date.now())),
      changes(),
    ]);
    const r: LoadResult = load;
    const hitsIn = (name: string, from: number, to: number) => (r.hits[name] ?? []).filter((t) => t >= from && t < to).length;
    const counts = Object.fromEntries(Object.entries(r.hits).map(([k, v]) => [k, v.length]));
    // Times in the message: ms after the load started.
    const rel = (t: number) => Math.round(t - r.started);
    const changedAt = Object.fromEntries(Object.entries(at).map(([k, t]) => [k, rel(t)]));
    const failed = r.failures.slice(0, 8).map((f) => ({ ...f, t: rel(f.t) }));
    const summary = JSON.stringify({ sent: r.sent, ok: r.ok, counts, changedAt, failures: r.failures.length, failed, errors: gw.errors() });

    expect(r.failures, summary).toEqual([]);
    expect(r.ok, summary).toBe(LOAD.total);
    // The changes all happened inside the load.
    expect(at.reloadBack! + 500, summary).toBeLessThan(r.ended);
    // Each target took traffic while it was in (from one second after it came in).
    expect(hitsIn('w1', r.started, at.remove!), summary).toBeGreaterThan(100);
    expect(hitsIn('w2', r.started, at.kill!), summary).toBeGreaterThan(100);
    expect(hitsIn('w3', at.add! + 1000, r.ended), summary).toBeGreaterThan(100);
    expect(hitsIn('w3', 0, at.add!), summary).toBe(0);
    // And none once it was out and the change had settled (the agent's feed, apply, HAProxy's checks).
    expect(hitsIn('w1', at.remove! + 3000, Infinity), summary).toBe(0);
    expect(hitsIn('w2', at.kill! + 100, Infinity), summary).toBe(0);
    expect(Object.keys(r.hits).sort(), summary).toEqual(['w1', 'w2', 'w3']);
    // Targets changed through the runtime API; the two balancer changes were the only reloads.
    expect(await reloads(), summary).toBe(reloadsBefore + 2);
  }, 90_000);
});
