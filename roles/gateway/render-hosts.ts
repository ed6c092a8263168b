/**
 * Renders dnsmasq's `hostsdir`: one hosts-format file per name, so a member joining or leaving
 * changes one file and dnsmasq picks it up by inotify without a restart. The files
 * must appear atomically under their final name; the framework's writer renames a dot-temp file,
 * and dnsmasq skips dot-files.
 */
import { isIPv6 } from 'node:net';
import type { Member } from '../../core/contracts.js';
import type { RenderedFile } from '../types.js';
import { MANAGED_HEADER, type GatewayConfig } from './config.js';
import { isDnsLabel } from '../../core/net.js';
import { aliveWithRole } from '../../core/members.js';
import { isIPv4 } from '../../core/net.js';

/** A registered instance's DNS name and address (from the instance registry). */
export interface InstanceName {
  readonly name: string;
  readonly ip: string;
}

/** The cluster CA's name (docs/ca.md): every alive controller's address answers it. */
export const CA_LABEL = 'ca';

/**
 * One file per alive Serf member and per registered instance, at `<hosts_dir>/<name>`, holding
 * `IP name.<domain> name`. Names are lowercased; a name that is not a DNS label (`bad_name!`), the
 * reserved `gateway` (already a host-record) and `ca`, an address that is not an IP, or a name already taken
 * (members first, then instances, each in name order) is skipped. Plus `<hosts_dir>/ca`: one line
 * per alive controller (`ca.<domain>`, the CA backends' name), absent without one. Mode 0644;
 * sorted by path.
 */
export function renderHostsFiles(cfg: GatewayConfig, members: readonly Member[], instances: readonly InstanceName[] = []): RenderedFile[] {
  const alive = members.filter((m) => m.status === 'alive').map((m) => ({ name: m.name, ip: m.addr }));
  const taken = new Set<string>(['gateway', CA_LABEL]);
  const files: RenderedFile[] = [];
  // Controllers only once admitted as such (actsAs); a name resolving to several addresses is what
  // dnsmasq answers with all of them, so a client tries another controller when one is down.
  const cas = aliveWithRole(members, 'controller').filter((m) => isIPv4(m.addr) || isIPv6(m.addr));
  if (cas.length > 0) {
    const lines = cas.map((m) => `${m.addr} ${CA_LABEL}.${cfg.domain} ${CA_LABEL}\n`);
    files.push({ path: `${cfg.paths.hosts_dir}/${CA_LABEL}`, content: MANAGED_HEADER + lines.join(''), mode: 0o644 });
  }
  for (const entry of [...alive.sort(byName), ...[...instances].sort(byName)]) {
    const label = entry.name.toLowerCase();
    // Guards the file name as much as the DNS name: a label cannot hold '/', '.' or a newline.
    if (!isDnsLabel(label) || taken.has(label) || !(isIPv4(entry.ip) || isIPv6(entry.ip))) continue;
    taken.add(label);
    files.push({
      path: `${cfg.paths.hosts_dir}/${label}`,
      content: `${MANAGED_HEADER}${entry.ip} ${label}.${cfg.domain} ${label}\n`,
      mode: 0o644,
    });
  }
  return files.sort((a, b) => compare(a.path, b.path));
}

// Code-unit order, not localeCompare: the output must not depend on the host's locale.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return compare(a.name, b.name);
}
