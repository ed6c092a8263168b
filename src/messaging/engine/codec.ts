/**
 * Byte formats of the engine: a stored SQS message (headers for what a rebuild needs, msgpack
 * payload for body and attributes), its delivery state record, message ids, and errors carried
 * over NATS request/reply.
 */
import { hash } from 'node:crypto';
import { headers as natsHeaders, MsgHdrsImpl, type MsgHdrs } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';
import { CommonErrors, commonError, MessagingError, SnsErrors, SqsErrors, snsError, sqsError, type ErrorDef } from '../errors.js';
import type { MessageAttributes, MessageAttributeValue } from '../sqs-engine.js';

/** Header names on stored messages. */
export const H = {
  sent: 'Sqs-Sent',
  visible: 'Sqs-Visible',
  group: 'Sqs-Group',
  dedup: 'Sqs-Dedup',
  sender: 'Sqs-Sender',
  id: 'Sqs-Id',
  source: 'Sqs-Source',
} as const;

/** What is stored about a message besides its position. */
export interface StoredFields {
  readonly sentAt: number;
  /** sentAt + delay. */
  readonly visibleAt: number;
  readonly group?: string;
  readonly dedupId?: string;
  readonly senderId: string;
  /** Set when the id is not derived from the position (a message moved to a dead-letter queue). */
  readonly messageId?: string;
  /** `DeadLetterQueueSourceArn`. */
  readonly sourceArn?: string;
}

/** The payload: body, message attributes and the trace header. */
export interface StoredPayload {
  readonly body: string;
  readonly attributes: MessageAttributes;
  readonly trace?: string;
}

// A value `MsgHdrs.set` would store as is: it trims values and refuses line breaks.
const plainValue = (v: string): boolean => !/[\r\n]/.test(v) && v.trim() === v;

/** Headers for `fields`. */
export function encodeHeaders(fields: StoredFields): MsgHdrs {
  const { group, dedupId, messageId, sourceArn } = fields;
  const record: Record<string, string[]> = {
    [H.sent]: [String(fields.sentAt)],
    [H.visible]: [String(fields.visibleAt)],
    [H.sender]: [fields.senderId],
  };
  if (group !== undefined) record[H.group] = [group];
  if (dedupId !== undefined) record[H.dedup] = [dedupId];
  if (messageId !== undefined) record[H.id] = [messageId];
  if (sourceArn !== undefined) record[H.source] = [sourceArn];
  // Per message on the send path: built without `set`'s per-key checks (our names are valid
  // keys) when every value is plain; otherwise `set` checks and trims as before.
  if (Object.values(record).every(([v]) => plainValue(v))) return MsgHdrsImpl.fromRecord(record);
  const h = natsHeaders();
  h.set(H.sent, String(fields.sentAt));
  h.set(H.visible, String(fields.visibleAt));
  h.set(H.sender, fields.senderId);
  if (fields.group !== undefined) h.set(H.group, fields.group);
  if (fields.dedupId !== undefined) h.set(H.dedup, fields.dedupId);
  if (fields.messageId !== undefined) h.set(H.id, fields.messageId);
  if (fields.sourceArn !== undefined) h.set(H.source, fields.sourceArn);
  return h;
}

/** Reads the headers of a stored message back. */
export function decodeHeaders(h: MsgHdrs | undefined): StoredFields {
  const get = (k: string) => (h?.has(k) ? h.get(k) : undefined);
  const sentAt = Number(get(H.sent) ?? 0);
  return {
    sentAt,
    visibleAt: Number(get(H.visible) ?? sentAt),
    group: get(H.group),
    dedupId: get(H.dedup),
    senderId: get(H.sender) ?? 'anonymous',
    messageId: get(H.id),
    sourceArn: get(H.source),
  };
}

/** msgpack of the payload (binary attribute values stay binary). */
export function encodePayload(p: StoredPayload): Uint8Array {
  return pack({ b: p.body, a: p.attributes, ...(p.trace ? { t: p.trace } : {}) });
}

/** Reads a payload back, with attribute values as plain Uint8Arrays. */
export function decodePayload(data: Uint8Array): StoredPayload {
  const raw = unpack(data) as { b: string; a: Record<string, MessageAttributeValue>; t?: string };
  return { body: raw.b, attributes: raw.a ?? {}, trace: raw.t };
}

/** The delivery state of one message, as persisted after each transition. */
export interface DeliveryState {
  readonly receiveCount: number;
  readonly firstReceiveAt?: number;
  readonly visibleAt: number;
}

export function encodeState(s: DeliveryState): Uint8Array {
  return Buffer.from(JSON.stringify({ r: s.receiveCount, f: s.firstReceiveAt, v: s.visibleAt }));
}

export function decodeState(data: Uint8Array): DeliveryState {
  const raw = JSON.parse(Buffer.from(data).toString('utf8')) as { r: number; f?: number; v: number };
  return { receiveCount: raw.r, firstReceiveAt: raw.f, visibleAt: raw.v };
}

/** The delivery state of one message of a batch record. */
export interface SeqState extends DeliveryState {
  readonly seq: number;
}

/**
 * A batch state record: the states of several messages (a receive batch, a visibility batch) in
 * one JetStream message, so a receive of ten costs one publish instead of ten.
 */
export function encodeStates(states: readonly SeqState[]): Uint8Array {
  return Buffer.from(JSON.stringify(states.map((s) => [s.seq, s.receiveCount, s.firstReceiveAt ?? null, s.visibleAt])));
}

export function decodeStates(data: Uint8Array): SeqState[] {
  const raw = JSON.parse(Buffer.from(data).toString('utf8')) as [number, number, number | null, number][];
  return raw.map(([seq, r, f, v]) => ({ seq, receiveCount: r, firstReceiveAt: f ?? undefined, visibleAt: v }));
}

/**
 * The MessageId of the message at `seq` of queue `queueId`: UUID-shaped, derived rather than
 * stored, so a deduplicated send (JetStream answers with the original's sequence) returns the
 * original's id even after that message was deleted.
 */
export function messageIdFor(queueId: string, seq: number): string {
  const h = hash('sha256', `${queueId}:${seq}`, 'hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h.slice(16, 17), 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** FIFO `SequenceNumber`: the stream sequence, zero-padded like AWS's 20-digit numbers. */
export function sequenceNumber(seq: number): string {
  return String(seq).padStart(20, '0');
}

/** An error as it travels in an RPC reply. */
export interface WireError {
  readonly service: 'sqs' | 'sns' | 'common' | 'internal';
  readonly code?: string;
  readonly message?: string;
}

function findDef(table: Readonly<Record<string, ErrorDef>>, code: string): string | undefined {
  return Object.keys(table).find((k) => table[k].code === code);
}

/** Our errors keep their catalogue entry; anything else is only "internal" (no detail leaks). */
export function toWireError(err: unknown): WireError {
  if (err instanceof MessagingError) {
    const explicit = err.message !== err.def.message && err.message !== err.def.jsonMessage;
    return { service: err.service, code: err.code, ...(explicit ? { message: err.message } : {}) };
  }
  return { service: 'internal', message: (err as Error)?.message };
}

/** The error a `WireError` stands for. */
export function fromWireError(w: WireError): Error {
  if (w.service === 'sqs' && w.code) {
    const key = findDef(SqsErrors, w.code);
    if (key) return sqsError(key as keyof typeof SqsErrors, w.message);
  }
  if (w.service === 'sns' && w.code) {
    const key = findDef(SnsErrors, w.code);
    if (key) return snsError(key as keyof typeof SnsErrors, w.message);
  }
  if (w.service === 'common' && w.code) {
    const key = findDef(CommonErrors, w.code);
    if (key) return commonError(key as keyof typeof CommonErrors, w.message);
  }
  return new Error(`remote queue owner failed: ${w.message ?? 'unknown error'}`);
}

/** msgpack for RPC bodies. */
export const rpcPack = (v: unknown): Uint8Array => pack(v);
export const rpcUnpack = <T>(data: Uint8Array): T => unpack(data) as T;
