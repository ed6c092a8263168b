/**
 * Message move tasks (StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask), the pure
 * part: task records as stored in KV, their transitions, task handles and queue ARNs. The I/O and
 * the worker are in `move-tasks.ts`.
 *
 * Error wording is AWS's as recorded by LocalStack's AWS-validated snapshots
 * (`tests/aws/services/sqs/test_sqs_move_task.snapshot.json`) where one exists; the rest is ours
 * and listed in `src/messaging/README.md` under "Not confirmed against AWS".
 */
import { MessagingError, sqsError, type SqsError } from '../errors.js';
import type { MessageMoveTaskEntry, MessageToSend, ReceivedMessage } from '../sqs-engine.js';

/** What ListMessageMoveTasks reports as `Status`. */
export type MoveTaskStatus = MessageMoveTaskEntry['Status'];

/** One task as stored under `mv.<source queue id>.<task id>` in the `mammatus_sqs` bucket. */
export interface MoveTaskRecord {
  readonly taskId: string;
  /** The source queue's ARN as we write it (`arn:aws:sqs:<region>:<account>:<name>`). */
  readonly sourceArn: string;
  readonly destinationArn?: string;
  /** MaxNumberOfMessagesPerSecond as requested (absent: our default rate, not reported). */
  readonly maxPerSecond?: number;
  readonly status: MoveTaskStatus;
  readonly moved: number;
  /** The source's visible messages when the task started. */
  readonly toMove: number;
  readonly failureReason?: string;
  /** Epoch ms. */
  readonly startedAt: number;
  /** SenderId of the messages the task sends: the access key that started it. */
  readonly senderId: string;
  /** The controller instance running the task. */
  readonly worker: string;
  /** That worker's last heartbeat (epoch ms); 0 when it let go (shutdown), so anyone may resume at once. */
  readonly beatAt: number;
}

/** Rate used without MaxNumberOfMessagesPerSecond (AWS "optimizes" it; we pick a fixed, modest one). */
export const DEFAULT_MOVES_PER_SECOND = 100;
/** AWS's upper limit of MaxNumberOfMessagesPerSecond. */
export const MAX_MOVES_PER_SECOND = 500;
/** How long finished tasks are listed (AWS: 14 days). */
export const TASK_RETENTION_MS = 14 * 86_400_000;

const ARN = /^arn:([a-z-]+):sqs:([^:]*):([^:]*):([^:]+)$/;
const HANDLE_CHARS = /^[A-Za-z0-9+/]+={0,2}$/;

/** A running task, or one being cancelled: the one active task of its source queue. */
export function isActive(r: MoveTaskRecord): boolean {
  return r.status === 'RUNNING' || r.status === 'CANCELLING';
}

/** The opaque handle of a task: base64 of `{"taskId":…,"sourceArn":…}`, the shape AWS's handles have. */
export function encodeTaskHandle(taskId: string, sourceArn: string): string {
  return Buffer.from(JSON.stringify({ taskId, sourceArn }), 'utf8').toString('base64');
}

/** Reads a handle back. @throws SqsError `InvalidParameterValue` for anything we did not make. */
export function decodeTaskHandle(handle: string): { taskId: string; sourceArn: string } {
  const invalid = sqsError('InvalidParameterValue', 'Value for parameter TaskHandle is invalid.');
  if (!HANDLE_CHARS.test(handle)) throw invalid;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(handle, 'base64').toString('utf8'));
  } catch {
    throw invalid;
  }
  const d = doc as { taskId?: unknown; sourceArn?: unknown } | null;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof d.taskId !== 'string' ||
    typeof d.sourceArn !== 'string' ||
    d.taskId === '' ||
    !ARN.test(d.sourceArn)
  ) {
    throw invalid;
  }
  return { taskId: d.taskId, sourceArn: d.sourceArn };
}

/**
 * The queue name an SQS ARN names, or undefined when it names another account or region (no such
 * queue here). @throws SqsError `InvalidParameterValue` when `arn` is not an SQS ARN.
 */
export function queueNameFromArn(
  arn: string,
  member: string,
  here: { readonly accountId: string; readonly region: string },
): string | undefined {
  const m = ARN.exec(arn);
  if (!m)
    throw sqsError(
      'InvalidParameterValue',
      `You must use this format to specify the ${member}: arn:<partition>:<service>:<region>:<account-id>:<resource-id>`,
    );
  return m[2] === here.region && m[3] === here.accountId ? m[4] : undefined;
}

/** `ResourceNotFoundException` for an ARN member naming no queue (AWS's text). */
export function resourceNotFound(member: 'SourceArn' | 'DestinationArn'): SqsError {
  return sqsError('ResourceNotFoundException', `The resource that you specified for the ${member} parameter doesn't exist.`);
}

/** StartMessageMoveTask while the source has an active task (AWS's text). */
export function taskAlreadyRunning(): SqsError {
  return sqsError(
    'InvalidParameterValue',
    'There is already a task running. Only one active task is allowed for a source queue arn at a given time.',
  );
}

/** The record after CancelMessageMoveTask. @throws SqsError unless the task is RUNNING. */
export function cancelled(r: MoveTaskRecord): MoveTaskRecord {
  if (r.status !== 'RUNNING') {
    throw sqsError('UnsupportedOperation', `Only a task with status RUNNING can be cancelled; this task is ${r.status}.`);
  }
  return { ...r, status: 'CANCELLING' };
}

/**
 * The worker's heartbeat with its progress, or the record it should end on: CANCELLED once a
 * cancel arrived. Undefined when another worker took the task over (this one must stop, writing nothing).
 */
export function heartbeat(r: MoveTaskRecord, worker: string, moved: number, now: number): MoveTaskRecord | undefined {
  if (r.worker !== worker || !isActive(r)) return undefined;
  return r.status === 'CANCELLING' ? { ...r, moved, status: 'CANCELLED', beatAt: now } : { ...r, moved, beatAt: now };
}

/**
 * How the worker ends the task: `outcome` COMPLETED or FAILED (with `reason`), or RUNNING with
 * `beatAt` 0 when it only lets go (shutdown). A cancel that arrived meanwhile wins over
 * COMPLETED; undefined when the task is no longer this worker's.
 */
export function finished(
  r: MoveTaskRecord,
  worker: string,
  moved: number,
  outcome: 'COMPLETED' | 'FAILED' | 'RUNNING',
  reason?: string,
): MoveTaskRecord | undefined {
  if (r.worker !== worker || !isActive(r)) return undefined;
  if (r.status === 'CANCELLING') return { ...r, moved, status: 'CANCELLED' };
  if (outcome === 'RUNNING') return { ...r, moved, beatAt: 0 };
  return { ...r, moved, status: outcome, ...(outcome === 'FAILED' ? { failureReason: reason ?? 'InternalFailure' } : {}) };
}

/**
 * What a sweeping controller does with a task whose worker has been silent for `staleMs`: resume a
 * RUNNING one as `worker`, finish a CANCELLING one as CANCELLED. Undefined: leave it alone.
 */
export function takenOver(r: MoveTaskRecord, worker: string, now: number, staleMs: number): MoveTaskRecord | undefined {
  if (!isActive(r) || (r.beatAt !== 0 && now - r.beatAt < staleMs)) return undefined;
  return r.status === 'CANCELLING' ? { ...r, status: 'CANCELLED' } : { ...r, worker, beatAt: now };
}

/**
 * Whether a worker should retry after `err` rather than fail the task: everything except an error
 * the sender caused (a queue that no longer exists, a message with no way back), which would fail
 * again the same way.
 */
export function retryable(err: unknown): boolean {
  return !(err instanceof MessagingError && err.def.fault === 'Sender');
}

/** A finished task older than AWS's 14 days: deleted. */
export function expired(r: MoveTaskRecord, now: number): boolean {
  return !isActive(r) && now - r.startedAt > TASK_RETENTION_MS;
}

/** The ListMessageMoveTasks entry of `r`: the handle only while RUNNING, the reason only when FAILED. */
export function resultEntry(r: MoveTaskRecord): MessageMoveTaskEntry {
  return {
    ...(r.status === 'RUNNING' ? { TaskHandle: encodeTaskHandle(r.taskId, r.sourceArn) } : {}),
    Status: r.status,
    SourceArn: r.sourceArn,
    ...(r.destinationArn !== undefined ? { DestinationArn: r.destinationArn } : {}),
    ...(r.maxPerSecond !== undefined ? { MaxNumberOfMessagesPerSecond: r.maxPerSecond } : {}),
    ApproximateNumberOfMessagesMoved: r.moved,
    ApproximateNumberOfMessagesToMove: r.toMove,
    ...(r.status === 'FAILED' && r.failureReason !== undefined ? { FailureReason: r.failureReason } : {}),
    StartedTimestamp: r.startedAt,
  };
}

/** Newest first, at most `max`. */
export function newestFirst(records: readonly MoveTaskRecord[], max: number): MoveTaskRecord[] {
  return [...records].sort((a, b) => b.startedAt - a.startedAt || (a.taskId < b.taskId ? -1 : 1)).slice(0, max);
}

/** Region and account of an ARN we wrote (`arn:aws:sqs:<region>:<account>:<name>`). */
export function arnParts(arn: string): { region: string; accountId: string } {
  const [, , , region = '', accountId = ''] = arn.split(':');
  return { region, accountId };
}

/**
 * What the destination receives: body, message attributes, trace header and group id. A redriven
 * message is a new message (AWS: new MessageId, retention restarts). For FIFO, AWS replaces the
 * deduplication id with the original MessageId when it dead-letters a message, so a redrive never
 * collides with the original send's dedup id inside the 5-minute window; we use the same id.
 */
export function toSend(m: ReceivedMessage, fifo: boolean): MessageToSend {
  const trace = m.Attributes.AWSTraceHeader;
  return {
    MessageBody: m.Body,
    MessageAttributes: m.MessageAttributes,
    MessageSystemAttributes: trace !== undefined ? { AWSTraceHeader: { DataType: 'String', StringValue: trace } } : {},
    ...(m.Attributes.MessageGroupId !== undefined ? { MessageGroupId: m.Attributes.MessageGroupId } : {}),
    ...(fifo ? { MessageDeduplicationId: m.MessageId } : {}),
  };
}
