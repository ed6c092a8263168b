/**
 * Runs one SNS action (stateless checks, engine call) and renders its Query response:
 * `<XResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><XResult>…</XResult>
 * <ResponseMetadata><RequestId/></ResponseMetadata></XResponse>`. SNS wraps lists in `<member>`
 * and maps in `<entry><key/><value/></entry>`, unlike SQS.
 */
import { snsError, toBatchEntry } from '../errors.js';
import type { RequestContext } from '../sqs-engine.js';
import type { BatchResultErrorEntry } from '../errors.js';
import type {
  AttributesResult,
  ListSubscriptionsResult,
  ListTagsForResourceResult,
  ListTopicsResult,
  MessageToPublish,
  PublishBatchResult,
  PublishResult,
  SnsEngine,
  StringMap,
  Subscription,
  SubscriptionArnResult,
  Tag,
  TopicArnResult,
} from '../sns-engine.js';
import type { SnsAction, SnsRequests } from './sns-query.js';
import { checkSnsBatch, checkSnsMessageAttributes, SNS_MAX_BYTES, snsMessageSize } from './validate.js';
import { el, opt, type XmlNode } from './xml.js';

/** The SNS Query namespace. */
export const SNS_XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

type Empty = Record<string, never>;
const EMPTY = {} as Empty;

/** The output of each action (the engine's result; SNS adds nothing on the wire). */
export interface SnsOutputs {
  CreateTopic: TopicArnResult;
  DeleteTopic: Empty;
  ListTopics: ListTopicsResult;
  GetTopicAttributes: AttributesResult;
  SetTopicAttributes: Empty;
  Subscribe: SubscriptionArnResult;
  ConfirmSubscription: SubscriptionArnResult;
  Unsubscribe: Empty;
  ListSubscriptions: ListSubscriptionsResult;
  ListSubscriptionsByTopic: ListSubscriptionsResult;
  GetSubscriptionAttributes: AttributesResult;
  SetSubscriptionAttributes: Empty;
  Publish: PublishResult;
  PublishBatch: PublishBatchResult;
  TagResource: Empty;
  UntagResource: Empty;
  ListTagsForResource: ListTagsForResourceResult;
}

type Runner<A extends SnsAction> = (engine: SnsEngine, req: SnsRequests[A], ctx: RequestContext) => Promise<SnsOutputs[A]>;

/** Message checks shared by Publish and PublishBatch entries. */
function checkPublish(m: MessageToPublish): void {
  if (m.Message === '') throw snsError('InvalidParameter', 'Invalid parameter: Empty message');
  if (m.Subject !== undefined && (m.Subject.length > 100 || m.Subject === '' || /[\r\n]/.test(m.Subject))) {
    throw snsError('InvalidParameter', 'Invalid parameter: Subject');
  }
  checkSnsMessageAttributes(m.MessageAttributes);
  if (snsMessageSize(m.Message, m.MessageAttributes) > SNS_MAX_BYTES) {
    throw snsError('InvalidParameter', 'Invalid parameter: Message too long');
  }
}

/** The runner of every action. */
export const snsRunners: { readonly [A in SnsAction]: Runner<A> } = {
  CreateTopic: (engine, req, ctx) => engine.createTopic(req, ctx),
  DeleteTopic: async (engine, req, ctx) => (await engine.deleteTopic(req, ctx), EMPTY),
  ListTopics: (engine, req, ctx) => engine.listTopics(req, ctx),
  GetTopicAttributes: (engine, req, ctx) => engine.getTopicAttributes(req, ctx),
  SetTopicAttributes: async (engine, req, ctx) => (await engine.setTopicAttributes(req, ctx), EMPTY),
  Subscribe: (engine, req, ctx) => engine.subscribe(req, ctx),
  ConfirmSubscription: (engine, req, ctx) => engine.confirmSubscription(req, ctx),
  Unsubscribe: async (engine, req, ctx) => (await engine.unsubscribe(req, ctx), EMPTY),
  ListSubscriptions: (engine, req, ctx) => engine.listSubscriptions(req, ctx),
  ListSubscriptionsByTopic: (engine, req, ctx) => engine.listSubscriptionsByTopic(req, ctx),
  GetSubscriptionAttributes: (engine, req, ctx) => engine.getSubscriptionAttributes(req, ctx),
  SetSubscriptionAttributes: async (engine, req, ctx) => (await engine.setSubscriptionAttributes(req, ctx), EMPTY),
  async Publish(engine, req, ctx) {
    checkPublish(req);
    return engine.publish(req, ctx);
  },
  async PublishBatch(engine, req, ctx) {
    const entries = req.PublishBatchRequestEntries;
    checkSnsBatch(entries.map((e) => e.Id));
    const total = entries.reduce((sum, e) => sum + snsMessageSize(e.Message, e.MessageAttributes), 0);
    if (total > SNS_MAX_BYTES) throw snsError('BatchRequestTooLong');
    const valid: (typeof entries)[number][] = [];
    const failed: BatchResultErrorEntry[] = [];
    for (const entry of entries) {
      try {
        checkPublish(entry);
        valid.push(entry);
      } catch (err) {
        failed.push(toBatchEntry(entry.Id, err));
      }
    }
    const out =
      valid.length > 0 ? await engine.publishBatch({ ...req, PublishBatchRequestEntries: valid }, ctx) : { Successful: [], Failed: [] };
    return { Successful: out.Successful, Failed: [...failed, ...out.Failed] };
  },
  TagResource: async (engine, req, ctx) => (await engine.tagResource(req, ctx), EMPTY),
  UntagResource: async (engine, req, ctx) => (await engine.untagResource(req, ctx), EMPTY),
  ListTagsForResource: (engine, req, ctx) => engine.listTagsForResource(req, ctx),
};

const member = (children: XmlNode[]): XmlNode => el('member', children);

function entries(map: StringMap): XmlNode {
  return el(
    'Attributes',
    Object.entries(map).map(([k, v]) => el('entry', [el('key', k), el('value', v)])),
  );
}

function subscriptions(out: ListSubscriptionsResult): XmlNode[] {
  const item = (s: Subscription): XmlNode =>
    member([
      el('TopicArn', s.TopicArn),
      el('Protocol', s.Protocol),
      el('SubscriptionArn', s.SubscriptionArn),
      el('Owner', s.Owner),
      el('Endpoint', s.Endpoint),
    ]);
  return [el('Subscriptions', out.Subscriptions.map(item)), ...opt('NextToken', out.NextToken)];
}

function tagList(tags: readonly Tag[]): XmlNode {
  return el(
    'Tags',
    tags.map((t) => member([el('Key', t.Key), el('Value', t.Value)])),
  );
}

/** Children of `<XResult>`, or undefined for actions whose response has no result element. */
const snsXmlResults: { readonly [A in SnsAction]: (o: SnsOutputs[A]) => XmlNode[] | undefined } = {
  CreateTopic: (o) => [el('TopicArn', o.TopicArn)],
  DeleteTopic: () => undefined,
  ListTopics: (o) => [
    el(
      'Topics',
      o.Topics.map((t) => member([el('TopicArn', t.TopicArn)])),
    ),
    ...opt('NextToken', o.NextToken),
  ],
  GetTopicAttributes: (o) => [entries(o.Attributes)],
  SetTopicAttributes: () => undefined,
  Subscribe: (o) => [el('SubscriptionArn', o.SubscriptionArn)],
  ConfirmSubscription: (o) => [el('SubscriptionArn', o.SubscriptionArn)],
  Unsubscribe: () => undefined,
  ListSubscriptions: subscriptions,
  ListSubscriptionsByTopic: subscriptions,
  GetSubscriptionAttributes: (o) => [entries(o.Attributes)],
  SetSubscriptionAttributes: () => undefined,
  Publish: (o) => [el('MessageId', o.MessageId), ...opt('SequenceNumber', o.SequenceNumber)],
  PublishBatch: (o) => [
    el(
      'Successful',
      o.Successful.map((s) => member([el('Id', s.Id), el('MessageId', s.MessageId), ...opt('SequenceNumber', s.SequenceNumber)])),
    ),
    el(
      'Failed',
      o.Failed.map((f) =>
        member([el('Id', f.Id), el('Code', f.Code), ...opt('Message', f.Message), el('SenderFault', String(f.SenderFault))]),
      ),
    ),
  ],
  // These two have an (empty) output shape in the model, so AWS sends an empty result element.
  TagResource: () => [],
  UntagResource: () => [],
  ListTagsForResource: (o) => [tagList(o.Tags)],
};

/** The whole success document of `action`. */
export function snsXmlResponse<A extends SnsAction>(action: A, output: SnsOutputs[A], requestId: string): XmlNode {
  const result = snsXmlResults[action](output);
  return {
    name: `${action}Response`,
    xmlns: SNS_XMLNS,
    children: [...(result ? [el(`${action}Result`, result)] : []), el('ResponseMetadata', [el('RequestId', requestId)])],
  };
}
