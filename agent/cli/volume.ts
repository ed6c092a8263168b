/**
 * `mammatus volume create|list|show|rm|attach|detach|resize`: block volumes through the volume
 * registry (src/registry/volumes.ts). The CLI only writes records; the storage node that serves a
 * volume follows the registry, makes or removes its target and reports back (`observed`), and the
 * compute node of the instance it is attached to logs in. So these commands work from any node
 * that reaches the controllers' NATS. Exit codes as the instance commands: 0, 1 failure or
 * refusal, 2 usage error.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import { VolumeRecordError, type VolumeBacking, type VolumeRecord } from '../../core/volume-record.js';
import { VolumeConflictError, VolumeNotFoundError, VolumeRegistry } from '../../src/registry/volumes.js';
import { formatTable, parseTimeoutFlag, UsageError, type CliIo, type GlobalOptions } from './common.js';
import { memberStatuses, withNats } from './instance.js';
import { formatSize, parseSize, waitVolume } from './volume-wait.js';
import {
  backingFor,
  chooseStorageNode,
  storageUnfitReason,
  surveyStorage,
  type StorageCapacity,
  type StorageSurvey,
} from './volume-placement.js';

/** Flags every volume subcommand takes. */
export interface VolumeOptions {
  nats?: string;
  json?: boolean;
}

/** `create` flags. */
export interface VolumeCreateOptions extends VolumeOptions {
  size: string;
  node?: string;
  /** Wait until the storage node serves it (Go duration, or true = 2m). */
  wait?: string | boolean;
}

/** `rm` flags. */
export interface VolumeRmOptions extends VolumeOptions {
  wait?: string | boolean;
  /** Remove the record at once, leaving target and backing to the operator (a storage node gone for good). */
  force?: boolean;
}

/** `show` flags. */
export interface VolumeShowOptions extends VolumeOptions {
  showSecret?: boolean;
}

const DEFAULT_WAIT_MS = 120_000;

/** Opens NATS and the volume registry, runs `body`, closes; maps registry errors to exit codes. */
export function withVolumes(
  g: GlobalOptions,
  opts: VolumeOptions,
  io: CliIo,
  body: (r: VolumeRegistry, nc: NatsConnection) => Promise<number>,
): Promise<number> {
  return withNats(g, opts.nats, io, async (nc) => {
    try {
      return await body(await VolumeRegistry.open(nc), nc);
    } catch (err) {
      if (err instanceof VolumeRecordError) throw new UsageError(err.message);
      if (err instanceof VolumeConflictError || err instanceof VolumeNotFoundError) {
        io.err(`error: ${err.message}`);
        return 1;
      }
      throw err;
    }
  });
}

/** A record as the commands print it: the CHAP secret hidden unless asked for. */
export function redact(v: VolumeRecord, showSecret = false): VolumeRecord {
  return showSecret ? v : { ...v, chap: { user: v.chap.user, secret: '(hidden)' } };
}

function parseWait(wait: string | boolean | undefined): number | undefined {
  if (!wait) return undefined;
  return wait === true ? DEFAULT_WAIT_MS : parseTimeoutFlag(wait);
}

/** `volume create NAME --size SIZE [--node N] [--wait]` */
export async function createCommand(g: GlobalOptions, name: string, opts: VolumeCreateOptions, io: CliIo): Promise<number> {
  const size = parseSize(opts.size);
  const waitMs = parseWait(opts.wait);
  let survey: StorageSurvey | undefined;
  let backing: VolumeBacking | undefined;
  if (opts.node) {
    const checked = await checkNamedNode(g, opts.node, size, io);
    if (checked.why) {
      io.err(`error: cannot create on ${opts.node}: ${checked.why}`);
      return 1;
    }
    backing = backingFor(name, checked.answer);
  } else {
    try {
      survey = await surveyStorage(g);
    } catch (err) {
      io.err(`error: choosing a storage node needs the local serf agent (${errorMessage(err)}); or name one with --node`);
      return 1;
    }
  }
  return withVolumes(g, opts, io, async (registry) => {
    let node = opts.node ?? '';
    if (survey) {
      const placed = new Map<string, number>();
      for (const v of await registry.list()) if (v.state === 'creating') placed.set(v.node, (placed.get(v.node) ?? 0) + v.size_bytes);
      const chosen = chooseStorageNode(survey, size, placed);
      if ('error' in chosen) {
        io.err(`error: ${chosen.error}`);
        return 1;
      }
      node = chosen.node;
      backing = backingFor(name, chosen);
    }
    const record = await registry.create({ name, size_bytes: size, node, ...(backing ? { backing } : {}) });
    if (waitMs === undefined) {
      io.out(opts.json ? JSON.stringify(redact(record), null, 2) : `creating ${name} (${formatSize(size)}) on ${node}`);
      return 0;
    }
    io.err(`creating ${name} (${formatSize(size)}) on ${node}; waiting for it to be served`);
    const outcome = await waitVolume(registry, name, 'serving', waitMs);
    if ('error' in outcome) {
      io.err(`error: ${name}: ${outcome.error}`);
      return 1;
    }
    io.out(opts.json ? JSON.stringify(redact(outcome.record!), null, 2) : `${name} is served by ${node}`);
    return 0;
  });
}

/** How long `create --node N` waits for N's capacity answer before recording the volume anyway. */
const NAMED_NODE_TIMEOUT_MS = 2000;

/**
 * Why the named node cannot take the volume, or undefined. Without a local serf agent, or when the
 * node does not answer (its agent may not answer capacity yet), the volume is recorded anyway.
 */
async function checkNamedNode(
  g: GlobalOptions,
  node: string,
  size: number,
  io: CliIo,
): Promise<{ why?: string; answer?: StorageCapacity }> {
  let survey: StorageSurvey;
  try {
    survey = await surveyStorage(g, { node, timeoutMs: NAMED_NODE_TIMEOUT_MS });
  } catch (err) {
    io.err(`warning: cannot check ${node} with serf (${errorMessage(err)}); recording the volume anyway`);
    return {};
  }
  const answer = survey.answers.get(node);
  const why = storageUnfitReason(survey.members[0], answer, size);
  if (why === 'did not answer' || why === 'no storage capacity in its answer') {
    io.err(`warning: ${node} did not answer its capacity; it serves the volume once its agent follows the registry`);
    return {};
  }
  return why ? { why } : typeof answer === 'object' ? { answer } : {};
}

/** The OBSERVED column: the storage node's last word, unless Serf says that node is gone or down. */
export function observedStatus(v: VolumeRecord, members: ReadonlyMap<string, string> | undefined): string {
  const serf = members?.get(v.node);
  if (members && serf === undefined) return 'node gone';
  if (serf !== undefined && serf !== 'alive') return `node ${serf}`;
  return v.observed?.state ?? 'pending';
}

/** `volume list` */
export function listCommand(g: GlobalOptions, opts: VolumeOptions, io: CliIo): Promise<number> {
  return withVolumes(g, opts, io, async (registry) => {
    const volumes = await registry.list();
    if (opts.json) {
      io.out(
        JSON.stringify(
          volumes.map((v) => redact(v)),
          null,
          2,
        ),
      );
      return 0;
    }
    const members = await memberStatuses(g);
    const rows = [['NAME', 'SIZE', 'NODE', 'STATE', 'ATTACHED', 'OBSERVED']];
    const errors: string[] = [];
    for (const v of volumes) {
      const attached = v.attached ? `${v.attached.instance}${v.attached.path ? `:${v.attached.path}` : ''}` : '-';
      rows.push([v.name, formatSize(v.size_bytes), v.node, v.state, attached, observedStatus(v, members)]);
      if (v.observed?.error) errors.push(`${v.name}: ${v.observed.error}`);
    }
    for (const line of formatTable(rows)) io.out(line);
    for (const e of errors) io.out(`  ! ${e}`);
    return 0;
  });
}

/** `volume show NAME [--show-secret]` */
export function showCommand(g: GlobalOptions, name: string, opts: VolumeShowOptions, io: CliIo): Promise<number> {
  return withVolumes(g, opts, io, async (registry) => {
    const v = redact(await registry.get(name), opts.showSecret);
    if (opts.json) io.out(JSON.stringify(v, null, 2));
    else for (const line of describe(v)) io.out(line);
    return 0;
  });
}

function describe(v: VolumeRecord): string[] {
  const b = v.backing.kind === 'file' ? `file ${v.backing.path}` : `lvm ${v.backing.vg}/${v.backing.lv} (pool ${v.backing.pool})`;
  const a = v.attached;
  return [
    `name:        ${v.name}`,
    `size:        ${formatSize(v.size_bytes)} (${v.size_bytes} bytes)`,
    `node:        ${v.node}`,
    `state:       ${v.state}`,
    `observed:    ${v.observed ? `${v.observed.state}${v.observed.at ? ` (seen ${v.observed.at})` : ''}` : 'pending'}`,
    ...(v.observed?.error ? [`error:       ${v.observed.error}`] : []),
    `backing:     ${b}`,
    `attached:    ${a ? `${a.instance} on ${a.node}${a.path ? ` at ${a.path}` : ' (raw block device)'}` : '-'}`,
    ...(a ? [`initiator:   ${a.initiator}`] : []),
    `lun:         ${v.lun ?? '-'}`,
    `chap:        ${v.chap.user} / ${v.chap.secret}`,
    `created:     ${v.created_at}`,
    `updated:     ${v.updated_at}`,
  ];
}

/** `volume rm NAME [--wait] [--force]` */
export function rmCommand(g: GlobalOptions, name: string, opts: VolumeRmOptions, io: CliIo): Promise<number> {
  const waitMs = parseWait(opts.wait);
  return withVolumes(g, opts, io, async (registry) => {
    if (opts.force) {
      const gone = await registry.remove(name);
      io.out(
        opts.json
          ? JSON.stringify(redact(gone), null, 2)
          : `removed the record of ${name}; ${gone.node} keeps its target and backing until it reconciles`,
      );
      return 0;
    }
    const v = await registry.markDeleting(name);
    if (waitMs === undefined) {
      io.out(opts.json ? JSON.stringify(redact(v), null, 2) : `deleting ${name} on ${v.node}`);
      return 0;
    }
    io.err(`deleting ${name} on ${v.node}; waiting for it to be removed`);
    const outcome = await waitVolume(registry, name, 'gone', waitMs);
    if ('error' in outcome) {
      io.err(`error: ${name}: ${outcome.error}`);
      return 1;
    }
    io.out(opts.json ? JSON.stringify({ name, removed: true }) : `${name} is removed`);
    return 0;
  });
}

/** `volume resize NAME --size SIZE` (grow only) */
export function resizeCommand(g: GlobalOptions, name: string, opts: VolumeOptions & { size: string }, io: CliIo): Promise<number> {
  const size = parseSize(opts.size);
  return withVolumes(g, opts, io, async (registry) => {
    const v = await registry.resize(name, size);
    io.out(opts.json ? JSON.stringify(redact(v), null, 2) : `${name} is now ${formatSize(v.size_bytes)}`);
    return 0;
  });
}
