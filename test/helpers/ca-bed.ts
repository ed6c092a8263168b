/**
 * Helpers for tests that run the cluster CA (Debian's caddy, `mammatus ca init`'s PKI) in a
 * network-namespace bed (scripts/lib/netns-bed.ts): test/integration/ca-acme.test.ts and
 * lb-acme.test.ts.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FileOps, Logger, Member, Spawn } from '../../core/contracts.js';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { findPasswdUser } from '../../core/users.js';
import { CaBackend, type DirectoryProbe } from '../../roles/controller/ca-backend.js';
import { parseControllerConfig, type CaConfig } from '../../roles/controller/config.js';
import { caConfigPaths, renderCaddyConfig } from '../../roles/controller/ca-render.js';
import type { RenderedFile } from '../../roles/types.js';
import { buildGatewayBed, waitForFile, type GatewayBed, type NsKey } from '../../scripts/lib/netns-bed.js';
import { pkiFiles, type TestPki } from '../../scripts/lib/test-pki.js';
import { makeIntermediate, makeRoot } from '../../src/ca/pki.js';

/** The spawner of the CA backend inside `ns` (root switches the user after `ip netns exec`, with setpriv). */
export async function spawnIn(bed: GatewayBed, ns: NsKey): Promise<Spawn> {
  const spawn = await buildSpawn();
  const inNs = (file: string, args: readonly string[]) => ['netns', 'exec', bed.ns[ns], file, ...args];
  return (file, args, o) => {
    if (o?.user === undefined) return spawn('ip', inNs(file, args), o);
    const { user, ...rest } = o;
    const ids = findPasswdUser(readFileSync('/etc/passwd', 'utf8'), user);
    if (!ids) throw new Error(`no user ${user}`);
    const drop = [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups', '--inh-caps=-all', '--', file, ...args];
    return spawn('ip', inNs('setpriv', drop), rest);
  };
}

/** The directory fetched from inside `ctl` with curl, trusting only the root file, by the CA's name. */
export function probeIn(bed: GatewayBed, rootFile: string): DirectoryProbe {
  return async (url, _rootPem, servername) => {
    const u = new URL(url);
    const r = await bed.exec('ctl', [
      'curl',
      '-sS',
      '-m',
      '3',
      '--cacert',
      rootFile,
      '--resolve',
      `${servername}:${u.port}:${u.hostname}`,
      '-w',
      '\n%{http_code}',
      `https://${servername}:${u.port}${u.pathname}`,
    ]);
    if (r.code !== 0) throw new Error(`curl ${r.code}: ${r.stderr.trim()}`);
    const nl = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
  };
}

/** The PKI `mammatus ca init` makes, laid out as the CA files (keys 0600). */
export async function caInitPki(dir: string): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const root = await makeRoot();
  const inter = await makeIntermediate(root);
  const at = (f: string) => path.join(dir, f);
  writeFileSync(at('root.crt'), root.certPem);
  writeFileSync(at('root.key'), root.keyPem, { mode: 0o600 });
  writeFileSync(at('intermediate.crt'), inter.certPem);
  writeFileSync(at('intermediate.key'), inter.keyPem, { mode: 0o600 });
  return pkiFiles(dir);
}

/**
 * A temp dir (0755: dnsmasq drops to nobody and caddy runs as caddy, both must reach their files
 * below it), a bed and `ca init`'s PKI in `<tmp>/pki`.
 */
export async function caBed(prefix: string): Promise<{ tmp: string; bed: GatewayBed; pki: TestPki }> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  chmodSync(tmp, 0o755);
  const bed = await buildGatewayBed({ prefix: prefix.slice(0, 2) });
  const pki = await caInitPki(path.join(tmp, 'pki'));
  chmodSync(pki.dir, 0o711);
  return { tmp, bed, pki };
}

/** An alive Serf member with one role. */
export const member = (name: string, addr: string, role: string): Member => ({ name, addr, port: 7946, status: 'alive', tags: { role } });

/** `roles.gateway` for the bed's gateway namespace, every path below `dir`, plus `extra` keys. */
export function gatewayBedConfig(bed: GatewayBed, dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const p = (f: string) => path.join(dir, f);
  return {
    lan: { interface: bed.ifaces.gwLan, address: `${bed.addrs.gwLan}/24` },
    wan: { interface: bed.ifaces.gwWan },
    upstream_dns: [bed.addrs.up],
    pxe: { enabled: false },
    tftp: { enabled: false },
    boot: { enabled: false },
    paths: {
      dnsmasq_conf: p('dnsmasq.conf'),
      hosts_dir: p('hosts.d'),
      leases: p('leases/dnsmasq.leases'),
      iptables: p('iptables.rules'),
      hop_limit: p('hop-limit.rules'),
      sysctl: p('sysctl.conf'),
      lease_hook: p('lease-hook'),
      dhcp_hosts_dir: p('dhcp-hosts.d'),
      members: p('members'),
      left_out: p('left-out'),
    },
    ...extra,
  };
}

/** Writes the gateway's rendered files (from `gatewayBedConfig(bed, dir)`) and runs its dnsmasq in `gw`. */
export async function startGatewayDns(bed: GatewayBed, files: FileOps, rendered: readonly RenderedFile[], dir: string): Promise<void> {
  const p = (f: string) => path.join(dir, f);
  for (const f of rendered) await files.write(f.path, f.content, f.mode);
  for (const d of ['', 'hosts.d', 'dhcp-hosts.d', 'leases']) mkdirSync(p(d), { recursive: true, mode: 0o755 });
  chmodSync(p('leases'), 0o777);
  writeFileSync(p('lease-hook'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const dnsmasq = bed.spawn('gw', ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${p('dnsmasq.conf')}`]);
  await waitForFile(dnsmasq.logFile, /started, version/, 10_000);
}

/** Makes `namespaces` resolve through the gateway (`ip netns exec` mounts /etc/netns/<ns>/resolv.conf); the dirs to remove after. */
export function resolveThroughGateway(bed: GatewayBed, namespaces: readonly NsKey[]): string[] {
  return namespaces.map((ns) => {
    const etc = path.join('/etc/netns', bed.ns[ns]);
    mkdirSync(etc, { recursive: true });
    writeFileSync(path.join(etc, 'resolv.conf'), `nameserver ${bed.addrs.gwLan}\n`);
    return etc;
  });
}

/** The cluster CA on `ctl` (ctl-1): our renderer's caddy config, our supervisor, Debian's caddy, files below `dir`. */
export async function startClusterCa(
  bed: GatewayBed,
  dir: string,
  pki: TestPki,
  files: FileOps,
  log: Logger,
): Promise<{ ca: CaConfig; backend: CaBackend }> {
  const ca = parseControllerConfig({
    ca: {
      backend: 'caddy',
      paths: {
        root_cert: pki.rootCert,
        intermediate_cert: pki.intermediateCert,
        intermediate_key: pki.intermediateKey,
        config: path.join(dir, 'ca-etc'),
        data_dir: path.join(dir, 'ca-data'),
      },
    },
  }).ca;
  await files.write(caConfigPaths(ca).caddy, renderCaddyConfig('ctl-1', ca), 0o644);
  chmodSync(ca.paths.config, 0o755);
  const spawn = await spawnIn(bed, 'ctl');
  const backend = new CaBackend({ spawn, run: buildRun(), files, log, probe: probeIn(bed, pki.rootCert), healthTimeoutMs: 30_000 });
  await backend.apply(ca);
  return { ca, backend };
}
