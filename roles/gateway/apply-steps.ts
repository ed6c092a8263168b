/**
 * The gateway's apply steps beside its hooks (index.ts): the IPv4 forwarding sysctl, the DHCP
 * leases an apply left stale, the log lines of what the left-out reports changed, the directories
 * dnsmasq needs, and the DNS probe after an apply.
 */
import path from 'node:path';
import { promises as dns } from 'node:dns';
import type { Run } from '../../core/contracts.js';
import type { ApplyContext } from '../types.js';
import type { GatewayConfig } from './config.js';
import { parseLeases } from './leases.js';
import { leasesToRelease, parseMembersFile } from './release.js';
import { lanAddressOf, parseDhcpHosts, parseNotes, planInstances, type DhcpHost } from './render-instances.js';
import { lbLeftOutPath, parseLbLeftOut } from './lb/render-lb.js';

/** Checks that dnsmasq at `server` answers `name` (throws otherwise). */
export type DnsProbe = (server: string, name: string) => Promise<void>;

/** The IPv4 forwarding sysctl, and the value it had before the role set it. */
export class Forwarding {
  private before: string | undefined;

  /** Applies the sysctl file; without it (rollback, role removed) puts the old value back. */
  async apply(run: Run, file: string, exists: boolean): Promise<void> {
    if (exists) {
      this.before ??= (await run('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim();
      await run('sysctl', ['-q', '-p', file]);
    } else if (this.before !== undefined) {
      await run('sysctl', ['-q', '-w', `net.ipv4.ip_forward=${this.before}`]);
    }
  }
}

/**
 * Logs what changed in the balancers the gateway leaves out (the `lb-left-out` report's diff): one
 * warning per balancer newly left out, or left out for another reason, naming it and why.
 */
export async function logLbLeftOut(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
  const file = lbLeftOutPath(cfg);
  const before = new Map(parseLbLeftOut(ctx.prior(file)).map((l) => [l.name, l.reason]));
  const now = parseLbLeftOut(await ctx.files.read(file).catch(() => undefined));
  for (const l of now) {
    if (before.get(l.name) !== l.reason)
      ctx.log.warn({ balancer: l.name, reason: l.reason }, `load balancer ${l.name} left out: ${l.reason}`);
  }
  for (const name of before.keys()) {
    if (!now.some((l) => l.name === name)) ctx.log.info({ balancer: name }, `load balancer ${name} no longer left out (served, or gone)`);
  }
}

/**
 * Gives dnsmasq back the leases this apply left stale (release.ts): a removed, renamed or
 * re-addressed instance's, and those named after members that are gone. A release that fails is
 * logged, never fatal: the new config is right either way, and the lease runs out on its own.
 */
export async function releaseStaleLeases(ctx: ApplyContext, cfg: GatewayConfig): Promise<void> {
  const before = ctx.changed
    .filter((p) => p.startsWith(`${cfg.paths.dhcp_hosts_dir}/`))
    .flatMap((p) => parseDhcpHosts(ctx.prior(p) ?? '') ?? []);
  const now: DhcpHost[] = planInstances(cfg, ctx.desired.members, ctx.desired.instances ?? []).served.map((i) => {
    const ip = lanAddressOf(cfg, i);
    return { name: i.name, macs: i.macs, ...(ip ? { ip } : {}) };
  });
  const membersBefore = ctx.changed.includes(cfg.paths.members) ? parseMembersFile(ctx.prior(cfg.paths.members)) : [];
  const leases = parseLeases((await ctx.files.read(cfg.paths.leases).catch(() => undefined)) ?? '');
  for (const r of leasesToRelease({ leases, before, now, membersBefore, membersNow: ctx.desired.members })) {
    try {
      await ctx.run('dhcp_release', [cfg.lan.interface, r.ip, r.mac], { timeoutMs: 5000 });
      ctx.log.info({ ip: r.ip, mac: r.mac, name: r.name, why: r.why }, 'DHCP lease released');
    } catch (err) {
      ctx.log.warn(
        { ip: r.ip, mac: r.mac, why: r.why, err },
        'could not release a DHCP lease (is dnsmasq-utils installed?); it runs out on its own',
      );
    }
  }
}

/** Logs what changed in the instances the gateway leaves out (the left-out file's diff). */
export function logNotes(ctx: ApplyContext, cfg: GatewayConfig): void {
  const key = (n: { name: string; served: boolean; reason: string }) => `${n.name}|${n.served}|${n.reason}`;
  const before = new Map(parseNotes(ctx.prior(cfg.paths.left_out)).map((n) => [n.name, n]));
  const now = planInstances(cfg, ctx.desired.members, ctx.desired.instances ?? []).notes;
  for (const n of now) {
    const old = before.get(n.name);
    if (old && key(old) === key(n)) continue;
    ctx.log.warn(
      { instance: n.name, reason: n.reason },
      n.served ? 'registered instance served without its address' : 'registered instance left out',
    );
  }
  for (const name of before.keys()) {
    if (!now.some((n) => n.name === name)) ctx.log.info({ instance: name }, 'registered instance served as registered again (or gone)');
  }
}

/** The gateway's LAN address without its prefix length. */
export function lanAddress(cfg: GatewayConfig): string {
  return cfg.lan.address.split('/')[0];
}

/** Directories dnsmasq needs before it starts, and the iPXE boot files owned by the TFTP user. */
export async function prepareDirs(run: Run, cfg: GatewayConfig): Promise<void> {
  await run('install', ['-d', '-m', '0755', cfg.paths.hosts_dir, cfg.paths.dhcp_hosts_dir, path.dirname(cfg.paths.leases)]);
  if (!cfg.tftp.enabled) return;
  await run('install', ['-d', '-m', '0755', cfg.tftp.root]);
  // tftp-secure serves only files owned by dnsmasq's user: install them with that owner.
  for (const file of [cfg.pxe.bios, cfg.pxe.efi64, cfg.pxe.arm64]) {
    const src = path.join(cfg.pxe.ipxe_dir, file);
    await run('install', ['-o', cfg.tftp.user, '-m', '0644', src, path.join(cfg.tftp.root, file)]).catch(() => undefined);
  }
}

/** Asks dnsmasq on `server` for `name`; retries while a restarted dnsmasq comes up. */
export async function probeDns(server: string, name: string): Promise<void> {
  const resolver = new dns.Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([server]);
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const answers = await resolver.resolve4(name);
      if (answers.length > 0) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
  }
  throw new Error(`DNS probe: ${name} not answered by ${server}: ${(last as Error)?.message ?? 'no address'}`);
}
