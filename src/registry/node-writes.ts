/**
 * The registry's write API for compute nodes. A compute node may change only the `ips` and
 * `observed` fields of records placed on it, and remove a record of its own once it is `deleting`
 * (after it destroyed the container). Its NATS permissions let it publish to one subject only,
 * `mammatus.registry.node.<its name>`, so the node name in the subject is proven by the server;
 * every controller answers those requests (a queue group) and checks the record's `node` before it
 * writes. A compute node can write no bucket itself.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger, ObservedWrite } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { REGISTRY_NODE_SUBJECT } from '../../core/trust.js';
import { InstanceNotFoundError, InstanceRegistry } from './registry.js';

/** One request a compute node sends. */
export type NodeWrite =
  | { readonly op: 'ips'; readonly id: string; readonly ips: readonly string[] }
  | { readonly op: 'observed'; readonly id: string; readonly observed: ObservedWrite }
  | { readonly op: 'remove'; readonly id: string };

/** The answer: `ok`, `gone` (no such record: not an error for the node), or an error. */
export type NodeWriteAnswer = { readonly ok: true; readonly gone?: true } | { readonly error: string };

/** A request larger than this is refused unread (an observed error is at most 300 characters). */
export const MAX_NODE_WRITE_BYTES = 16 * 1024;

/** The queue group all controllers answer in, so each request is handled once. */
const QUEUE = 'mammatus-registry-writes';

/** A request that breaks the rules: answered with an error, nothing written. */
class RefusedWrite extends Error {}

/** Parses and checks one request's shape; throws `RefusedWrite`. */
export function parseNodeWrite(data: Uint8Array): NodeWrite {
  if (data.length > MAX_NODE_WRITE_BYTES) throw new RefusedWrite(`request larger than ${MAX_NODE_WRITE_BYTES} bytes`);
  let w: Partial<Record<string, unknown>>;
  try {
    w = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<Record<string, unknown>>;
  } catch {
    throw new RefusedWrite('request is not JSON');
  }
  if (typeof w !== 'object' || w === null || typeof w.id !== 'string') throw new RefusedWrite('request needs an id');
  if (w.op === 'ips' && Array.isArray(w.ips) && w.ips.every((i) => typeof i === 'string')) return w as NodeWrite;
  if (w.op === 'observed' && typeof w.observed === 'object' && w.observed !== null) return w as NodeWrite;
  if (w.op === 'remove') return w as NodeWrite;
  throw new RefusedWrite('unknown op (ips, observed, remove)');
}

/** Applies one request of `node` to the registry, after checking the record is placed on it. */
export async function applyNodeWrite(registry: InstanceRegistry, node: string, w: NodeWrite): Promise<NodeWriteAnswer> {
  const record = await registry.find(w.id);
  if (!record || record.id !== w.id) return { ok: true, gone: true };
  if (record.node !== node) return { error: `instance ${w.id} is not placed on ${node}` };
  try {
    if (w.op === 'remove') {
      if (record.state !== 'deleting') return { error: `instance ${w.id} is ${record.state}, not deleting` };
      await registry.remove(w.id);
    } else {
      // `update` re-reads the record; the check is repeated there, against the record it writes.
      const at = new Date().toISOString();
      await registry.update(w.id, (r) => {
        if (r.node !== node) throw new RefusedWrite(`instance ${w.id} is not placed on ${node}`);
        const { status, error } = w.op === 'observed' ? w.observed : { status: '', error: undefined };
        return w.op === 'ips' ? { ...r, ips: [...w.ips] } : { ...r, observed: { status, ...(error !== undefined ? { error } : {}), at } };
      });
    }
    return { ok: true };
  } catch (err) {
    if (err instanceof InstanceNotFoundError) return { ok: true, gone: true };
    return { error: errorMessage(err) };
  }
}

/**
 * Answers compute nodes' write requests on `nc` until stopped. The registry is opened at the first
 * request (and again after a failure): JetStream may not hold the bucket yet when this starts.
 */
export function serveNodeWrites(nc: NatsConnection, open: () => Promise<InstanceRegistry>, log: Logger): Subscription {
  let registry: Promise<InstanceRegistry> | undefined;
  const prefix = `${REGISTRY_NODE_SUBJECT}.`;
  const sub = nc.subscribe(`${prefix}>`, { queue: QUEUE });
  void (async () => {
    for await (const msg of sub) {
      const node = msg.subject.slice(prefix.length);
      let answer: NodeWriteAnswer;
      try {
        const write = parseNodeWrite(msg.data);
        answer = await applyNodeWrite(await (registry ??= open()), node, write);
      } catch (err) {
        if (!(err instanceof RefusedWrite)) registry = undefined;
        answer = { error: errorMessage(err) };
      }
      if ('error' in answer) log.warn({ node, error: answer.error }, 'registry write of a compute node refused');
      msg.respond(JSON.stringify(answer));
    }
  })().catch((err: unknown) => log.error({ err }, 'registry write API stopped'));
  return sub;
}

/** Sends one write for `node` and waits for the controllers' answer; throws on a refusal. */
export async function requestNodeWrite(nc: NatsConnection, node: string, w: NodeWrite, timeoutMs = 5000): Promise<void> {
  const msg = await nc.request(`${REGISTRY_NODE_SUBJECT}.${node}`, JSON.stringify(w), { timeout: timeoutMs });
  const answer = JSON.parse(msg.string()) as NodeWriteAnswer;
  if ('error' in answer) throw new Error(`registry refused the write: ${answer.error}`);
}
