/**
 * The volume API of storage and compute nodes, answered by the controllers (every controller, one
 * queue group). A node publishes only to `mammatus.volumes.node.<its name>` (its NATS permissions
 * allow no other), so the server proves who asks; it can read no bucket itself. What it may do:
 *
 * - `list`: the volumes it serves (`node` is it) and those attached to instances on it
 *   (`attached.node` is it), with their CHAP credentials; no other volume, so no node learns
 *   another's secrets.
 * - `observed`: report what it serves, for a volume whose `node` is it (VolumeRegistry.report;
 *   `absent` of a `deleting` volume removes the record).
 *
 * The controllers also watch the bucket and publish an empty message on
 * `mammatus.volumes.changed.<node>` to each node a changed volume concerns (before and after the
 * change), the only subject besides its inbox a node may subscribe to for volumes.
 */
import { isIPv4 } from 'node:net';
import { KvWatchInclude } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { VOLUME_CHANGED_SUBJECT, VOLUME_NODE_SUBJECT } from '../../core/trust.js';
import type { VolumeObserved, VolumeRecord } from '../../core/volume-record.js';
import { parseVolumeEntry, VolumeRegistry } from './volumes.js';

/** One request of a node. */
export type VolumeNodeRequest =
  { readonly op: 'list' } | { readonly op: 'observed'; readonly name: string; readonly observed: VolumeObserved };

/** The answer: the volumes (`list`), `ok` (with `gone` when the record no longer exists), or an error. */
export type VolumeNodeAnswer =
  { readonly ok: true; readonly volumes?: readonly VolumeRecord[]; readonly gone?: true } | { readonly error: string };

/** A request larger than this is refused unread. */
export const MAX_VOLUME_REQUEST_BYTES = 16 * 1024;
const QUEUE = 'mammatus-volume-writes';

/** A request that breaks the rules: answered with an error, nothing written. */
class RefusedRequest extends Error {}

/** Parses and checks one request's shape; throws `RefusedRequest`. */
export function parseVolumeRequest(data: Uint8Array): VolumeNodeRequest {
  if (data.length > MAX_VOLUME_REQUEST_BYTES) throw new RefusedRequest(`request larger than ${MAX_VOLUME_REQUEST_BYTES} bytes`);
  let w: Partial<Record<string, unknown>>;
  try {
    w = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<Record<string, unknown>>;
  } catch {
    throw new RefusedRequest('request is not JSON');
  }
  if (typeof w !== 'object' || w === null) throw new RefusedRequest('request is not an object');
  if (w.op === 'list') return { op: 'list' };
  if (w.op === 'observed' && typeof w.name === 'string' && typeof w.observed === 'object' && w.observed !== null) {
    const o = w.observed as Partial<Record<string, unknown>>;
    if (o.state !== 'serving' && o.state !== 'error' && o.state !== 'absent')
      throw new RefusedRequest('observed.state: serving, error or absent');
    if (o.error !== undefined && typeof o.error !== 'string') throw new RefusedRequest('observed.error must be a string');
    if (o.lun !== undefined && !(Number.isInteger(o.lun) && (o.lun as number) >= 0 && (o.lun as number) <= 255))
      throw new RefusedRequest('observed.lun must be 0–255');
    if (o.portal !== undefined && !(typeof o.portal === 'string' && isIPv4(o.portal)))
      throw new RefusedRequest('observed.portal must be an IPv4 address');
    const observed: VolumeObserved = {
      state: o.state,
      ...(o.error !== undefined ? { error: o.error } : {}),
      ...(o.lun !== undefined ? { lun: o.lun as number } : {}),
      ...(o.portal !== undefined ? { portal: o.portal } : {}),
    };
    return { op: 'observed', name: w.name, observed };
  }
  throw new RefusedRequest('unknown op (list, observed)');
}

/** The volumes `node` may see: those it serves and those attached to its instances. */
export function volumesOfNode(all: readonly VolumeRecord[], node: string): VolumeRecord[] {
  return all.filter((v) => v.node === node || v.attached?.node === node);
}

/** Answers one request of `node`. */
export async function applyVolumeRequest(registry: VolumeRegistry, node: string, req: VolumeNodeRequest): Promise<VolumeNodeAnswer> {
  try {
    if (req.op === 'list') return { ok: true, volumes: volumesOfNode(await registry.list(), node) };
    return (await registry.report(req.name, node, req.observed)) === 'gone' ? { ok: true, gone: true } : { ok: true };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/** The nodes a volume concerns: its storage node and the compute node it is attached to. */
function nodesOf(v: VolumeRecord | undefined): string[] {
  return v ? [v.node, ...(v.attached ? [v.attached.node] : [])] : [];
}

/**
 * Answers the nodes' volume requests on `nc` and tells nodes about changes, until `close`. The
 * bucket is opened (created, with `open`) at the first request and by the change watch, again
 * after a failure: JetStream may not be ready when this starts.
 */
export function serveVolumeRequests(nc: NatsConnection, open: () => Promise<VolumeRegistry>, log: Logger): { close(): void } {
  let registry: Promise<VolumeRegistry> | undefined;
  const prefix = `${VOLUME_NODE_SUBJECT}.`;
  const sub: Subscription = nc.subscribe(`${prefix}*`, { queue: QUEUE });
  void (async () => {
    for await (const msg of sub) {
      const node = msg.subject.slice(prefix.length);
      let answer: VolumeNodeAnswer;
      try {
        answer = await applyVolumeRequest(await (registry ??= open()), node, parseVolumeRequest(msg.data));
      } catch (err) {
        if (!(err instanceof RefusedRequest)) registry = undefined;
        answer = { error: errorMessage(err) };
      }
      if ('error' in answer) log.warn({ node, error: answer.error }, 'volume request of a node refused');
      msg.respond(JSON.stringify(answer));
    }
  })().catch((err: unknown) => log.error({ err }, 'volume API stopped'));

  let stopped = false;
  let stopWatch: (() => void) | undefined;
  const known = new Map<string, VolumeRecord | undefined>();
  const watch = async (): Promise<void> => {
    while (!stopped && !nc.isClosed()) {
      try {
        const kv = (await (registry ??= open())).kv;
        const watcher = await kv.watch({ key: 'volume.>', include: KvWatchInclude.LastValue });
        stopWatch = () => watcher.stop();
        for await (const entry of watcher) {
          const next = parseVolumeEntry(entry);
          const nodes = new Set([...nodesOf(known.get(entry.key)), ...nodesOf(next)]);
          if (next) known.set(entry.key, next);
          else known.delete(entry.key);
          for (const n of nodes) if (/^[A-Za-z0-9_.-]+$/.test(n)) nc.publish(`${VOLUME_CHANGED_SUBJECT}.${n}`);
        }
      } catch (err) {
        registry = undefined;
        if (!stopped) log.warn({ err }, 'volume change watch failed; retrying');
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void watch().catch((err: unknown) => log.error({ err }, 'volume change watch stopped'));
  return {
    close() {
      stopped = true;
      stopWatch?.();
      sub.unsubscribe();
    },
  };
}

/** Sends one request for `node` and returns the controllers' answer; throws on a refusal. */
export async function requestVolumes(
  nc: NatsConnection,
  node: string,
  req: VolumeNodeRequest,
  timeoutMs = 5000,
): Promise<Extract<VolumeNodeAnswer, { ok: true }>> {
  const msg = await nc.request(`${VOLUME_NODE_SUBJECT}.${node}`, JSON.stringify(req), { timeout: timeoutMs });
  const answer = JSON.parse(msg.string()) as VolumeNodeAnswer;
  if ('error' in answer) throw new Error(`the volume registry refused: ${answer.error}`);
  return answer;
}
