/**
 * The operations a queue's owner runs, as they travel between router, owner and (forwarded)
 * other controllers, and running one on an owner held here.
 */
import type { ReceivedMessage, ReceiveMessageRequest, RequestContext } from '../sqs-engine.js';
import type { AppendRequest, Outcome, QueueOwner } from './queue-owner.js';
import type { QueueCounts } from './queue-state.js';

/** The operations an owner runs, as they travel. */
export type QueueOp =
  | { readonly op: 'append'; readonly entries: AppendRequest[] }
  | { readonly op: 'receive'; readonly req: ReceiveMessageRequest }
  | { readonly op: 'delete'; readonly handles: string[] }
  | { readonly op: 'visibility'; readonly entries: { handle: string; seconds: number }[] }
  | { readonly op: 'purge' }
  | { readonly op: 'counts' };

/** What each operation answers. */
export interface OpResults {
  append: Outcome<{ MessageId: string; SequenceNumber?: string }>[];
  receive: ReceivedMessage[];
  delete: Outcome<true>[];
  visibility: Outcome<true>[];
  purge: null;
  counts: QueueCounts;
}

/** An operation's outcome on its owner, before fencing decides whether it may be answered. */
export type OpOutcome = { ok: unknown } | { err: unknown };

/** Runs `op` on `owner`, a queue owned here. */
export async function runOnOwner(owner: QueueOwner, op: QueueOp, ctx: RequestContext): Promise<unknown> {
  switch (op.op) {
    case 'append':
      return owner.append(op.entries);
    case 'receive':
      return owner.receive(op.req, ctx, ctx.signal);
    case 'delete':
      return owner.delete(op.handles);
    case 'visibility':
      return owner.changeVisibility(op.entries);
    case 'purge':
      return owner.purge().then(() => null);
    case 'counts':
      return owner.counts();
  }
}
