/**
 * The gateway's target health reports (roles/gateway/lb/health-report.ts), the pure parts: `show
 * stat` as HAProxy 2.6 answers it (captured from the real one: two servers refused, one in
 * maintenance), HAProxy's status words, which target selected a server, and the reports built.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { LbHealthReport, LbHealthSink } from '../../../core/lb-health.js';
import { buildReports, LbHealthReporter, parseServerStats, serverStatus, targetOf } from '../../../roles/gateway/lb/health-report.js';
import { resolvedBalancer } from '../../helpers/lb-resolved.js';

const HEADER =
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo';
const STAT = `${HEADER}
lb_web,i-web1-80,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,2,1,,0,,2,0,,0,* L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:39999,,tcp,
lb_web,m-node-80,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,1,1,75,2,,1,2,2,,0,,2,0,,0,L7OK,200,1,,,,,,,,,,,0,0,,,,,-1,"HTTP status check returned code <200>, ok",,0,0,0,0,,,,Layer7 check passed,,2,3,4,,,,127.0.0.1:39998,,tcp,
lb_web,x,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,,,0,,,1,2,3,,0,,2,0,,0,,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:39997,,tcp,
lb_web,BACKEND,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,2,0,,0,,1,0,,0,,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,
`;

describe('show stat', () => {
  it('parses servers (quoted fields with commas, a check in progress), skips the backend line', () => {
    expect(parseServerStats(STAT)).toEqual([
      { backend: 'lb_web', server: 'i-web1-80', status: 'DOWN', lastchg: 2, checkStatus: 'L4CON', lastCheck: 'Connection refused' },
      {
        backend: 'lb_web',
        server: 'm-node-80',
        status: 'UP',
        lastchg: 75,
        checkStatus: 'L7OK',
        lastCheck: 'HTTP status check returned code <200>, ok',
      },
      { backend: 'lb_web', server: 'x', status: 'MAINT', lastchg: 0 },
    ]);
    expect(parseServerStats('Unknown command.\n')).toEqual([]);
  });

  it.each([
    ['UP', 'up'],
    ['UP 1/3', 'up'],
    ['no check', 'up'],
    ['DOWN', 'down'],
    ['DOWN 1/2', 'down'],
    ['MAINT', 'maint'],
    ['MAINT (via lb_x/y)', 'maint'],
    ['DRAIN', 'drain'],
    ['NOLB', 'drain'],
    ['', 'down'],
  ])('status %j is %s', (word, ours) => expect(serverStatus(word)).toBe(ours));
});

describe('reports', () => {
  const b = resolvedBalancer(
    'web',
    8080,
    [
      { name: 'i-web1-80', addr: '10.0.0.5', port: 80 },
      { name: 'm-node-80', addr: '10.0.0.9', port: 80 },
      { name: 'i-web-2-80', addr: '10.0.0.6', port: 80 },
      { name: 'i-gone-80', addr: '10.0.0.7', port: 80 },
    ],
    {
      targets: [
        { selector: { kind: 'instance', name: 'web1' }, port: 80 },
        { selector: { kind: 'member', name: 'node' }, port: 80 },
        { selector: { kind: 'tag', key: 'app', value: 'web' }, port: 80 },
      ],
    },
  );

  it('names the target that selected a server (instance or member by name, else the tag targets at its port)', () => {
    expect(targetOf(b, 'i-web1-80')).toEqual({ target: 'instance:web1:80', machine: 'web1' });
    expect(targetOf(b, 'm-node-80')).toEqual({ target: 'member:node:80', machine: 'node' });
    expect(targetOf(b, 'i-web-2-80')).toEqual({ target: 'tag:app=web:80', machine: 'web-2' });
    expect(targetOf(b, 'm-other-80')).toEqual({ target: '?', machine: 'other' });
    expect(targetOf(b, 'odd')).toEqual({ target: '?', machine: 'odd' });
  });

  it('builds one report per balancer; a server HAProxy lacks is down', () => {
    const stats = parseServerStats(STAT);
    const [r] = buildReports([b], stats, new Date('2026-12-07T00:00:00Z'));
    expect(r.balancer).toBe('web');
    expect(r.at).toBe('2026-12-07T00:00:00.000Z');
    expect(r.servers.map((s) => [s.server, s.target, s.status, s.check, s.since_s])).toEqual([
      ['i-web1-80', 'instance:web1:80', 'down', 'L4CON Connection refused', 2],
      ['m-node-80', 'member:node:80', 'up', 'L7OK HTTP status check returned code <200>, ok', 75],
      ['i-web-2-80', 'tag:app=web:80', 'down', 'not in haproxy', undefined],
      ['i-gone-80', 'tag:app=web:80', 'down', 'not in haproxy', undefined],
    ]);
  });
});

describe('the reporter (a fake admin socket, a sink that fails for a while)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-health-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('publishes on change and when due, retries a failing sink, deletes the reports of balancers gone', async () => {
    let answer = STAT;
    const socket = join(dir, 'admin.sock');
    const server = net.createServer({ allowHalfOpen: true }, (c) => c.on('data', () => c.end(answer)));
    await new Promise<void>((r) => server.listen(socket, r));
    const puts: Omit<LbHealthReport, 'gateway'>[] = [];
    const removed: string[] = [];
    let failing = true;
    const sink: LbHealthSink = {
      publish: (r) => (failing ? Promise.reject(new Error('no bucket')) : (puts.push(r), Promise.resolve())),
      remove: (b) => (removed.push(b), Promise.resolve()),
      stop: () => Promise.resolve(),
    };
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void warnings.push((JSON.parse(l) as { msg: string }).msg) });
    // A long poll and refresh period: the test drives the rounds.
    const reporter = new LbHealthReporter(sink, log, 60_000, 60_000);
    const b = resolvedBalancer('web', 8080, [{ name: 'm-node-80', addr: '127.0.0.1', port: 39998 }]);
    try {
      reporter.update(socket, [b]);
      await reporter.poll();
      await reporter.poll();
      expect(warnings).toEqual(['cannot publish target health; retrying']);
      failing = false;
      await reporter.poll();
      expect(puts.map((r) => r.servers.map((s) => s.status))).toEqual([['up']]);
      await reporter.poll(); // unchanged, not due
      expect(puts).toHaveLength(1);
      answer = STAT.replace(',m-node-80,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,', ',m-node-80,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,');
      await reporter.poll();
      expect(puts.map((r) => r.servers[0].status)).toEqual(['up', 'down']);
      reporter.update(socket, []);
      await reporter.poll();
      expect(removed).toEqual(['web']);
    } finally {
      await reporter.stop();
      server.close();
    }
  });
});
