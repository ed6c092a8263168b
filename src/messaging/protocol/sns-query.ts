/**
 * SNS Query requests → engine requests. SNS does not flatten: maps are
 * `Attributes.entry.N.key`/`.value` (lower case), message attributes `MessageAttributes.entry.N.Name`
 * + `.Value.DataType|StringValue|BinaryValue`, lists `Tags.member.N.Key`, `TagKeys.member.N`,
 * `PublishBatchRequestEntries.member.N.*` (forms as sent by awscli 2.9.19 and client-sns 3.1168).
 */
import type {
  ConfirmSubscriptionRequest,
  CreateTopicRequest,
  ListSubscriptionsByTopicRequest,
  MessageToPublish,
  PageRequest,
  PublishBatchRequest,
  PublishRequest,
  ResourceRequest,
  SetSubscriptionAttributesRequest,
  SetTopicAttributesRequest,
  SnsMessageAttributes,
  SnsMessageAttributeValue,
  SubscribeRequest,
  SubscriptionRequest,
  Tag,
  TagResourceRequest,
  TopicRequest,
  UntagResourceRequest,
} from '../sns-engine.js';
import { snsError } from '../errors.js';
import { indexedGroups, indexedValues, subParams } from './form.js';
import type { QueryFields } from './fields.js';

/** Action names, as sent in `Action=`. */
export const SnsAction = {
  CreateTopic: 'CreateTopic',
  DeleteTopic: 'DeleteTopic',
  ListTopics: 'ListTopics',
  GetTopicAttributes: 'GetTopicAttributes',
  SetTopicAttributes: 'SetTopicAttributes',
  Subscribe: 'Subscribe',
  ConfirmSubscription: 'ConfirmSubscription',
  Unsubscribe: 'Unsubscribe',
  ListSubscriptions: 'ListSubscriptions',
  ListSubscriptionsByTopic: 'ListSubscriptionsByTopic',
  GetSubscriptionAttributes: 'GetSubscriptionAttributes',
  SetSubscriptionAttributes: 'SetSubscriptionAttributes',
  Publish: 'Publish',
  PublishBatch: 'PublishBatch',
  TagResource: 'TagResource',
  UntagResource: 'UntagResource',
  ListTagsForResource: 'ListTagsForResource',
} as const;
/** One of the SNS action names above. */
export type SnsAction = (typeof SnsAction)[keyof typeof SnsAction];

/** True when `name` is an SNS action this API serves. */
export function isSnsAction(name: string): name is SnsAction {
  return Object.hasOwn(SnsAction, name);
}

/** The engine request of each action. */
export interface SnsRequests {
  CreateTopic: CreateTopicRequest;
  DeleteTopic: TopicRequest;
  ListTopics: PageRequest;
  GetTopicAttributes: TopicRequest;
  SetTopicAttributes: SetTopicAttributesRequest;
  Subscribe: SubscribeRequest;
  ConfirmSubscription: ConfirmSubscriptionRequest;
  Unsubscribe: SubscriptionRequest;
  ListSubscriptions: PageRequest;
  ListSubscriptionsByTopic: ListSubscriptionsByTopicRequest;
  GetSubscriptionAttributes: SubscriptionRequest;
  SetSubscriptionAttributes: SetSubscriptionAttributesRequest;
  Publish: PublishRequest;
  PublishBatch: PublishBatchRequest;
  TagResource: TagResourceRequest;
  UntagResource: UntagResourceRequest;
  ListTagsForResource: ResourceRequest;
}

function entryMap(f: QueryFields, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  indexedGroups(f.params, `${prefix}.entry`).forEach((group, i) => {
    const key = group.get('key');
    if (key === undefined) throw f.errors.missing(`${prefix}.entry.${i + 1}.key`);
    out[key] = group.get('value') ?? '';
  });
  return out;
}

function tags(f: QueryFields): Tag[] {
  return indexedGroups(f.params, 'Tags.member').map((group, i) => {
    const key = group.get('Key');
    if (key === undefined) throw f.errors.missing(`Tags.member.${i + 1}.Key`);
    return { Key: key, Value: group.get('Value') ?? '' };
  });
}

/** `MessageAttributes.entry.N.Name` + `.Value.DataType|StringValue|BinaryValue`. */
function messageAttributes(f: QueryFields): SnsMessageAttributes {
  const out: Record<string, SnsMessageAttributeValue> = {};
  indexedGroups(f.params, 'MessageAttributes.entry').forEach((group, i) => {
    const name = group.get('Name');
    if (name === undefined || name === '') throw f.errors.missing(`MessageAttributes.entry.${i + 1}.Name`);
    const v = f.sub(subParams(group, 'Value'));
    const dataType = v.str('DataType');
    if (dataType === undefined) throw f.errors.missing(`MessageAttributes.entry.${i + 1}.Value.DataType`);
    const stringValue = v.str('StringValue');
    const binaryValue = v.binary('BinaryValue');
    out[name] = {
      DataType: dataType,
      ...(stringValue !== undefined ? { StringValue: stringValue } : {}),
      ...(binaryValue !== undefined ? { BinaryValue: binaryValue } : {}),
    };
  });
  return out;
}

function message(f: QueryFields): MessageToPublish {
  const text = f.str('Message');
  if (text === undefined) throw f.errors.missing('Message');
  return {
    Message: text,
    Subject: f.str('Subject'),
    MessageStructure: f.str('MessageStructure'),
    MessageAttributes: messageAttributes(f),
    MessageDeduplicationId: f.str('MessageDeduplicationId'),
    MessageGroupId: f.str('MessageGroupId'),
  };
}

function publishTarget(f: QueryFields): string {
  const target = f.str('TopicArn') || f.str('TargetArn');
  if (target) return target;
  if (f.str('PhoneNumber'))
    throw snsError('InvalidParameter', 'Invalid parameter: PhoneNumber Reason: SMS is not supported by this endpoint');
  throw snsError('InvalidParameter', 'Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter');
}

/** The parser of every action. */
export const snsQueryParsers: { readonly [A in SnsAction]: (f: QueryFields) => SnsRequests[A] } = {
  CreateTopic: (f) => ({
    Name: f.req('Name'),
    Attributes: entryMap(f, 'Attributes'),
    Tags: tags(f),
    DataProtectionPolicy: f.str('DataProtectionPolicy'),
  }),
  DeleteTopic: (f) => ({ TopicArn: f.req('TopicArn') }),
  ListTopics: (f) => ({ NextToken: f.str('NextToken') }),
  GetTopicAttributes: (f) => ({ TopicArn: f.req('TopicArn') }),
  SetTopicAttributes: (f) => ({
    TopicArn: f.req('TopicArn'),
    AttributeName: f.req('AttributeName'),
    AttributeValue: f.str('AttributeValue'),
  }),
  Subscribe: (f) => ({
    TopicArn: f.req('TopicArn'),
    Protocol: f.req('Protocol'),
    Endpoint: f.str('Endpoint'),
    Attributes: entryMap(f, 'Attributes'),
    ReturnSubscriptionArn: f.bool('ReturnSubscriptionArn') ?? false,
  }),
  ConfirmSubscription: (f) => ({
    TopicArn: f.req('TopicArn'),
    Token: f.req('Token'),
    AuthenticateOnUnsubscribe: f.str('AuthenticateOnUnsubscribe'),
  }),
  Unsubscribe: (f) => ({ SubscriptionArn: f.req('SubscriptionArn') }),
  ListSubscriptions: (f) => ({ NextToken: f.str('NextToken') }),
  ListSubscriptionsByTopic: (f) => ({ TopicArn: f.req('TopicArn'), NextToken: f.str('NextToken') }),
  GetSubscriptionAttributes: (f) => ({ SubscriptionArn: f.req('SubscriptionArn') }),
  SetSubscriptionAttributes: (f) => ({
    SubscriptionArn: f.req('SubscriptionArn'),
    AttributeName: f.req('AttributeName'),
    AttributeValue: f.str('AttributeValue'),
  }),
  Publish: (f) => ({ TopicArn: publishTarget(f), ...message(f) }),
  PublishBatch: (f) => ({
    TopicArn: f.req('TopicArn'),
    PublishBatchRequestEntries: indexedGroups(f.params, 'PublishBatchRequestEntries.member').map((group) => {
      const e = f.sub(group);
      return { Id: e.str('Id') ?? '', ...message(e) };
    }),
  }),
  TagResource: (f) => ({ ResourceArn: f.req('ResourceArn'), Tags: tags(f) }),
  UntagResource: (f) => ({ ResourceArn: f.req('ResourceArn'), TagKeys: indexedValues(f.params, 'TagKeys.member') }),
  ListTagsForResource: (f) => ({ ResourceArn: f.req('ResourceArn') }),
};
