/**
 * Getting an operation to a queue owned by another controller, and answering those forwarded here.
 *
 * Non-owners forward over NATS request/reply on `mammatus.sqs.rpc.<queue id>`, which only the
 * owner subscribes to. Received messages travel without bodies (the receiving controller reads
 * them from the shared stream), so ten 1 MiB messages never exceed NATS's payload limit. A
 * forwarded long poll is cancelled on the owner when its client goes away.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ReceivedMessage, RequestContext } from '../sqs-engine.js';
import type { QueueRecord } from './catalog.js';
import { fromWireError, rpcPack, rpcUnpack, toWireError, type WireError } from './codec.js';
import { subjects } from './layout.js';
import type { QueueLog } from './queue-log.js';
import type { Outcome } from './queue-owner.js';
import type { OpOutcome, QueueOp } from './queue-ops.js';
import { errorMessage } from '../../../core/errors.js';

type Reply = { ok: unknown } | { err: WireError } | { notOwner: true };
type Forwarded = QueueOp & { readonly ctx: Omit<RequestContext, 'signal'>; readonly cancelId?: string };

/** The controller asked does not own the queue (any more, or not yet): ask whoever does. */
export class NotOwnerError extends Error {}
/** A forwarded receive got no answer in time: its owner died or stalled after taking it. */
export class OwnerSilentError extends Error {}

/**
 * A long poll forwarded to another controller waits there at most this long per request: an owner
 * that dies mid-poll is noticed within this plus FORWARD_MARGIN_MS, and the poll goes on with the
 * queue's next owner for the time left.
 */
export const FORWARDED_POLL_S = 5;
const FORWARD_MARGIN_MS = 5000;

/** Collaborators of forwarding. */
export interface ForwardDeps {
  readonly nc: NatsConnection;
  readonly logFor: (queueId: string) => QueueLog;
}

/**
 * Runs `op` on the queue's owner elsewhere; a receive waits there up to `waitMs`. Throws
 * {@link NotOwnerError} when nobody there owns the queue, {@link OwnerSilentError} when a receive
 * got no answer.
 */
export async function forward(deps: ForwardDeps, record: QueueRecord, op: QueueOp, ctx: RequestContext, waitMs: number): Promise<unknown> {
  const { signal, ...plain } = ctx;
  const cancelId = op.op === 'receive' ? randomUUID() : undefined;
  const onAbort = () => deps.nc.publish(subjects.rpc(record.id), rpcPack({ op: 'cancel', cancelId }));
  if (cancelId) signal.addEventListener('abort', onAbort, { once: true });
  let reply: Reply;
  try {
    const timeout = op.op === 'receive' ? waitMs + FORWARD_MARGIN_MS : 15_000;
    const msg = await deps.nc.request(subjects.rpc(record.id), rpcPack({ ...op, ctx: plain, cancelId }), { timeout });
    reply = rpcUnpack<Reply>(msg.data);
  } catch (err) {
    // No subscriber: the lease holder died or is still starting. Retry until it expires.
    if (/no responders|503/i.test(String(errorMessage(err) ?? '')) || (err as { code?: unknown }).code === '503') throw new NotOwnerError();
    // A receive nobody answered: the owner died or stalled with it (see OwnerSilentError).
    if (op.op === 'receive' && /timeout/i.test(`${(err as Error).name} ${errorMessage(err)}`)) throw new OwnerSilentError();
    throw err;
  } finally {
    if (cancelId) signal.removeEventListener('abort', onAbort);
  }
  if ('notOwner' in reply) throw new NotOwnerError();
  if ('err' in reply) throw fromWireError(reply.err);
  if (op.op === 'receive') return fillBodies(deps.logFor(record.id), reply.ok as ReceivedMessage[]);
  if (op.op === 'append' || op.op === 'delete' || op.op === 'visibility') {
    return (reply.ok as ({ ok: unknown } | { error: WireError })[]).map((o) => ('error' in o ? { error: fromWireError(o.error) } : o));
  }
  return reply.ok;
}

// Received messages came without bodies: read them from the shared stream by sequence.
async function fillBodies(log: QueueLog, messages: ReceivedMessage[]): Promise<ReceivedMessage[]> {
  return Promise.all(
    messages.map(async (m) => {
      const seq = (m as ReceivedMessage & { seq: number }).seq;
      const stored = await log.read(seq);
      const { seq: _seq, ...rest } = m as ReceivedMessage & { seq: number };
      return { ...rest, Body: stored?.payload.body ?? '', MessageAttributes: stored?.payload.attributes ?? {} };
    }),
  );
}

/** What answering forwarded operations needs of a queue held here. */
export interface ServedQueue {
  /** Forwarded receives under way, by the id their sender cancels them with. */
  readonly cancels: Map<string, AbortController>;
  /** Whether the queue takes new operations here. */
  valid(): boolean;
  /** Runs `op` on the owner, fenced: undefined when its outcome may not be answered. */
  answer(op: QueueOp, ctx: RequestContext): Promise<OpOutcome | undefined>;
}

/** Answers one request forwarded to a queue held here (`data`), or cancels a forwarded receive. */
export async function serve(q: ServedQueue, data: Uint8Array, respond: (d: Uint8Array) => boolean): Promise<void> {
  const req = rpcUnpack<Forwarded | { op: 'cancel'; cancelId: string }>(data);
  if (req.op === 'cancel') return void q.cancels.get(req.cancelId)?.abort();
  if (!q.valid()) return void respond(rpcPack({ notOwner: true }));
  const abort = new AbortController();
  if (req.cancelId) q.cancels.set(req.cancelId, abort);
  try {
    const outcome = await q.answer(req, { ...req.ctx, signal: abort.signal });
    if (!outcome) return void respond(rpcPack({ notOwner: true }));
    if ('err' in outcome) throw outcome.err;
    let ok = outcome.ok;
    if (req.op === 'receive') ok = (ok as ReceivedMessage[]).map((m) => ({ ...m, Body: '', MessageAttributes: {}, seq: seqOf(m) }));
    if (Array.isArray(ok) && req.op !== 'receive')
      ok = (ok as Outcome<unknown>[]).map((o) => ('error' in o ? { error: toWireError(o.error) } : o));
    respond(rpcPack({ ok }));
  } catch (err) {
    respond(rpcPack({ err: toWireError(err) }));
  } finally {
    if (req.cancelId) q.cancels.delete(req.cancelId);
  }
}

function seqOf(m: ReceivedMessage): number {
  return (m as ReceivedMessage & { seq?: number }).seq ?? 0;
}
