/**
 * `mammatus instance register|list|show|rm`: the instance registry from the command line. Each
 * subcommand opens the registry over NATS (`--nats`, else the controllers Serf knows, else the local
 * server) and closes the connection before it returns.
 */
import { readFile } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { InvalidInstanceError, type InstanceRecord } from '../../core/instance-record.js';
import { InstanceNotFoundError, InstanceRegistry, RegistryConflictError } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { aliveWithRole } from '../../core/members.js';
import { connect, formatTable, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { cliCredentials, withTrust } from './credentials.js';
import { describeNote, notesByInstance, notesForCandidate, notesForInstance, type GatewayNote } from './reservations.js';
import { errorMessage } from '../../core/errors.js';

/** Flags every instance subcommand takes. */
export interface InstanceOptions {
  nats?: string;
  json?: boolean;
}

/** `register` flags. */
export interface RegisterOptions extends InstanceOptions {
  mac: string[];
  ip?: string[];
  sshKey?: string[];
  userData?: string;
  node?: string;
  tag?: Record<string, string>;
}

/** The NATS client port controllers listen on (docs/controller.md); `--nats` covers other setups. */
const NATS_PORT = 4222;

/**
 * Where the registry is: `--nats`, else every alive controller Serf knows (the client fails over
 * between them), else the local server.
 */
export async function resolveNatsServers(g: GlobalOptions, flag: string | undefined): Promise<string[]> {
  if (flag) return flag.split(',').map((s) => s.trim());
  try {
    const client = await connect(g);
    try {
      const members = await client.members();
      const controllers = aliveWithRole(await withTrust(g, members), 'controller');
      if (controllers.length) return controllers.map((m) => `nats://${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${NATS_PORT}`);
    } finally {
      client.close();
    }
  } catch {
    // No serf agent here: fall through to the local server.
  }
  return [`nats://127.0.0.1:${NATS_PORT}`];
}

/** Connects to the cluster's NATS (`--nats`, else the controllers Serf knows), runs `body`, closes; 1 when unreachable. */
export async function withNats(
  g: GlobalOptions,
  nats: string | undefined,
  io: CliIo,
  body: (nc: NatsConnection) => Promise<number>,
): Promise<number> {
  const servers = await resolveNatsServers(g, nats);
  let nc: NatsConnection;
  try {
    nc = await connectNats(servers, { name: 'mammatus-cli', timeoutMs: 5000, credentials: await cliCredentials(g) });
  } catch (err) {
    io.err(`error: cannot reach NATS at ${servers.join(', ')}: ${errorMessage(err)}`);
    return 1;
  }
  try {
    return await body(nc);
  } finally {
    await nc.close();
  }
}

/** Opens the registry, runs `body`, closes; maps registry errors to exit codes and messages. */
export function withRegistry(
  g: GlobalOptions,
  opts: InstanceOptions,
  io: CliIo,
  body: (r: InstanceRegistry, nc: NatsConnection) => Promise<number>,
): Promise<number> {
  return withNats(g, opts.nats, io, async (nc) => {
    try {
      return await body(await InstanceRegistry.open(nc), nc);
    } catch (err) {
      if (err instanceof InvalidInstanceError) throw new UsageError(err.message);
      if (err instanceof RegistryConflictError || err instanceof InstanceNotFoundError) {
        io.err(`error: ${err.message}`);
        return 1;
      }
      throw err;
    }
  });
}

/** `instance register NAME --mac MAC …` */
export async function registerCommand(g: GlobalOptions, name: string, opts: RegisterOptions, io: CliIo): Promise<number> {
  if (!opts.mac?.length) throw new UsageError("--mac is required (the MAC of the instance's primary NIC)");
  const sshKeys = (await Promise.all((opts.sshKey ?? []).map((f) => readText(f, '--ssh-key')))).flatMap((text) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
  const userData = opts.userData ? await readBytes(opts.userData) : undefined;
  return withRegistry(g, opts, io, async (registry) => {
    const record = await registry.register({
      name,
      macs: opts.mac,
      ips: opts.ip ?? [],
      ssh_keys: sshKeys,
      ...(userData ? { user_data: userData } : {}),
      ...(opts.node ? { node: opts.node } : {}),
      tags: opts.tag ?? {},
    });
    io.out(opts.json ? JSON.stringify(record, null, 2) : `registered ${record.name} as ${record.id}`);
    await warnUnserved(g, record, io);
    return 0;
  });
}

/**
 * Tells the operator at once when a gateway will not serve what was just recorded (its name, MAC
 * or address is taken by a member, the gateway or a configured reservation). The record stays:
 * the conflict may be resolved on the other side.
 */
export async function warnUnserved(g: GlobalOptions, r: InstanceRecord, io: CliIo): Promise<void> {
  for (const n of await notesForCandidate(g, { name: r.name, macs: r.macs, ips: r.ips })) {
    if (n.reason) io.err(`warning: ${describeNote(r.name, n)}`);
  }
}

/**
 * What an instance is really doing, for the STATUS column: its compute node's last word
 * (`observed`), unless Serf says that node is gone or not alive (then its word is stale).
 * `-` for hosts on no compute node (PXE hosts), `pending` before the node wrote anything.
 * `members` is undefined when Serf could not be asked.
 */
export function liveStatus(r: InstanceRecord, members: ReadonlyMap<string, string> | undefined): string {
  if (!r.node) return '-';
  if (members) {
    const serf = members.get(r.node);
    if (serf === undefined) return 'node gone';
    if (serf !== 'alive') return `node ${serf}`;
  }
  return r.observed?.status ?? 'pending';
}

/** Serf's view of each member's status, or undefined without a reachable serf agent. */
export async function memberStatuses(g: GlobalOptions): Promise<Map<string, string> | undefined> {
  try {
    const client = await connect(g);
    try {
      return new Map((await client.members()).map((m) => [m.name, m.status]));
    } finally {
      client.close();
    }
  } catch {
    return undefined;
  }
}

/** `instance list`: the registry's records, with each one's live status and its node's errors. */
export function listCommand(g: GlobalOptions, opts: InstanceOptions, io: CliIo): Promise<number> {
  return withRegistry(g, opts, io, async (registry) => {
    // Planned bare-metal hosts have their own list (`host list`).
    const records = (await registry.list()).filter((r) => !r.host);
    const [members, notes] = await Promise.all([memberStatuses(g), notesByInstance(g)]);
    if (opts.json) {
      io.out(
        JSON.stringify(
          records.map((r) => withGatewayNotes(r, notes.get(r.name))),
          null,
          2,
        ),
      );
      return 0;
    }
    const rows = [['NAME', 'ID', 'NODE', 'MAC', 'IP', 'STATE', 'STATUS']];
    const errors: string[] = [];
    for (const r of records) {
      rows.push([r.name, r.id, r.node ?? '-', r.macs.join(','), r.ips.join(',') || '-', r.state, liveStatus(r, members)]);
      if (r.observed?.error) errors.push(`${r.name}: ${r.observed.error}`);
      for (const n of notes.get(r.name) ?? []) errors.push(describeNote(r.name, n));
    }
    for (const line of formatTable(rows)) io.out(line);
    for (const e of errors) io.out(`  ! ${e}`);
    return 0;
  });
}

/** `instance show NAME` (or id) */
export function showCommand(g: GlobalOptions, name: string, opts: InstanceOptions, io: CliIo): Promise<number> {
  return withRegistry(g, opts, io, async (registry) => {
    const r = await registry.get(name);
    const notes = await notesForInstance(g, r.name);
    if (opts.json)
      io.out(
        JSON.stringify(
          withGatewayNotes(
            r,
            notes.filter((n) => n.reason),
          ),
          null,
          2,
        ),
      );
    else for (const line of [...describe(r), ...notes.map((n) => `gateway:     ${describeNote(r.name, n)}`)]) io.out(line);
    return 0;
  });
}

/** `instance rm NAME` (or id) */
export function rmCommand(g: GlobalOptions, name: string, opts: InstanceOptions, io: CliIo): Promise<number> {
  return withRegistry(g, opts, io, async (registry) => {
    // A planned host's join secret lives in another bucket: `host rm` removes both.
    const found = await registry.get(name);
    if (found.host) {
      io.err(`error: ${found.name} is a planned host: mammatus host rm ${found.name}`);
      return 1;
    }
    const r = await registry.remove(found.id);
    io.out(opts.json ? JSON.stringify(r, null, 2) : `removed ${r.name} (${r.id})`);
    return 0;
  });
}

/**
 * A record as the JSON commands print it: with `gateways`, what the gateways that do not serve it
 * as registered say (absent when every gateway serves it, or none could be asked).
 */
function withGatewayNotes(r: InstanceRecord, notes: readonly GatewayNote[] | undefined): InstanceRecord & { gateways?: GatewayNote[] } {
  return notes?.length ? { ...r, gateways: [...notes] } : r;
}

/** A record as `key: value` lines; user-data by size only (it may be binary and long). */
function describe(r: InstanceRecord): string[] {
  const size = r.user_data ? Buffer.byteLength(r.user_data, 'base64') : 0;
  return [
    `name:        ${r.name}`,
    `id:          ${r.id}`,
    `state:       ${r.state}`,
    ...(r.node ? [`status:      ${r.observed ? `${r.observed.status} (seen ${r.observed.at})` : 'pending'}`] : []),
    ...(r.observed?.error ? [`error:       ${r.observed.error}`] : []),
    `node:        ${r.node ?? '-'}`,
    `macs:        ${r.macs.join(', ')}`,
    `ips:         ${r.ips.join(', ') || '-'}`,
    `ssh keys:    ${r.ssh_keys.length}`,
    ...r.ssh_keys.map((k) => `  ${k.length > 60 ? `${k.slice(0, 30)}…${k.slice(-25)}` : k}`),
    `user-data:   ${size ? `${size} bytes` : 'none'}`,
    `tags:        ${
      Object.entries(r.tags)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '-'
    }`,
    `created:     ${r.created_at}`,
    `updated:     ${r.updated_at}`,
  ];
}

async function readText(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  }
}

async function readBytes(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new UsageError(`--user-data ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  }
}
