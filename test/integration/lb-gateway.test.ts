/**
 * The gateway serving the registry's load balancers end to end (issue 21): a real nats-server
 * holds the instance registry and the `mammatus-lb` bucket (what the controllers serve), written
 * by the real `mammatus lb` and the registry API; the gateway agent (in-process, real serf) follows
 * them with its own gateway credentials and runs the real HAProxy in the gateway namespace of a
 * netns bed (scripts/lib/lb-gateway-bed.ts). The client is `up`, on the WAN side.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStatus, STATUS_MAX_BYTES } from '../../handlers/status.js';
import { lbGatewaySkip, startLbGateway, type LbGateway } from '../../scripts/lib/lb-gateway-bed.js';
import { until } from '../../scripts/lib/wait.js';

const skip = lbGatewaySkip();
if (skip) console.warn(`lb-gateway tests skipped: ${skip}`);

describe.skipIf(Boolean(skip))('the gateway serving load balancers from the registry', () => {
  let gw: LbGateway;
  const p = (name: string) => gw.p(name);
  const cli = (...args: string[]) => gw.cli(...args);
  const errors = () => gw.errors();
  /** One GET from the WAN client to the gateway's WAN address on port 80, with this Host. */
  const get = async (host: string) => {
    const r = await gw.bed.curl('up', `http://${gw.bed.addrs.gwWan}/`, { timeoutS: 3, args: ['-H', `Host: ${host}`] });
    return `${r.status} ${r.body.trim()}`;
  };
  /** The bodies `n` requests for `host` got. */
  const spread = async (host: string, n = 6) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(await get(host));
    return [...seen].sort();
  };
  const reloads = async () => (await gw.master.processes()).find((x) => x.type === 'master')?.reloads;

  beforeAll(async () => {
    // The backends: an instance each, on its own LAN address of `ctl`, answering its name.
    gw = await startLbGateway({
      prefix: 'lbg',
      backends: { a1: '10.88.0.11', b1: '10.88.0.12', b2: '10.88.0.13' },
      tags: { a1: { app: 'a' }, b1: { app: 'b' }, b2: { app: 'spare' } },
      debounceMs: 50,
      // HAProxy binds the WAN address only (the bed's default): the default wildcard is not needed.
    });
  }, 90_000);

  afterAll(async () => {
    await gw?.destroy();
  });

  it('lb create: two host names on one WAN port reach two backends in the LAN', async () => {
    expect(existsSync(p('haproxy/haproxy.cfg'))).toBe(false);
    expect(
      await cli('lb', 'create', 'web', '--listen', '80', '--mode', 'http', '--host', 'web.test', '--target', 'tag:app=a:8080'),
    ).toMatchObject({ code: 0 });
    expect(
      await cli('lb', 'create', 'api', '--listen', '80', '--mode', 'http', '--host', 'api.test', '--target', 'tag:app=b:8080'),
    ).toMatchObject({ code: 0 });
    await until(`web.test served (${errors()})`, async () => (await get('web.test')) === '200 a1', 20_000);
    await until('api.test served', async () => (await get('api.test')) === '200 b1', 10_000);
    expect(await get('nobody.test')).toBe('503 no such service');
    // Exactly the listen port, from the WAN side.
    const input = (await gw.bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout;
    expect(input.match(new RegExp(`^-A INPUT -i ${gw.bed.ifaces.gwWan} .*$`, 'gm'))).toEqual([
      `-A INPUT -i ${gw.bed.ifaces.gwWan} -p tcp -m tcp --dport 80 -j ACCEPT`,
    ]);
    // Not reachable from the LAN side: the firewall opens the port on the WAN interface only.
    const fromLan = await gw.bed.curl('ctl', `http://${gw.bed.addrs.gwWan}/`, { timeoutS: 2, args: ['-H', 'Host: web.test'] });
    expect(fromLan.status).toBe(0);
    expect((await gw.bed.exec('gw', ['pgrep', '-A', '-f', '--', `-f ${p('haproxy/haproxy.cfg')}`])).code).toBe(0);
  }, 60_000);

  it('an instance that gets the selected tag takes traffic without a reload; status counts it', async () => {
    const before = await reloads();
    await gw.running('b2', { app: 'b' });
    await until('b2 in the api spread', async () => (await spread('api.test')).includes('200 b2'), 15_000);
    expect(await spread('api.test', 8)).toEqual(['200 b1', '200 b2']);
    expect(await reloads()).toBe(before);
    // The status detail, asked until HAProxy's state was read (at most every 2 s).
    const detail = await until('status detail', () => {
      const d = gw.agent.view.roleStatus().gateway?.detail;
      return d?.startsWith('2 balancers, 3/3 targets up') ? d : undefined;
    });
    expect(detail).toBe('2 balancers, 3/3 targets up');
    expect(Buffer.byteLength(JSON.stringify(buildStatus(gw.agent.view)))).toBeLessThanOrEqual(STATUS_MAX_BYTES);
    // The same from the controller side: the gateway's reports in `lb list` and `lb show`.
    await until('lb list shows health', async () => /^api\s.*\s2\/2 up$/m.test((await cli('lb', 'list')).out), 15_000);
    expect((await cli('lb', 'list')).out).toMatch(/^web\s.*\s1\/1 up$/m);
    expect((await cli('lb', 'show', 'api')).out).toMatch(/^ {2}gateway gw1: 2\/2 up, reported \d+s ago$/m);
  }, 40_000);

  it('leaves out a balancer on a port the gateway uses, serving the others; lb create refuses IPv6 and the fixed ports', async () => {
    const cfg = readFileSync(p('haproxy/haproxy.cfg'), 'utf8');
    // The CLI refuses the ports every gateway uses (ssh, DNS...) and IPv6 listens before it connects...
    expect(await cli('lb', 'create', 'dns', '--listen', '53', '--mode', 'tcp', '--target', 'tag:app=a:8080')).toMatchObject({
      code: 2,
      out: expect.stringContaining("port 53 belongs to the gateway's DNS (dnsmasq) on every gateway") as string,
    });
    const v6 = await cli('lb', 'create', 'v6', '--listen', '[2001:db8::1]:80', '--mode', 'http', '--target', 'tag:app=a:8080');
    expect(v6).toMatchObject({ code: 2, out: expect.stringContaining('IPv6 listen addresses are not supported') as string });
    // ...the metadata proxy's port is the gateway's setting: the gateway leaves that one out.
    const created = await cli('lb', 'create', 'mdp', '--listen', '8776', '--mode', 'tcp', '--target', 'tag:app=a:8080');
    expect(created, created.out).toMatchObject({ code: 0 });
    const why = "port 8776 is the gateway's metadata proxy (metadata.proxy_port)";
    await until(
      'mdp in lb-left-out',
      () => existsSync(p('lb-left-out')) && readFileSync(p('lb-left-out'), 'utf8').includes(`mdp: left out: ${why}`),
      15_000,
    );
    const status = await until('the left-out balancer in the status', () => {
      const s = gw.agent.view.roleStatus().gateway;
      return s?.detail?.includes('1 balancer left out (mdp)') ? s : undefined;
    });
    expect(status.state).toBe('ok');
    expect(gw.logs.some((l) => l.balancer === 'mdp' && l.reason === why && Number(l.level) === 40)).toBe(true);
    expect(readFileSync(p('haproxy/haproxy.cfg'), 'utf8')).toBe(cfg);
    expect(await get('web.test')).toBe('200 a1');
    const wan = (await gw.bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout.match(
      new RegExp(`^-A INPUT -i ${gw.bed.ifaces.gwWan} .*$`, 'gm'),
    );
    expect(wan).toEqual([`-A INPUT -i ${gw.bed.ifaces.gwWan} -p tcp -m tcp --dport 80 -j ACCEPT`]);
    // dnsmasq goes on: the balancer left out took nothing else with it.
    expect((await gw.bed.dig('gateway.mammatus', 'A', gw.bed.addrs.gwLan, 'ctl')).answers).toEqual([gw.bed.addrs.gwLan]);
    expect(await cli('lb', 'rm', 'mdp')).toMatchObject({ code: 0 });
    await until('the report gone', () => !existsSync(p('lb-left-out')), 15_000);
    expect(gw.agent.view.roleStatus().gateway?.detail).not.toContain('left out');
  }, 40_000);

  it('lb rm stops routing; the last one stops HAProxy, removes its files and closes the port', async () => {
    expect(await cli('lb', 'rm', 'api')).toMatchObject({ code: 0 });
    await until('api.test gone', async () => (await get('api.test')) === '503 no such service', 15_000);
    expect(await get('web.test')).toBe('200 a1');
    expect(await cli('lb', 'rm', 'web')).toMatchObject({ code: 0 });
    await until('haproxy files gone', () => !existsSync(p('haproxy/haproxy.cfg')), 15_000);
    // The files go before the reload hook stops HAProxy (the same apply).
    await until('port 80 closed', async () => (await get('web.test')).startsWith('0 '), 10_000);
    expect((await gw.bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout).not.toContain('--dport 80');
    // By its config path: network namespaces share the PID space, so other tests' haproxy shows too.
    expect((await gw.bed.exec('gw', ['pgrep', '-A', '-f', '--', `-f ${p('haproxy/haproxy.cfg')}`])).code).toBe(1);
    expect(gw.agent.view.roleStatus().gateway).toMatchObject({ state: 'ok' });
  }, 40_000);

  it('an agent restarted while the controllers are down serves the balancers it had', async () => {
    expect(
      await cli('lb', 'create', 'web', '--listen', '80', '--mode', 'http', '--host', 'web.test', '--target', 'tag:app=a:8080'),
    ).toMatchObject({ code: 0 });
    await until('web.test served again', async () => (await get('web.test')) === '200 a1', 15_000);
    await gw.agent.stop();
    expect(await get('web.test')).toMatch(/^0 /);
    await gw.stopNats();
    await gw.startAgent();
    // From the copy beside HAProxy's files: no feed has read anything, the controllers are gone.
    await until('web.test served after the restart', async () => (await get('web.test')) === '200 a1', 15_000);
    expect((await gw.bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout).toContain('--dport 80');
  }, 60_000);
});
