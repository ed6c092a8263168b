/**
 * The controller's own firewall, attacked from the LAN (issue 15): a controller namespace listens on
 * the NATS client, route and metadata ports and the SQS/SNS port; an admitted gateway and a stranger
 * (tagged controller, never admitted) each reach it over their own link. With the rendered chain
 * installed by the role's own functions, the stranger's new connections to NATS and the metadata
 * service are dropped while the SQS/SNS port stays open; a node that leaves the roster (revoked)
 * loses NATS at the next render; removing the chain opens everything again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Member, Run } from '../../core/contracts.js';
import { buildRun } from '../../core/exec.js';
import { admittedNode } from '../../core/trust.js';
import { installFirewall, removeFirewall, renderFirewall, validateFirewall } from '../../roles/controller/firewall.js';
import { canUseNetns, missingTools } from '../../scripts/lib/netns-bed.js';
import { fixedCredentials } from '../helpers/trust.js';

const skip = canUseNetns() ?? missingTools(['iptables', 'iptables-restore', 'unshare']);
if (skip) console.warn(`controller firewall test skipped: ${skip}`);

const tag = process.pid.toString(36);
const NS = { ctl: `mfw-ctl-${tag}`, adm: `mfw-adm-${tag}`, str: `mfw-str-${tag}` };
const PORTS = { nats: 4222, route: 6222, metadata: 8775, sqs: 9324 };

describe.skipIf(Boolean(skip))("the controller's firewall, from an admitted gateway and from a stranger", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-fw-'));
  const file = path.join(tmp, 'firewall.rules');
  const host = buildRun();
  const inCtl: Run = (f, args, o) => host('ip', ['netns', 'exec', NS.ctl, f, ...args], o);
  let server: ChildProcess | undefined;

  const gateway = fixedCredentials('gw-1', ['gateway'], 1);
  const members: Member[] = [
    { name: 'gw-1', addr: '10.77.1.2', port: 7946, status: 'alive', tags: { role: 'gateway', trust: gateway.tag } },
    { name: '0evil', addr: '10.77.2.2', port: 7946, status: 'alive', tags: { role: 'controller' } },
  ];
  const authority = gateway.authority;
  const install = async (admitted = [admittedNode(gateway)]) => {
    writeFileSync(
      file,
      renderFirewall({
        natsPorts: [PORTS.nats, PORTS.route],
        metadataPort: PORTS.metadata,
        metadataFrom: [],
        authority,
        admitted,
        members,
      }),
    );
    await validateFirewall(host, file);
    await installFirewall(inCtl, file);
  };
  /** What a new TCP connection from `ns` to `addr:port` gets: `ok`, `timeout` (dropped) or an error code. */
  const reach = async (ns: string, addr: string, port: number) => {
    const js = `const s=require('net').connect(${port},'${addr}');s.setTimeout(700,()=>{console.log('timeout');process.exit(0)});s.on('data',d=>{console.log(String(d).trim());process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
    return (await host('ip', ['netns', 'exec', ns, process.execPath, '-e', js])).stdout.trim();
  };

  beforeAll(async () => {
    for (const ns of Object.values(NS)) await host('ip', ['netns', 'add', ns]);
    for (const [i, ns] of [NS.adm, NS.str].entries()) {
      const [a, b] = [`mfw${i}a${tag}`.slice(0, 15), `mfw${i}b${tag}`.slice(0, 15)];
      await host('ip', ['link', 'add', a, 'netns', NS.ctl, 'type', 'veth', 'peer', 'name', b, 'netns', ns]);
      await host('ip', ['-n', NS.ctl, 'addr', 'add', `10.77.${i + 1}.1/24`, 'dev', a]);
      await host('ip', ['-n', ns, 'addr', 'add', `10.77.${i + 1}.2/24`, 'dev', b]);
      await host('ip', ['-n', NS.ctl, 'link', 'set', a, 'up']);
      await host('ip', ['-n', ns, 'link', 'set', b, 'up']);
    }
    for (const ns of Object.values(NS)) await host('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const js = `const net=require('net');for(const p of [${Object.values(PORTS).join(',')}])net.createServer(c=>c.end('ok')).listen(p);console.log('up')`;
    server = spawn('ip', ['netns', 'exec', NS.ctl, process.execPath, '-e', js], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => server!.stdout!.once('data', r));
  }, 30_000);

  afterAll(async () => {
    server?.kill('SIGKILL');
    for (const ns of Object.values(NS)) await host('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('drops a stranger at NATS and the metadata service, keeps SQS/SNS open, lets the admitted gateway in', async () => {
    expect(await reach(NS.str, '10.77.2.1', PORTS.nats)).toBe('ok'); // before: open to all
    await install();
    expect(await reach(NS.str, '10.77.2.1', PORTS.nats)).toBe('timeout');
    expect(await reach(NS.str, '10.77.2.1', PORTS.route)).toBe('timeout');
    expect(await reach(NS.str, '10.77.2.1', PORTS.metadata)).toBe('timeout');
    expect(await reach(NS.str, '10.77.2.1', PORTS.sqs)).toBe('ok');
    expect(await reach(NS.adm, '10.77.1.1', PORTS.nats)).toBe('ok');
    expect(await reach(NS.adm, '10.77.1.1', PORTS.metadata)).toBe('ok');
    // Applied twice, the chain is replaced, not doubled, and INPUT jumps to it once.
    await install();
    const save = (await inCtl('iptables', ['-t', 'mangle', '-S', 'INPUT'])).stdout;
    expect(save.match(/-j MAMMATUS-CTL/g)).toHaveLength(1);
  });

  it('shuts a revoked node out at the next render, and opens up again when the chain is removed', async () => {
    await install([]);
    expect(await reach(NS.adm, '10.77.1.1', PORTS.nats)).toBe('timeout');
    await removeFirewall(inCtl);
    expect(await reach(NS.str, '10.77.2.1', PORTS.nats)).toBe('ok');
    expect((await inCtl('iptables', ['-t', 'mangle', '-S'])).stdout).not.toContain('MAMMATUS-CTL');
  });
});
