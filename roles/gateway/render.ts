/**
 * The gateway role's pure render: settings and membership in, every file the role owns out
 * (dnsmasq config, iptables ruleset, sysctl, one hosts file per name, the metadata proxy's config,
 * the boot server's config and iPXE stub, HAProxy's files for the registry's load balancers),
 * sorted by path.
 */
import path from 'node:path';
import type { DesiredState, RenderedFile } from '../types.js';
import { parseGatewayConfig } from './config.js';
import { renderDnsmasqConf } from './render-dnsmasq.js';
import { renderHostsFiles } from './render-hosts.js';
import { renderHopLimit, renderIptables, renderSysctl } from './render-iptables.js';
import { renderMetadataProxyConf } from './render-metadata.js';
import { renderBootServerConf, renderBootStub } from './render-boot.js';
import { instanceNames, planInstances, renderDhcpHosts, renderNotes } from './render-instances.js';
import { renderMembersFile } from './release.js';
import { ownSerfPort, renderGatewayLb } from './lb/render-lb.js';
import { renderBalancerHosts } from './lb/render-acme-hosts.js';

/**
 * Renders the gateway's files from `desired`. Throws a `GatewayConfigError` when
 * `desired.config` is invalid (the framework reports it as a render error). The ruleset is 0600:
 * it describes the network's exposure and only root needs to read it.
 */
export function renderGateway(desired: DesiredState<Record<string, unknown>>): RenderedFile[] {
  const cfg = parseGatewayConfig(desired.config);
  // The gossip port this node's Serf advertises; the firewall must let LAN members reach it.
  const serfPort = ownSerfPort(desired);
  const plan = planInstances(cfg, desired.members, desired.instances ?? []);
  const instances = plan.served;
  const lb = renderGatewayLb(cfg, desired);
  const hosts = renderHostsFiles(cfg, desired.members, instanceNames(cfg, instances));
  const files: RenderedFile[] = [
    // A Raspberry Pi among the served hosts adds its boot lines (render-dnsmasq.ts says why only then).
    { path: cfg.paths.dnsmasq_conf, content: renderDnsmasqConf(cfg, { rpi: instances.some((i) => i.rpi) }), mode: 0o644 },
    { path: cfg.paths.iptables, content: renderIptables(cfg, { serfPort, lbPorts: lb.ports, lbLanPorts: lb.lanPorts }), mode: 0o600 },
    { path: cfg.paths.sysctl, content: renderSysctl(), mode: 0o644 },
    ...hosts,
    // Never a name the cluster gives out itself, even while its machine is down: the CA's (`ca`,
    // answered only while a controller lives), the gateway's, a member's or an instance's.
    ...renderBalancerHosts(
      cfg,
      desired.balancers,
      new Set([
        'gateway',
        'ca',
        ...desired.members.map((m) => m.name),
        ...(desired.instances ?? []).map((i) => i.name),
        ...hosts.map((f) => path.basename(f.path)),
      ]),
    ),
    ...renderDhcpHosts(cfg, instances),
    { path: cfg.paths.members, content: renderMembersFile(desired.members), mode: 0o644 },
    { path: cfg.paths.left_out, content: renderNotes(plan.notes), mode: 0o644 },
    ...lb.files,
  ];
  const proxy = renderMetadataProxyConf(cfg, desired.members);
  if (proxy) {
    files.push({ path: cfg.paths.metadata_proxy, content: proxy, mode: 0o644 });
    files.push({ path: cfg.paths.hop_limit, content: renderHopLimit(cfg), mode: 0o600 });
  }
  if (cfg.boot.enabled) {
    // 0644: the boot server runs as the service user and reads both.
    files.push({ path: cfg.paths.boot_server, content: renderBootServerConf(cfg), mode: 0o644 });
    files.push({ path: cfg.paths.boot_stub, content: renderBootStub(cfg), mode: 0o644 });
  }
  // Code-unit order, not localeCompare: the output must not depend on the host's locale.
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
