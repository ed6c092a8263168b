/**
 * The gateway's boot serving end to end, in network namespaces: the agent applies the gateway role
 * (with the real bundle, so the boot server runs as the `boot-http` child under the service user),
 * a LAN client gets the stub's URL from DHCP as iPXE would and fetches the stub, a live image file
 * and an apt file with curl; traversal is refused on the wire; the WAN side cannot reach port 8777.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildFileOps } from '../../core/files.js';
import { buildGatewayRole } from '../../roles/gateway/index.js';
import { bedGatewayYaml, gatewayEffects } from '../../scripts/lib/gateway-ns.js';
import { BUNDLE } from '../../scripts/lib/mammatus-agent.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { ensureSystemUser, procIdentity } from '../../scripts/lib/proc.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { until } from '../../scripts/lib/wait.js';

const skip =
  canUseNetns() ??
  missingTools(['busybox', 'curl', 'dnsmasq', 'iptables-restore']) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (existsSync(BUNDLE) ? undefined : `${BUNDLE} is missing (npm run build)`);
if (skip) console.warn(`gateway boot tests skipped: ${skip}`);

const BOOT = 'http://10.88.0.1:8777';

describe.skipIf(Boolean(skip))('the gateway serves the boot', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gwboot-'));
  const p = (name: string) => path.join(tmp, name);
  let bed: GatewayBed;
  let serf: SerfAgent;
  let agent: Agent;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    // dnsmasq drops to nobody and the boot server runs as mammatus: both read below tmp.
    chmodSync(tmp, 0o755);
    ensureSystemUser('mammatus');
    bed = await buildGatewayBed({ prefix: 'gbt' });
    mkdirSync(p('tftp'));
    mkdirSync(p('image'));
    mkdirSync(p('apt'));
    writeFileSync(p('image/vmlinuz'), 'kernel bytes\n');
    writeFileSync(p('image/filesystem.squashfs'), Buffer.alloc(3 * 1024 * 1024, 7));
    writeFileSync(p('apt/Release'), 'Origin: mammatus\n');
    writeFileSync(p('secret'), 'not for the LAN\n');
    symlinkSync(p('secret'), p('apt/leak'));
    serf = await startSerfAgent({ name: 'gw1', dir: p('serf'), tags: { role: 'gateway' } });
    writeFileSync(
      p('agent.yaml'),
      bedGatewayYaml(
        bed,
        tmp,
        serf.rpcAddr,
        [`    tftp: { root: ${p('tftp')} }`, `    boot: { image_dir: ${p('image')}, apt_dir: ${p('apt')} }`],
        { boot_server: p('boot-server.yaml'), boot_stub: p('boot.ipxe') },
      ),
    );
    const { run, spawn, probe } = await gatewayEffects(bed);
    const opts = { path: p('agent.yaml'), env: {} };
    agent = createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log: pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }),
      run,
      files: buildFileOps(),
      roles: { gateway: buildGatewayRole({ spawn, probe, mammatus: [process.execPath, [BUNDLE]] }) },
      version: '0.0.0-test',
    });
    await agent.start();
    await until('the gateway role', () => agent.view.roleStatus().gateway?.state === 'ok', 30_000).catch(() => undefined);
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    await serf?.stop();
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('applies, and the boot server runs as the service user', () => {
    expect(agent.view.roleStatus().gateway, JSON.stringify(logs.filter((l) => Number(l.level) >= 50))).toMatchObject({ state: 'ok' });
    const ready = logs.find((l) => l.msg === 'boot-http ready' && typeof l.child_pid === 'number');
    expect(ready?.url).toBe(BOOT);
    expect(procIdentity(ready!.child_pid as number).uids[0]).toBe(ensureSystemUser('mammatus'));
  });

  it("hands iPXE the stub's URL by DHCP", async () => {
    const lease = await bed.dhcp({ options: ['-x', '0x5d:0007', '-x', '0x4d:69505845'] });
    expect(lease.bootFile).toBe(`${BOOT}/boot.ipxe`);
  });

  it('serves the stub, an image file and an apt file to the LAN', async () => {
    const stub = await bed.curl('cl', `${BOOT}/boot.ipxe`);
    expect(stub.status).toBe(200);
    expect(stub.body).toBe(readFileSync(p('boot.ipxe'), 'utf8'));
    expect(stub.body).toContain(`set boot-url ${BOOT}\n`);
    expect((await bed.curl('cl', `${BOOT}/live/amd64/vmlinuz`)).body).toBe('kernel bytes\n');
    expect((await bed.curl('cl', `${BOOT}/apt/Release`)).body).toBe('Origin: mammatus\n');
    const size = await bed.curl('cl', `${BOOT}/live/amd64/filesystem.squashfs`, { args: ['-o', '/dev/null', '-w', '%{size_download}\n'] });
    expect(size.body.split('\n')[0]).toBe(String(3 * 1024 * 1024));
  });

  it('refuses traversal, a symlink out and other methods on the wire', async () => {
    for (const url of [`${BOOT}/apt/../secret`, `${BOOT}/apt/%2e%2e/secret`, `${BOOT}/apt/leak`, `${BOOT}/`]) {
      const got = await bed.curl('cl', url, { args: ['--path-as-is'] });
      expect(got.status, url).toBe(404);
      expect(got.body).not.toContain('not for the LAN');
    }
    expect((await bed.curl('cl', `${BOOT}/boot.ipxe`, { args: ['-X', 'PUT', '-d', 'x'] })).status).toBe(405);
  });

  it('cannot be reached from the WAN side', async () => {
    await bed.addUpstreamRouteToLan();
    // The WAN address (nothing listens there) and the LAN address routed in from the WAN: both dropped.
    expect((await bed.curl('up', 'http://203.0.113.2:8777/boot.ipxe', { timeoutS: 2 })).code).toBe(28);
    expect((await bed.curl('up', `${BOOT}/boot.ipxe`, { timeoutS: 2 })).code).toBe(28);
  });
});
