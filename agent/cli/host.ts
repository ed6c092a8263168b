/**
 * `mammatus host register|list|show|rm|rejoin`: planned bare-metal hosts (issue 19, docs/baremetal.md).
 * A host is recorded with its MAC, the roles it joins with and its firmware; the gateway boots it,
 * the metadata service seeds it, and it exchanges its one-time join secret at the controllers for
 * its credentials. These commands only write records; `host list` reads each host's progress from
 * the registry and whether it is a live member from Serf.
 */
import { readFile } from 'node:fs/promises';
import { HOST_ARCHES, isInstallDisk, lastStep, type HostArch } from '../../core/host-record.js';
import { normalizeMac } from '../../core/instance-record.js';
import { parseRoleTag, type RoleName } from '../../core/members.js';
import { parseDuration } from '../../core/duration.js';
import { errorMessage } from '../../core/errors.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { checkNodeName } from '../../core/trust.js';
import { Hosts, isHost } from '../../src/hosts/hosts.js';
import { Roster } from '../../src/trust/roster.js';
import { JoinSecrets } from '../../src/hosts/joins.js';
import { connect, formatTable, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { withTrust } from './credentials.js';
import { hostProgress } from './host-progress.js';
import { memberStatuses, withRegistry, type InstanceOptions } from './instance.js';
import { trustVerdict } from './status.js';

/** `host register` flags. */
export interface HostRegisterOptions extends InstanceOptions {
  mac: string;
  role: string;
  arch?: string;
  sshKey?: string[];
  installDisk?: string;
  /** How long the join secret is accepted (Go duration); default 24h. */
  expires?: string;
}

/** Checks the flags of `host register`; @throws UsageError */
export function parseHostFlags(o: HostRegisterOptions): { mac: string; roles: RoleName[]; arch: HostArch; ttlMs: number } {
  let mac: string;
  try {
    mac = normalizeMac(o.mac);
  } catch (err) {
    throw new UsageError(`--mac: ${errorMessage(err)}`);
  }
  const parsed = parseRoleTag(o.role);
  if (parsed.unknown.length) throw new UsageError(`--role: unknown role ${parsed.unknown.join(', ')}`);
  if (!parsed.roles.length) throw new UsageError('--role: name one or more of gateway, compute, storage, controller');
  const arch = (o.arch ?? 'bios') as HostArch;
  if (!HOST_ARCHES.includes(arch)) throw new UsageError(`--arch: one of ${HOST_ARCHES.join(', ')}`);
  if (o.installDisk !== undefined && !isInstallDisk(o.installDisk))
    throw new UsageError('--install-disk: a whole disk such as /dev/sda, /dev/vda, /dev/nvme0n1 or /dev/disk/by-id/…');
  let ttlMs = 24 * 3600_000;
  if (o.expires !== undefined) {
    try {
      ttlMs = parseDuration(o.expires);
    } catch (err) {
      throw new UsageError(`--expires: ${errorMessage(err)}`);
    }
    if (ttlMs < 60_000) throw new UsageError('--expires: at least 1m');
  }
  return { mac, roles: parsed.roles, arch, ttlMs };
}

async function readKeys(files: readonly string[]): Promise<string[]> {
  const texts = await Promise.all(
    files.map((f) =>
      readFile(f, 'utf8').catch((err: unknown) => {
        throw new UsageError(`--ssh-key ${f}: ${errorMessage(err)}`);
      }),
    ),
  );
  return texts.flatMap((t) =>
    t
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
}

function withHosts(
  g: GlobalOptions,
  o: InstanceOptions,
  io: CliIo,
  body: (hosts: Hosts, nc: NatsConnection) => Promise<number>,
): Promise<number> {
  return withRegistry(g, o, io, async (registry, nc) => body(new Hosts(registry, await JoinSecrets.open(nc)), nc));
}

/**
 * Why `name` cannot be planned, or undefined when it is free: a node admitted under it (a host's
 * join never replaces another node's roster entry, so the host could never join) or an alive Serf
 * member of that name (`members`: undefined when Serf could not be asked). A roster not created yet
 * holds nobody.
 */
export async function nameInUse(
  nc: NatsConnection,
  name: string,
  members: ReadonlyMap<string, string> | undefined,
): Promise<string | undefined> {
  try {
    checkNodeName(name);
  } catch {
    return undefined; // the registry refuses the name with its own words
  }
  let admitted = false;
  try {
    admitted = (await (await Roster.bind(nc)).get(name)) !== undefined;
  } catch (err) {
    if (errorMessage(err) !== 'stream not found') throw new Error(`cannot read the roster: ${errorMessage(err)}`, { cause: err });
  }
  if (admitted) return `a node named ${name} is already admitted: choose another name or mammatus node remove ${name}`;
  if (members?.get(name) === 'alive') return `${name} is an alive Serf member: choose another name`;
  return undefined;
}

/** `host register NAME --mac MAC --role R[,R] …` */
export async function registerCommand(g: GlobalOptions, name: string, o: HostRegisterOptions, io: CliIo): Promise<number> {
  const flags = parseHostFlags(o);
  const sshKeys = await readKeys(o.sshKey ?? []);
  return withHosts(g, o, io, async (hosts, nc) => {
    const taken = await nameInUse(nc, name, await memberStatuses(g));
    if (taken) {
      io.err(`error: ${taken}`);
      return 1;
    }
    const r = await hosts.register({
      name,
      mac: flags.mac,
      roles: flags.roles,
      arch: flags.arch,
      ttlMs: flags.ttlMs,
      ssh_keys: sshKeys,
      ...(o.installDisk ? { install_disk: o.installDisk } : {}),
    });
    if (o.json) io.out(JSON.stringify(r, null, 2));
    else
      io.out(
        `registered host ${r.name} (${r.id}), MAC ${r.macs[0]}, roles ${flags.roles.join(',')}, ${flags.arch}` +
          `${o.installDisk ? `, installs to ${o.installDisk}` : ', diskless'}; it joins when it PXE-boots before ${r.host!.join_expires_at}`,
      );
    return 0;
  });
}

/**
 * Each member's Serf status for {@link hostProgress}, with an alive member whose trust tag does not
 * verify (yet) reported as `alive, untrusted`: a joined host's Serf is alive a little before its
 * agent has started and set the tag, and a member named like the host is not proof that it joined.
 * Undefined when Serf cannot be asked.
 */
export async function hostMembers(g: GlobalOptions): Promise<Map<string, string> | undefined> {
  try {
    const client = await connect(g);
    try {
      const members = await withTrust(g, await client.members());
      // `unknown`: this CLI knows no authority to check with; Serf's word is all there is then.
      const trusted = (m: (typeof members)[number]) => trustVerdict(m) !== 'untrusted';
      return new Map(members.map((m) => [m.name, m.status === 'alive' && !trusted(m) ? 'alive, untrusted' : m.status]));
    } finally {
      client.close();
    }
  } catch {
    return undefined;
  }
}

/** `host list` */
export function listCommand(g: GlobalOptions, o: InstanceOptions, io: CliIo): Promise<number> {
  return withHosts(g, o, io, async (hosts) => {
    const list = await hosts.list();
    const members = await hostMembers(g);
    if (o.json) {
      io.out(
        JSON.stringify(
          list.map((r) => ({ ...r, progress: hostProgress(r, members) })),
          null,
          2,
        ),
      );
      return 0;
    }
    const rows = [['NAME', 'MAC', 'ROLES', 'ARCH', 'DISK', 'PROGRESS', 'SINCE']];
    for (const r of list) {
      const last = lastStep(r.host);
      rows.push([
        r.name,
        r.macs[0],
        r.host.roles.join(','),
        r.host.arch,
        r.host.install_disk ?? '-',
        hostProgress(r, members),
        last?.at ?? '-',
      ]);
    }
    for (const line of formatTable(rows)) io.out(line);
    return 0;
  });
}

/** `host show NAME` */
export function showCommand(g: GlobalOptions, name: string, o: InstanceOptions, io: CliIo): Promise<number> {
  return withRegistry(g, o, io, async (registry) => {
    const r = await registry.get(name);
    if (!isHost(r)) {
      io.err(`error: ${r.name} is an instance, not a planned host (mammatus instance show)`);
      return 1;
    }
    const members = await hostMembers(g);
    if (o.json) {
      io.out(JSON.stringify({ ...r, progress: hostProgress(r, members) }, null, 2));
      return 0;
    }
    io.out(`${r.name} (${r.id}) ${hostProgress(r, members)}`);
    io.out(
      `  MAC ${r.macs[0]}, roles ${r.host.roles.join(',')}, ${r.host.arch}, ${r.host.install_disk ? `installs to ${r.host.install_disk}` : 'diskless'}`,
    );
    io.out(`  join secret accepted until ${r.host.join_expires_at}`);
    for (const [step, at] of Object.entries(r.host.progress)) io.out(`  ${step.padEnd(10)} ${at}`);
    return 0;
  });
}

/** `host rm NAME`: the record and its secret (the machine, if it joined, stays a member until `node remove`). */
export function rmCommand(g: GlobalOptions, name: string, o: InstanceOptions, io: CliIo): Promise<number> {
  return withHosts(g, o, io, async (hosts) => {
    const r = await hosts.remove(name);
    io.out(o.json ? JSON.stringify(r, null, 2) : `removed host ${r.name} (${r.id})`);
    return 0;
  });
}

/** `host rejoin NAME [--expires D]`: a new join secret, progress back to registered. */
export function rejoinCommand(g: GlobalOptions, name: string, o: InstanceOptions & { expires?: string }, io: CliIo): Promise<number> {
  let ttlMs: number | undefined;
  if (o.expires !== undefined) ttlMs = parseHostFlags({ mac: '02:00:00:00:00:01', role: 'compute', expires: o.expires }).ttlMs;
  return withHosts(g, o, io, async (hosts) => {
    const r = await hosts.rejoin(name, ttlMs);
    io.out(o.json ? JSON.stringify(r, null, 2) : `host ${r.name} may join again until ${r.host!.join_expires_at}`);
    return 0;
  });
}
