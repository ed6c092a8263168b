/**
 * The SQS actions this API serves, the engine request each one parses into, and the wire output
 * each one answers with (engine result plus what the wire layer adds: URLs, MD5s).
 */
import type {
  AddPermissionRequest,
  BatchIdsResult,
  CancelMessageMoveTaskRequest,
  ChangeMessageVisibilityBatchRequest,
  ChangeMessageVisibilityRequest,
  CreateQueueRequest,
  DeleteMessageBatchRequest,
  DeleteMessageRequest,
  GetQueueAttributesRequest,
  GetQueueUrlRequest,
  ListDeadLetterSourceQueuesRequest,
  ListMessageMoveTasksRequest,
  ListQueuesRequest,
  MessageAttributes,
  MessageMoveTaskEntry,
  QueueRequest,
  ReceiveMessageRequest,
  RemovePermissionRequest,
  SendMessageBatchRequest,
  SendMessageRequest,
  SetQueueAttributesRequest,
  StartMessageMoveTaskRequest,
  StringMap,
  TagQueueRequest,
  UntagQueueRequest,
} from '../sqs-engine.js';
import type { BatchResultErrorEntry } from '../errors.js';
import type { ScalarFields } from './fields.js';

/** Action names, as sent in `Action=` and after `AmazonSQS.` in `X-Amz-Target`. */
export const SqsAction = {
  CreateQueue: 'CreateQueue',
  GetQueueUrl: 'GetQueueUrl',
  ListQueues: 'ListQueues',
  DeleteQueue: 'DeleteQueue',
  GetQueueAttributes: 'GetQueueAttributes',
  SetQueueAttributes: 'SetQueueAttributes',
  SendMessage: 'SendMessage',
  SendMessageBatch: 'SendMessageBatch',
  ReceiveMessage: 'ReceiveMessage',
  DeleteMessage: 'DeleteMessage',
  DeleteMessageBatch: 'DeleteMessageBatch',
  ChangeMessageVisibility: 'ChangeMessageVisibility',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibilityBatch',
  PurgeQueue: 'PurgeQueue',
  ListDeadLetterSourceQueues: 'ListDeadLetterSourceQueues',
  TagQueue: 'TagQueue',
  UntagQueue: 'UntagQueue',
  ListQueueTags: 'ListQueueTags',
  AddPermission: 'AddPermission',
  RemovePermission: 'RemovePermission',
  StartMessageMoveTask: 'StartMessageMoveTask',
  ListMessageMoveTasks: 'ListMessageMoveTasks',
  CancelMessageMoveTask: 'CancelMessageMoveTask',
} as const;
/** One of the SQS action names above. */
export type SqsAction = (typeof SqsAction)[keyof typeof SqsAction];

/** True when `name` is an SQS action this API serves. */
export function isSqsAction(name: string): name is SqsAction {
  return Object.hasOwn(SqsAction, name);
}

/** The engine request of each action. */
export interface SqsRequests {
  CreateQueue: CreateQueueRequest;
  GetQueueUrl: GetQueueUrlRequest;
  ListQueues: ListQueuesRequest;
  DeleteQueue: QueueRequest;
  GetQueueAttributes: GetQueueAttributesRequest;
  SetQueueAttributes: SetQueueAttributesRequest;
  SendMessage: SendMessageRequest;
  SendMessageBatch: SendMessageBatchRequest;
  ReceiveMessage: ReceiveMessageRequest;
  DeleteMessage: DeleteMessageRequest;
  DeleteMessageBatch: DeleteMessageBatchRequest;
  ChangeMessageVisibility: ChangeMessageVisibilityRequest;
  ChangeMessageVisibilityBatch: ChangeMessageVisibilityBatchRequest;
  PurgeQueue: QueueRequest;
  ListDeadLetterSourceQueues: ListDeadLetterSourceQueuesRequest;
  TagQueue: TagQueueRequest;
  UntagQueue: UntagQueueRequest;
  ListQueueTags: QueueRequest;
  AddPermission: AddPermissionRequest;
  RemovePermission: RemovePermissionRequest;
  StartMessageMoveTask: StartMessageMoveTaskRequest;
  ListMessageMoveTasks: ListMessageMoveTasksRequest;
  CancelMessageMoveTask: CancelMessageMoveTaskRequest;
}

/** An action without output members. */
export type Empty = Record<string, never>;

/** SendMessage's answer, and (with `Id`) one successful SendMessageBatch entry. */
export interface SendOutput {
  readonly MessageId: string;
  readonly MD5OfMessageBody: string;
  readonly MD5OfMessageAttributes?: string;
  readonly MD5OfMessageSystemAttributes?: string;
  readonly SequenceNumber?: string;
}

/** One message as ReceiveMessage answers it (filtered, with MD5s). */
export interface WireMessage {
  readonly MessageId: string;
  readonly ReceiptHandle: string;
  readonly MD5OfBody: string;
  readonly Body: string;
  readonly Attributes: StringMap;
  readonly MD5OfMessageAttributes?: string;
  readonly MessageAttributes: MessageAttributes;
}

/** The wire output of each action (AWS member names). */
export interface SqsOutputs {
  CreateQueue: { readonly QueueUrl: string };
  GetQueueUrl: { readonly QueueUrl: string };
  ListQueues: { readonly QueueUrls: readonly string[]; readonly NextToken?: string };
  DeleteQueue: Empty;
  GetQueueAttributes: { readonly Attributes: StringMap };
  SetQueueAttributes: Empty;
  SendMessage: SendOutput;
  SendMessageBatch: {
    readonly Successful: readonly (SendOutput & { readonly Id: string })[];
    readonly Failed: readonly BatchResultErrorEntry[];
  };
  ReceiveMessage: { readonly Messages: readonly WireMessage[] };
  DeleteMessage: Empty;
  DeleteMessageBatch: BatchIdsResult;
  ChangeMessageVisibility: Empty;
  ChangeMessageVisibilityBatch: BatchIdsResult;
  PurgeQueue: Empty;
  ListDeadLetterSourceQueues: { readonly queueUrls: readonly string[]; readonly NextToken?: string };
  TagQueue: Empty;
  UntagQueue: Empty;
  ListQueueTags: { readonly Tags: StringMap };
  AddPermission: Empty;
  RemovePermission: Empty;
  StartMessageMoveTask: { readonly TaskHandle: string };
  ListMessageMoveTasks: { readonly Results: readonly MessageMoveTaskEntry[] };
  CancelMessageMoveTask: { readonly ApproximateNumberOfMessagesMoved: number };
}

/**
 * The SQS actions whose requests are scalars only, parsed the same way from either wire format
 * (the message-move tasks): both parser tables take these.
 */
export const sqsScalarParsers = {
  StartMessageMoveTask: (f: ScalarFields): SqsRequests['StartMessageMoveTask'] => ({
    SourceArn: f.req('SourceArn'),
    DestinationArn: f.str('DestinationArn'),
    MaxNumberOfMessagesPerSecond: f.int('MaxNumberOfMessagesPerSecond'),
  }),
  ListMessageMoveTasks: (f: ScalarFields): SqsRequests['ListMessageMoveTasks'] => ({
    SourceArn: f.req('SourceArn'),
    MaxResults: f.int('MaxResults'),
  }),
  CancelMessageMoveTask: (f: ScalarFields): SqsRequests['CancelMessageMoveTask'] => ({ TaskHandle: f.req('TaskHandle') }),
};
