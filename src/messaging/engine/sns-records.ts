/**
 * SNS topics and subscriptions as stored in the `mammatus_sns` bucket (`t.<name>`, `s.<uuid>`),
 * the attribute rules that need no I/O, and the published-message record of the SNS stream.
 */
import type { EndpointGuard } from './endpoint-guard.js';
import { createHash, randomBytes } from 'node:crypto';
import { snsError } from '../errors.js';
import type { SnsMessageAttributes, Tag } from '../sns-engine.js';
import { parseFilterPolicy } from './filter-policy.js';

/** A topic. */
export interface TopicRecord {
  readonly name: string;
  readonly arn: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly tags: readonly Tag[];
}

/** A subscription. */
export interface SubscriptionRecord {
  readonly id: string;
  readonly arn: string;
  readonly topicArn: string;
  readonly protocol: string;
  readonly endpoint: string;
  readonly owner: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly confirmed: boolean;
  /** Confirmation token (http/https), hex. */
  readonly token: string;
  readonly authenticateOnUnsubscribe: boolean;
  readonly confirmationWasAuthenticated: boolean;
}

/** A Publish as stored in the SNS stream until every subscriber has it. */
export interface PublishedRecord {
  readonly topicArn: string;
  readonly messageId: string;
  readonly message: string;
  readonly subject?: string;
  readonly structure?: string;
  readonly attributes: SnsMessageAttributes;
  readonly group?: string;
  readonly dedupId?: string;
  readonly sequence?: string;
  /** ISO-8601 with milliseconds, as in AWS envelopes. */
  readonly timestamp: string;
  readonly senderId?: string;
}

/** One http(s) delivery task in the SNS stream. */
export type HttpTask =
  | { readonly kind: 'notification'; readonly subId: string; readonly record: PublishedRecord }
  | { readonly kind: 'confirmation'; readonly subId: string; readonly messageId: string; readonly timestamp: string }
  /** The subscription is gone: the task carries it. */
  | {
      readonly kind: 'unsubscribed';
      readonly subId: string;
      readonly sub: SubscriptionRecord;
      readonly messageId: string;
      readonly timestamp: string;
    };

/**
 * An unsubscribed http(s) subscription that its UnsubscribeConfirmation's SubscribeURL can restore,
 * kept under `u.<token>` in the `mammatus_sns_attempts` bucket (so for that bucket's 6 h TTL).
 */
export const restoreKey = (token: string): string => `u.${token}`;

const TOPIC_ATTRIBUTES = new Set([
  'DisplayName',
  'Policy',
  'DeliveryPolicy',
  'KmsMasterKeyId',
  'SignatureVersion',
  'TracingConfig',
  'FifoTopic',
  'ContentBasedDeduplication',
  'FifoThroughputScope',
  'DataProtectionPolicy',
  'ArchivePolicy',
]);
const SUBSCRIPTION_ATTRIBUTES = new Set([
  'RawMessageDelivery',
  'FilterPolicy',
  'FilterPolicyScope',
  'DeliveryPolicy',
  'RedrivePolicy',
  'SubscriptionRoleArn',
]);

/** Supported subscription protocols. */
export const PROTOCOLS = new Set(['sqs', 'http', 'https']);

function invalid(reason: string): Error {
  return snsError('InvalidParameter', `Invalid parameter: ${reason}`);
}

/** Topic names: 1–256 of `[A-Za-z0-9_-]`, FIFO topics end in `.fifo`. */
export function checkTopicName(name: string, attributes: Readonly<Record<string, string>>): void {
  const fifo = name.endsWith('.fifo');
  if (!/^[A-Za-z0-9_-]{1,251}\.fifo$|^[A-Za-z0-9_-]{1,256}$/.test(name)) throw invalid('Topic Name');
  if (fifo !== (attributes.FifoTopic === 'true'))
    throw invalid('Fifo Topic names must end with .fifo and must be made with FifoTopic=true');
}

/** Checks one topic attribute. */
export function checkTopicAttribute(name: string, value: string): void {
  if (!TOPIC_ATTRIBUTES.has(name)) throw invalid(`AttributeName ${name}`);
  if (name === 'SignatureVersion' && value !== '1' && value !== '2') throw invalid('SignatureVersion must be 1 or 2');
  if ((name === 'FifoTopic' || name === 'ContentBasedDeduplication') && value !== 'true' && value !== 'false')
    throw invalid(`${name} must be true or false`);
  if (name === 'FifoThroughputScope' && value !== 'Topic' && value !== 'MessageGroup')
    throw invalid('FifoThroughputScope must be Topic or MessageGroup');
}

/**
 * The topic-type rules of Subscribe (AWS): a FIFO topic takes SQS subscriptions only, and a FIFO
 * queue can subscribe to a FIFO topic only (a standard topic's messages have no group id).
 */
export function checkTopicSubscription(topic: TopicRecord, protocol: string, endpoint: string): void {
  const fifoTopic = topic.attributes.FifoTopic === 'true';
  if (fifoTopic && protocol !== 'sqs') throw invalid(`Invalid protocol type: ${protocol}`);
  if (!fifoTopic && protocol === 'sqs' && endpoint.endsWith('.fifo'))
    throw invalid('Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics');
}

/** The access policy a topic has until one is set: AWS's default (the owner account may do everything). */
export function defaultTopicPolicy(topicArn: string, accountId: string): string {
  const actions = [
    'GetTopicAttributes',
    'SetTopicAttributes',
    'AddPermission',
    'RemovePermission',
    'DeleteTopic',
    'Subscribe',
    'ListSubscriptionsByTopic',
    'Publish',
  ];
  return JSON.stringify({
    Version: '2008-10-17',
    Id: '__default_policy_ID',
    Statement: [
      {
        Sid: '__default_statement_ID',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: actions.map((a) => `SNS:${a}`),
        Resource: topicArn,
        Condition: { StringEquals: { 'AWS:SourceOwner': accountId } },
      },
    ],
  });
}

/** Attribute values a subscription has when none was set. */
const SUBSCRIPTION_DEFAULTS: Readonly<Record<string, string>> = { RawMessageDelivery: 'false', FilterPolicyScope: 'MessageAttributes' };

/** Whether a Subscribe's attributes agree with an existing subscription's (absent in the request: any). */
export function sameAttributes(existing: Readonly<Record<string, string>>, requested: Readonly<Record<string, string>>): boolean {
  return Object.entries(requested).every(([k, v]) => (existing[k] ?? SUBSCRIPTION_DEFAULTS[k] ?? '') === v);
}

/**
 * The MessageId of a FIFO topic's message: derived from its stream sequence, so a duplicate publish
 * (JetStream answers the original's sequence) gets the original's id, and every stored message its own.
 */
export function fifoMessageId(topicArn: string, seq: number): string {
  const h = createHash('sha256').update(`${topicArn}:${seq}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Checks one subscription attribute, with the others it depends on (FilterPolicyScope). */
export function checkSubscriptionAttribute(name: string, value: string, all: Readonly<Record<string, string>>): void {
  if (!SUBSCRIPTION_ATTRIBUTES.has(name)) throw invalid(`AttributeName ${name}`);
  if (name === 'RawMessageDelivery' && value !== 'true' && value !== 'false') throw invalid('RawMessageDelivery must be true or false');
  if (name === 'FilterPolicyScope' && value !== 'MessageAttributes' && value !== 'MessageBody')
    throw invalid('FilterPolicyScope must be MessageAttributes or MessageBody');
  if (name === 'RedrivePolicy' && value !== '') parseRedrivePolicy(value);
  if ((name === 'FilterPolicy' && value !== '') || (name === 'FilterPolicyScope' && all.FilterPolicy)) {
    parseFilterPolicy(
      all.FilterPolicy ?? value,
      (all.FilterPolicyScope ?? (name === 'FilterPolicyScope' ? value : undefined)) === 'MessageBody',
    );
  }
}

/** A subscription's `RedrivePolicy`: the dead-letter queue of failed deliveries. */
export interface RedrivePolicy {
  readonly deadLetterTargetArn: string;
  /** Region, account and name of the queue in `deadLetterTargetArn`. */
  readonly region: string;
  readonly accountId: string;
  readonly queueName: string;
}

/**
 * Parses a subscription `RedrivePolicy` (`{"deadLetterTargetArn": "arn:aws:sqs:<region>:<account>:<queue>"}`),
 * throwing AWS's `InvalidParameter` errors. Whether the queue exists is the caller's check.
 */
export function parseRedrivePolicy(value: string): RedrivePolicy {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalid('RedrivePolicy: failed to parse JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid('RedrivePolicy: failed to parse JSON.');
  const arn = (parsed as { deadLetterTargetArn?: unknown }).deadLetterTargetArn;
  const m = typeof arn === 'string' ? /^arn:aws:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,80}(?:\.fifo)?)$/.exec(arn) : null;
  if (typeof arn !== 'string' || !m) {
    // AWS answers this for a missing key and for anything that is not an ARN; an ARN of another
    // service is not a queue this service can have, which the existence check reports.
    if (typeof arn === 'string' && /^arn:[^:]+:[^:]+:[^:]*:[^:]*:.+$/.test(arn))
      throw invalid(`RedrivePolicy: deadLetterTargetArn ${arn} does not exist`);
    throw invalid('RedrivePolicy: deadLetterTargetArn is an invalid arn');
  }
  return { deadLetterTargetArn: arn, region: m[1] ?? '', accountId: m[2] ?? '', queueName: m[3] ?? '' };
}

/** The redrive policy of `sub`, or undefined (none, or unreadable: stored before it was checked). */
export function redrivePolicyOf(sub: SubscriptionRecord): RedrivePolicy | undefined {
  const value = sub.attributes.RedrivePolicy;
  if (!value) return undefined;
  try {
    return parseRedrivePolicy(value);
  } catch {
    return undefined;
  }
}

/** Checks protocol and endpoint of a Subscribe. */
export function checkEndpoint(protocol: string, endpoint: string | undefined, guard?: EndpointGuard): string {
  if (!PROTOCOLS.has(protocol)) throw invalid('Amazon SNS does not support this protocol string');
  if (!endpoint) throw invalid('Endpoint');
  if (protocol === 'sqs' && !/^arn:aws:sqs:[^:]+:\d{12}:[A-Za-z0-9_.-]+$/.test(endpoint)) throw invalid('SQS endpoint ARN');
  if (protocol !== 'sqs') {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw invalid('Endpoint must be a URL');
    }
    if (url.protocol !== `${protocol}:`) throw invalid(`Endpoint must match the specified protocol`);
    // Host names are checked at each delivery (they resolve then); an address can be refused now.
    const refused = guard?.literalRefusal(url);
    if (refused) throw invalid(`Endpoint Reason: ${refused}, which this service does not deliver to`);
  }
  return endpoint;
}

/** A confirmation token (AWS's are long hex strings too). */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** The topic name in an ARN of this account and region, or undefined. */
export function topicNameOf(arn: string, region: string, accountId: string): string | undefined {
  const prefix = `arn:aws:sns:${region}:${accountId}:`;
  if (!arn.startsWith(prefix)) return undefined;
  const rest = arn.slice(prefix.length);
  return rest.includes(':') ? undefined : rest;
}

/** Splits a subscription ARN (`<topic arn>:<uuid>`) into topic ARN and id. */
export function subscriptionIdOf(arn: string): string | undefined {
  const m = /:([0-9a-f-]{36})$/.exec(arn);
  return m?.[1];
}

/** The message a protocol gets for `record` (MessageStructure json: its key, else `default`). */
export function messageFor(record: PublishedRecord, protocol: string): string {
  if (record.structure !== 'json') return record.message;
  const parsed = JSON.parse(record.message) as Record<string, unknown>;
  const v = parsed[protocol] ?? parsed.default;
  return typeof v === 'string' ? v : JSON.stringify(v);
}
