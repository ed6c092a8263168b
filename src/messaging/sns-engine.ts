/**
 * The contract between the SNS wire layer and a topic engine. As for SQS (`sqs-engine.ts`), the
 * wire layer has decoded the Query request and checked what needs no state (required members, batch
 * shape, message attribute shape); the engine owns topics, subscriptions, delivery and ARNs.
 * Member names follow the AWS API. Errors: throw `SnsError`s (`snsError('NotFound', 'Topic does not
 * exist')`); anything else becomes `InternalError` (500).
 */
import type { RequestContext, StringMap } from './sqs-engine.js';
import type { BatchResultErrorEntry } from './errors.js';

// Shared with SQS, re-exported so SNS engines need only this module.
export type { RequestContext, StringMap } from './sqs-engine.js';

/** An SNS message attribute: `DataType` is `String`, `String.Array`, `Number` or `Binary`. */
export interface SnsMessageAttributeValue {
  readonly DataType: string;
  readonly StringValue?: string;
  readonly BinaryValue?: Uint8Array;
}
/** SNS message attributes by name. */
export type SnsMessageAttributes = Readonly<Record<string, SnsMessageAttributeValue>>;

/** A resource tag (SNS lists tags as key/value members, unlike SQS's map). */
export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

/** CreateTopic input (idempotent on AWS). */
export interface CreateTopicRequest {
  readonly Name: string;
  readonly Attributes: StringMap;
  readonly Tags: readonly Tag[];
  readonly DataProtectionPolicy?: string;
}
/** CreateTopic output. */
export interface TopicArnResult {
  readonly TopicArn: string;
}
/** Input of actions that only name a topic: DeleteTopic, GetTopicAttributes. */
export interface TopicRequest {
  readonly TopicArn: string;
}
/** Input of the unfiltered list actions: ListTopics, ListSubscriptions. */
export interface PageRequest {
  readonly NextToken?: string;
}
/** ListTopics output. */
export interface ListTopicsResult {
  readonly Topics: readonly { readonly TopicArn: string }[];
  readonly NextToken?: string;
}
/** GetTopicAttributes and GetSubscriptionAttributes output. */
export interface AttributesResult {
  readonly Attributes: StringMap;
}
/** SetTopicAttributes input: one attribute per call. */
export interface SetTopicAttributesRequest {
  readonly TopicArn: string;
  readonly AttributeName: string;
  readonly AttributeValue?: string;
}

/** Subscribe input. */
export interface SubscribeRequest {
  readonly TopicArn: string;
  /** `sqs`, `http`, `https`, … (which ones are supported is the engine's call). */
  readonly Protocol: string;
  readonly Endpoint?: string;
  readonly Attributes: StringMap;
  readonly ReturnSubscriptionArn: boolean;
}
/** `SubscriptionArn` may be the literal `pending confirmation`, as AWS answers. */
export interface SubscriptionArnResult {
  readonly SubscriptionArn: string;
}
/** ConfirmSubscription input (may arrive unsigned, see `SnsEngine`). */
export interface ConfirmSubscriptionRequest {
  readonly TopicArn: string;
  readonly Token: string;
  /** `true`/`false` as sent. */
  readonly AuthenticateOnUnsubscribe?: string;
}
/** Input of actions that only name a subscription: Unsubscribe, GetSubscriptionAttributes. */
export interface SubscriptionRequest {
  readonly SubscriptionArn: string;
}
/** One subscription as the list actions show it (`PendingConfirmation` as ARN while unconfirmed). */
export interface Subscription {
  readonly SubscriptionArn: string;
  readonly Owner: string;
  readonly Protocol: string;
  readonly Endpoint: string;
  readonly TopicArn: string;
}
/** ListSubscriptions and ListSubscriptionsByTopic output. */
export interface ListSubscriptionsResult {
  readonly Subscriptions: readonly Subscription[];
  readonly NextToken?: string;
}
/** ListSubscriptionsByTopic input. */
export interface ListSubscriptionsByTopicRequest {
  readonly TopicArn: string;
  readonly NextToken?: string;
}
/** SetSubscriptionAttributes input: one attribute per call. */
export interface SetSubscriptionAttributesRequest {
  readonly SubscriptionArn: string;
  readonly AttributeName: string;
  readonly AttributeValue?: string;
}

/** One message to publish (Publish, or one PublishBatch entry). */
export interface MessageToPublish {
  readonly Message: string;
  readonly Subject?: string;
  /** `json` for per-protocol messages. */
  readonly MessageStructure?: string;
  readonly MessageAttributes: SnsMessageAttributes;
  readonly MessageDeduplicationId?: string;
  readonly MessageGroupId?: string;
}
/** Publish input. */
export interface PublishRequest extends MessageToPublish {
  /** `TopicArn`, or `TargetArn` when that was sent instead (phone numbers are refused). */
  readonly TopicArn: string;
}
/** Publish output (`SequenceNumber` for FIFO topics). */
export interface PublishResult {
  readonly MessageId: string;
  readonly SequenceNumber?: string;
}
/** One PublishBatch entry. */
export interface PublishBatchEntry extends MessageToPublish {
  readonly Id: string;
}
/** PublishBatch input (entries that failed the wire checks are already removed). */
export interface PublishBatchRequest {
  readonly TopicArn: string;
  /** 1–10 entries with distinct, valid ids (checked). */
  readonly PublishBatchRequestEntries: readonly PublishBatchEntry[];
}
/** PublishBatch output; the wire layer adds its own failures. */
export interface PublishBatchResult {
  readonly Successful: readonly { readonly Id: string; readonly MessageId: string; readonly SequenceNumber?: string }[];
  readonly Failed: readonly BatchResultErrorEntry[];
}

/** TagResource input. */
export interface TagResourceRequest {
  readonly ResourceArn: string;
  readonly Tags: readonly Tag[];
}
/** UntagResource input. */
export interface UntagResourceRequest {
  readonly ResourceArn: string;
  readonly TagKeys: readonly string[];
}
/** ListTagsForResource input. */
export interface ResourceRequest {
  readonly ResourceArn: string;
}
/** ListTagsForResource output. */
export interface ListTagsForResourceResult {
  readonly Tags: readonly Tag[];
}

/**
 * What an SNS engine implements. `ctx.authenticated` is false for the unsigned GETs that SNS
 * confirmation and unsubscribe links make (only ConfirmSubscription and Unsubscribe are let through
 * unsigned); the engine decides whether an unsigned Unsubscribe is allowed
 * (`AuthenticateOnUnsubscribe`).
 */
export interface SnsEngine {
  createTopic(req: CreateTopicRequest, ctx: RequestContext): Promise<TopicArnResult>;
  deleteTopic(req: TopicRequest, ctx: RequestContext): Promise<void>;
  listTopics(req: PageRequest, ctx: RequestContext): Promise<ListTopicsResult>;
  getTopicAttributes(req: TopicRequest, ctx: RequestContext): Promise<AttributesResult>;
  setTopicAttributes(req: SetTopicAttributesRequest, ctx: RequestContext): Promise<void>;
  subscribe(req: SubscribeRequest, ctx: RequestContext): Promise<SubscriptionArnResult>;
  confirmSubscription(req: ConfirmSubscriptionRequest, ctx: RequestContext): Promise<SubscriptionArnResult>;
  unsubscribe(req: SubscriptionRequest, ctx: RequestContext): Promise<void>;
  listSubscriptions(req: PageRequest, ctx: RequestContext): Promise<ListSubscriptionsResult>;
  listSubscriptionsByTopic(req: ListSubscriptionsByTopicRequest, ctx: RequestContext): Promise<ListSubscriptionsResult>;
  getSubscriptionAttributes(req: SubscriptionRequest, ctx: RequestContext): Promise<AttributesResult>;
  setSubscriptionAttributes(req: SetSubscriptionAttributesRequest, ctx: RequestContext): Promise<void>;
  publish(req: PublishRequest, ctx: RequestContext): Promise<PublishResult>;
  publishBatch(req: PublishBatchRequest, ctx: RequestContext): Promise<PublishBatchResult>;
  tagResource(req: TagResourceRequest, ctx: RequestContext): Promise<void>;
  untagResource(req: UntagResourceRequest, ctx: RequestContext): Promise<void>;
  listTagsForResource(req: ResourceRequest, ctx: RequestContext): Promise<ListTagsForResourceResult>;
}
