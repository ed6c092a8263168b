/**
 * A received message as the owner answers it: system attributes, a fresh receipt handle, and the
 * stream sequence for the router. Pure, so the owner keeps only the decisions.
 */
import { createReceiptHandle } from '../receipt.js';
import type { ReceivedMessage } from '../sqs-engine.js';
import { messageIdFor, sequenceNumber, type StoredFields, type StoredPayload } from './codec.js';
import type { MessageMeta } from './queue-state.js';

/** Which queue a message was received from, and the key that signs its handle. */
export interface ReceivedFrom {
  readonly queueId: string;
  readonly fifo: boolean;
  readonly key: Uint8Array;
}

/** The answer for message `m` (delivery state), stored as `f` and `p`, received at `now`. */
export function receivedMessage(q: ReceivedFrom, m: MessageMeta, f: StoredFields, p: StoredPayload, now: number): ReceivedMessage {
  const a: Record<string, string> = {
    SenderId: f.senderId,
    SentTimestamp: String(f.sentAt),
    ApproximateReceiveCount: String(m.receiveCount),
    ApproximateFirstReceiveTimestamp: String(m.firstReceiveAt ?? now),
  };
  if (f.group !== undefined) a.MessageGroupId = f.group;
  if (q.fifo) {
    if (f.dedupId !== undefined) a.MessageDeduplicationId = f.dedupId;
    a.SequenceNumber = sequenceNumber(m.seq);
  }
  if (p.trace) a.AWSTraceHeader = p.trace;
  if (f.sourceArn) a.DeadLetterQueueSourceArn = f.sourceArn;
  const ReceiptHandle = createReceiptHandle(q.key, {
    queue: q.queueId,
    sequence: m.seq,
    receiveCount: m.receiveCount,
    issuedAt: now,
    visibleAt: m.visibleAt,
  });
  // `seq` rides along for the router (a forwarded receive reads bodies by it); the wire layer ignores it.
  return {
    MessageId: f.messageId ?? messageIdFor(q.queueId, m.seq),
    ReceiptHandle,
    Body: p.body,
    Attributes: a,
    MessageAttributes: p.attributes,
    seq: m.seq,
  } as ReceivedMessage;
}
