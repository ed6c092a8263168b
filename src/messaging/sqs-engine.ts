/**
 * The contract between the SQS wire layer (`http.ts`, `protocol/`) and a queue engine.
 *
 * Requests and results are protocol-neutral: the wire layer has already decoded Query or JSON 1.0,
 * checked every rule that needs no queue state (required members, integer ranges, batch shape, the
 * characters of message bodies and attribute values, the 1 MiB absolute message ceiling) and turned
 * `QueueUrl`s into queue names. It also does, on the way out, what is a pure function of the
 * engine's answer: queue URLs from names, `MD5OfMessageBody`/`MD5OfMessageAttributes`/
 * `MD5OfMessageSystemAttributes`, and the `MessageAttributeNames`/`AttributeNames` filters of
 * ReceiveMessage. The engine owns state and everything that depends on it: queue existence and
 * attributes, FIFO rules, `MaximumMessageSize`, visibility, receipt handle staleness, DLQ moves.
 *
 * Member names follow the AWS API (as in the SDK types), so AWS documentation reads directly.
 * Errors: throw `SqsError`s (`sqsError('QueueDoesNotExist')`); anything else becomes a 500.
 */
import type { BatchResultErrorEntry } from './errors.js';

/** Who is asking, and about what; passed to every engine call. */
export interface RequestContext {
  /** The id sent back in `x-amzn-RequestId` (UUID v4). */
  readonly requestId: string;
  /** The account in queue URLs and ARNs (`messaging.account_id`). */
  readonly accountId: string;
  /** The configured region (`messaging.region`), for ARNs; not the client's signing region. */
  readonly region: string;
  /**
   * The access key id that signed the request (as claimed, when `verify_signatures` is off);
   * undefined for unsigned requests.
   */
  readonly accessKeyId?: string;
  /**
   * False only for the unsigned GETs let through for SNS confirmation/unsubscribe links; true when
   * the signature was verified, or when verification is switched off (everyone is trusted then).
   */
  readonly authenticated: boolean;
  /** Aborted when the client goes away: long polls should stop waiting. */
  readonly signal: AbortSignal;
}

/** A message attribute value: `DataType` is `String`, `Number` or `Binary`, optionally `.label`. */
export interface MessageAttributeValue {
  readonly DataType: string;
  readonly StringValue?: string;
  readonly BinaryValue?: Uint8Array;
  /** Reserved by AWS ("not implemented"), carried for MD5 fidelity. */
  readonly StringListValues?: readonly string[];
  readonly BinaryListValues?: readonly Uint8Array[];
}

/** Attributes by name. */
export type MessageAttributes = Readonly<Record<string, MessageAttributeValue>>;
/** String-valued attributes or tags by name (queue attributes, system attributes, tags). */
export type StringMap = Readonly<Record<string, string>>;

/** CreateQueue input: attributes and tags as sent (validated by the engine). */
export interface CreateQueueRequest {
  readonly QueueName: string;
  readonly Attributes: StringMap;
  readonly Tags: StringMap;
}
/** CreateQueue output. */
export interface CreateQueueResult {
  /** The (existing or new) queue's name; the wire layer builds the URL. */
  readonly QueueName: string;
}

/** GetQueueUrl input. */
export interface GetQueueUrlRequest {
  readonly QueueName: string;
  readonly QueueOwnerAWSAccountId?: string;
}
/** GetQueueUrl output: the queue name (the wire layer builds the URL). */
export interface GetQueueUrlResult {
  readonly QueueName: string;
}

/** ListQueues input. */
export interface ListQueuesRequest {
  readonly QueueNamePrefix?: string;
  /** 1–1000 when present (checked); absent means "up to 1000, no NextToken". */
  readonly MaxResults?: number;
  readonly NextToken?: string;
}
/** ListQueues output: names (the wire layer builds URLs) and the next page token. */
export interface ListQueuesResult {
  readonly QueueNames: readonly string[];
  readonly NextToken?: string;
}

/** Requests that only name a queue: DeleteQueue, PurgeQueue, ListQueueTags. */
export interface QueueRequest {
  readonly QueueName: string;
}

/** GetQueueAttributes input. */
export interface GetQueueAttributesRequest {
  readonly QueueName: string;
  /** As sent (may contain `All`); empty means none. Unknown names are the engine's error. */
  readonly AttributeNames: readonly string[];
}
/** GetQueueAttributes output: the requested attributes as strings. */
export interface GetQueueAttributesResult {
  readonly Attributes: StringMap;
}

/** SetQueueAttributes input. */
export interface SetQueueAttributesRequest {
  readonly QueueName: string;
  readonly Attributes: StringMap;
}

/** One message to enqueue (SendMessage, or one SendMessageBatch entry). */
export interface MessageToSend {
  readonly MessageBody: string;
  /** Absent = the queue's DelaySeconds; 0–900 when present (checked). */
  readonly DelaySeconds?: number;
  readonly MessageAttributes: MessageAttributes;
  /** Only `AWSTraceHeader` is accepted (checked). */
  readonly MessageSystemAttributes: MessageAttributes;
  readonly MessageDeduplicationId?: string;
  readonly MessageGroupId?: string;
}
/** SendMessage input. */
export interface SendMessageRequest extends MessageToSend {
  readonly QueueName: string;
}
/** SendMessage output; the wire layer adds the MD5s. */
export interface SendMessageResult {
  readonly MessageId: string;
  /** FIFO queues only. */
  readonly SequenceNumber?: string;
}

/** One SendMessageBatch entry. */
export interface SendMessageBatchEntry extends MessageToSend {
  readonly Id: string;
}
/** SendMessageBatch input (entries that failed the wire checks are already removed). */
export interface SendMessageBatchRequest {
  readonly QueueName: string;
  /** 1–10 entries with distinct, valid ids, ≤ 1 MiB in total (checked). */
  readonly Entries: readonly SendMessageBatchEntry[];
}
/** SendMessageBatch output; the wire layer adds MD5s and its own failures. */
export interface SendMessageBatchResult {
  readonly Successful: readonly { readonly Id: string; readonly MessageId: string; readonly SequenceNumber?: string }[];
  readonly Failed: readonly BatchResultErrorEntry[];
}

/** ReceiveMessage input. */
export interface ReceiveMessageRequest {
  readonly QueueName: string;
  /** 1–10 when present (checked); absent means 1. */
  readonly MaxNumberOfMessages?: number;
  /** 0–43200 when present (checked); absent = the queue's VisibilityTimeout. */
  readonly VisibilityTimeout?: number;
  /** 0–20 when present (checked); absent = the queue's ReceiveMessageWaitTimeSeconds. */
  readonly WaitTimeSeconds?: number;
  /** `AttributeNames` and `MessageSystemAttributeNames` merged; informational (the wire layer filters). */
  readonly AttributeNames: readonly string[];
  /** Informational as well: the wire layer applies the filter and computes the MD5 on what is left. */
  readonly MessageAttributeNames: readonly string[];
  readonly ReceiveRequestAttemptId?: string;
}
/** A received message with all its attributes; the wire layer filters them per request. */
export interface ReceivedMessage {
  readonly MessageId: string;
  readonly ReceiptHandle: string;
  readonly Body: string;
  /** System attributes as strings: `SentTimestamp`, `ApproximateReceiveCount`, `AWSTraceHeader`, … */
  readonly Attributes: StringMap;
  readonly MessageAttributes: MessageAttributes;
}
/** ReceiveMessage output (an empty list when nothing arrived before the wait ended). */
export interface ReceiveMessageResult {
  readonly Messages: readonly ReceivedMessage[];
}

/** DeleteMessage input; an old (superseded) handle should still succeed, as on AWS. */
export interface DeleteMessageRequest {
  readonly QueueName: string;
  readonly ReceiptHandle: string;
}
/** DeleteMessageBatch input. */
export interface DeleteMessageBatchRequest {
  readonly QueueName: string;
  readonly Entries: readonly { readonly Id: string; readonly ReceiptHandle: string }[];
}
/** Result of DeleteMessageBatch and ChangeMessageVisibilityBatch. */
export interface BatchIdsResult {
  readonly Successful: readonly { readonly Id: string }[];
  readonly Failed: readonly BatchResultErrorEntry[];
}

/** ChangeMessageVisibility input. */
export interface ChangeMessageVisibilityRequest {
  readonly QueueName: string;
  readonly ReceiptHandle: string;
  /** 0–43200 (checked). */
  readonly VisibilityTimeout: number;
}
/** ChangeMessageVisibilityBatch input (entries that failed the wire checks are already removed). */
export interface ChangeMessageVisibilityBatchRequest {
  readonly QueueName: string;
  readonly Entries: readonly {
    readonly Id: string;
    readonly ReceiptHandle: string;
    /** 0–43200 (checked); optional in the model. */
    readonly VisibilityTimeout?: number;
  }[];
}

/** ListDeadLetterSourceQueues input. */
export interface ListDeadLetterSourceQueuesRequest {
  readonly QueueName: string;
  readonly MaxResults?: number;
  readonly NextToken?: string;
}
/** ListDeadLetterSourceQueues output: names of queues whose RedrivePolicy targets this one. */
export interface ListDeadLetterSourceQueuesResult {
  readonly QueueNames: readonly string[];
  readonly NextToken?: string;
}

/** TagQueue input. */
export interface TagQueueRequest {
  readonly QueueName: string;
  readonly Tags: StringMap;
}
/** UntagQueue input. */
export interface UntagQueueRequest {
  readonly QueueName: string;
  readonly TagKeys: readonly string[];
}
/** ListQueueTags output. */
export interface ListQueueTagsResult {
  readonly Tags: StringMap;
}

/** AddPermission input: checked by the wire layer (label shape, principals, grantable actions, ≤ 7). */
export interface AddPermissionRequest {
  readonly QueueName: string;
  readonly Label: string;
  readonly AWSAccountIds: readonly string[];
  readonly Actions: readonly string[];
}
/** RemovePermission input. */
export interface RemovePermissionRequest {
  readonly QueueName: string;
  readonly Label: string;
}

/** StartMessageMoveTask input; MaxNumberOfMessagesPerSecond is 1–500 when present (checked). */
export interface StartMessageMoveTaskRequest {
  readonly SourceArn: string;
  readonly DestinationArn?: string;
  readonly MaxNumberOfMessagesPerSecond?: number;
}
/** StartMessageMoveTask output: an opaque handle for CancelMessageMoveTask. */
export interface StartMessageMoveTaskResult {
  readonly TaskHandle: string;
}
/** ListMessageMoveTasks input; MaxResults is 1–10 when present (checked), absent means 1. */
export interface ListMessageMoveTasksRequest {
  readonly SourceArn: string;
  readonly MaxResults?: number;
}
/** One task as ListMessageMoveTasks reports it. */
export interface MessageMoveTaskEntry {
  /** Only while the task is RUNNING. */
  readonly TaskHandle?: string;
  readonly Status: 'RUNNING' | 'COMPLETED' | 'CANCELLING' | 'CANCELLED' | 'FAILED';
  readonly SourceArn: string;
  readonly DestinationArn?: string;
  readonly MaxNumberOfMessagesPerSecond?: number;
  readonly ApproximateNumberOfMessagesMoved: number;
  readonly ApproximateNumberOfMessagesToMove: number;
  /** Only when FAILED. */
  readonly FailureReason?: string;
  /** Epoch milliseconds. */
  readonly StartedTimestamp: number;
}
/** ListMessageMoveTasks output, newest first. */
export interface ListMessageMoveTasksResult {
  readonly Results: readonly MessageMoveTaskEntry[];
}
/** CancelMessageMoveTask input. */
export interface CancelMessageMoveTaskRequest {
  readonly TaskHandle: string;
}
/** CancelMessageMoveTask output. */
export interface CancelMessageMoveTaskResult {
  readonly ApproximateNumberOfMessagesMoved: number;
}

/** What an SQS engine implements: one method per supported action. */
export interface SqsEngine {
  createQueue(req: CreateQueueRequest, ctx: RequestContext): Promise<CreateQueueResult>;
  getQueueUrl(req: GetQueueUrlRequest, ctx: RequestContext): Promise<GetQueueUrlResult>;
  listQueues(req: ListQueuesRequest, ctx: RequestContext): Promise<ListQueuesResult>;
  deleteQueue(req: QueueRequest, ctx: RequestContext): Promise<void>;
  getQueueAttributes(req: GetQueueAttributesRequest, ctx: RequestContext): Promise<GetQueueAttributesResult>;
  setQueueAttributes(req: SetQueueAttributesRequest, ctx: RequestContext): Promise<void>;
  sendMessage(req: SendMessageRequest, ctx: RequestContext): Promise<SendMessageResult>;
  sendMessageBatch(req: SendMessageBatchRequest, ctx: RequestContext): Promise<SendMessageBatchResult>;
  receiveMessage(req: ReceiveMessageRequest, ctx: RequestContext): Promise<ReceiveMessageResult>;
  deleteMessage(req: DeleteMessageRequest, ctx: RequestContext): Promise<void>;
  deleteMessageBatch(req: DeleteMessageBatchRequest, ctx: RequestContext): Promise<BatchIdsResult>;
  changeMessageVisibility(req: ChangeMessageVisibilityRequest, ctx: RequestContext): Promise<void>;
  changeMessageVisibilityBatch(req: ChangeMessageVisibilityBatchRequest, ctx: RequestContext): Promise<BatchIdsResult>;
  purgeQueue(req: QueueRequest, ctx: RequestContext): Promise<void>;
  listDeadLetterSourceQueues(req: ListDeadLetterSourceQueuesRequest, ctx: RequestContext): Promise<ListDeadLetterSourceQueuesResult>;
  tagQueue(req: TagQueueRequest, ctx: RequestContext): Promise<void>;
  untagQueue(req: UntagQueueRequest, ctx: RequestContext): Promise<void>;
  listQueueTags(req: QueueRequest, ctx: RequestContext): Promise<ListQueueTagsResult>;
  /** Adds the label's statement to the queue's `Policy` (`queue-policy.ts`); stored, not evaluated. */
  addPermission(req: AddPermissionRequest, ctx: RequestContext): Promise<void>;
  /** Removes the label's statement; the `Policy` attribute goes away with the last one. */
  removePermission(req: RemovePermissionRequest, ctx: RequestContext): Promise<void>;
  /** Starts moving the visible messages of a dead-letter queue (to `DestinationArn` or back to their sources). */
  startMessageMoveTask(req: StartMessageMoveTaskRequest, ctx: RequestContext): Promise<StartMessageMoveTaskResult>;
  /** The source queue's most recent tasks (14 days), newest first. */
  listMessageMoveTasks(req: ListMessageMoveTasksRequest, ctx: RequestContext): Promise<ListMessageMoveTasksResult>;
  /** Cancels a RUNNING task; messages already moved stay moved. */
  cancelMessageMoveTask(req: CancelMessageMoveTaskRequest, ctx: RequestContext): Promise<CancelMessageMoveTaskResult>;
}

/** What counts towards SQS's size limit: body, attribute names, types and values, in bytes. */
export function messageSize(message: MessageToSend): number {
  let size = Buffer.byteLength(message.MessageBody, 'utf8');
  for (const [name, value] of Object.entries(message.MessageAttributes)) {
    size += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value.DataType, 'utf8');
    if (value.StringValue !== undefined) size += Buffer.byteLength(value.StringValue, 'utf8');
    if (value.BinaryValue !== undefined) size += value.BinaryValue.length;
  }
  return size;
}
