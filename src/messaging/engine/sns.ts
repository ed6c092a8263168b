/**
 * `SnsEngine` on JetStream. Topics and subscriptions are KV records; a Publish is answered once the
 * message is in the `MESSAGING_SNS` work-queue stream, and delivery workers on every controller
 * fan it out from there (`sns-delivery.ts`), so an acknowledged Publish survives restarts.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KvEntry } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { MessagingError, snsError } from '../errors.js';
import type * as Sns from '../sns-engine.js';
import type { SnsSettings } from '../settings.js';
import { rpcPack, rpcUnpack, sequenceNumber } from './codec.js';
import { KvCache } from './kv-cache.js';
import { sharedValue, subjects, type MessagingStore } from './layout.js';
import {
  checkSubscriptionDeliveryPolicy,
  checkTopicDeliveryPolicy,
  subscriptionEffectiveJson,
  topicEffectiveJson,
} from './delivery-policy.js';
import { startSnsDelivery } from './sns-delivery.js';
import {
  checkEndpoint,
  checkSubscriptionAttribute,
  checkTopicAttribute,
  checkTopicName,
  checkTopicSubscription,
  defaultTopicPolicy,
  fifoMessageId,
  newToken,
  parseRedrivePolicy,
  restoreKey,
  sameAttributes,
  subscriptionIdOf,
  topicNameOf,
  type HttpTask,
  type PublishedRecord,
  type SubscriptionRecord,
  type TopicRecord,
} from './sns-records.js';
import { generateSigningIdentity, identityFrom, type SigningIdentity } from './sns-signing.js';
import type { JetStreamSqs } from './sqs.js';
import { readFile } from 'node:fs/promises';
import { createEndpointGuard, type EndpointGuard } from './endpoint-guard.js';

/** Options of `createJetStreamSns`. */
export interface SnsOptions {
  readonly js: JetStreamClient;
  readonly store: MessagingStore;
  readonly sqs: JetStreamSqs;
  readonly settings: SnsSettings;
  readonly accountId: string;
  readonly region: string;
  readonly publicUrl: () => string;
  readonly log: Logger;
  readonly workers: boolean;
  /** Where http(s) subscriptions may point; default: from `settings` (endpoint_allow/deny). */
  readonly guard?: EndpointGuard;
}

/** The SNS engine with what the HTTP layer and the service need besides it. */
export interface SnsRuntime {
  readonly engine: Sns.SnsEngine;
  readonly identity: SigningIdentity;
  /** Path (under the API origin) where the signing certificate is served. */
  readonly certificatePath: string;
  stop(): Promise<void>;
}

const PAGE = 100;

function paged<T>(items: readonly T[], token: string | undefined): { items: T[]; NextToken?: string } {
  const start = token ? Number(Buffer.from(token, 'base64url').toString()) || 0 : 0;
  const end = start + PAGE;
  return { items: items.slice(start, end), ...(end < items.length ? { NextToken: Buffer.from(String(end)).toString('base64url') } : {}) };
}

async function loadIdentity(o: SnsOptions): Promise<SigningIdentity> {
  if (o.settings.signingKeyPem && o.settings.signingCertPem) return identityFrom(o.settings.signingKeyPem, o.settings.signingCertPem);
  if (o.settings.signingKeyFile && o.settings.signingCertFile) {
    return identityFrom(await readFile(o.settings.signingKeyFile, 'utf8'), await readFile(o.settings.signingCertFile, 'utf8'));
  }
  const raw = await sharedValue(o.store.keys, 'sns-signing', () => {
    const g = generateSigningIdentity();
    return rpcPack({ key: g.keyPem, cert: g.certPem });
  });
  const { key, cert } = rpcUnpack<{ key: string; cert: string }>(raw);
  return identityFrom(key, cert);
}

/** Builds the SNS engine and (unless `workers` is false) starts this controller's delivery workers. */
export async function createJetStreamSns(o: SnsOptions): Promise<SnsRuntime> {
  const { js, log, region, accountId } = o;
  const guard = o.guard ?? createEndpointGuard({ allow: o.settings.endpointAllow, deny: o.settings.endpointDeny });
  const kv = o.store.sns;
  const topics = new KvCache<TopicRecord>(kv, 't.', (e: KvEntry) => e.json<TopicRecord>(), log);
  const subs = new KvCache<SubscriptionRecord>(kv, 's.', (e: KvEntry) => e.json<SubscriptionRecord>(), log);
  await topics.start();
  await subs.start();
  const identity = await loadIdentity(o);
  const certificatePath = `/SimpleNotificationService-${identity.id}.pem`;

  const topicOf = async (arn: string): Promise<TopicRecord> => {
    const name = topicNameOf(arn, region, accountId);
    const t = name === undefined ? undefined : await topics.get(name);
    if (!t) throw snsError('NotFound', 'Topic does not exist');
    return t;
  };
  const subOf = async (arn: string): Promise<{ value: SubscriptionRecord; revision: number }> => {
    const id = subscriptionIdOf(arn);
    const s = id === undefined ? undefined : await subs.fresh(id);
    if (!s || s.value.arn !== arn) throw snsError('NotFound', 'Subscription does not exist');
    return s;
  };
  const putSub = async (s: SubscriptionRecord, revision?: number) => {
    const data = JSON.stringify(s);
    const rev = revision === undefined ? await kv.create(`s.${s.id}`, data) : await kv.update(`s.${s.id}`, data, revision);
    subs.remember(s.id, s, rev);
  };
  const putTopic = async (t: TopicRecord) => {
    const rev = await kv.put(`t.${t.name}`, JSON.stringify(t));
    topics.remember(t.name, t, rev);
  };
  // The dead-letter queue must be a queue of this service (same region and account, as AWS requires);
  // FIFO subscriptions of FIFO topics need a FIFO queue.
  const checkDeadLetterQueue = async (
    value: string | undefined,
    topicArn: string,
    protocol: string,
    endpoint: string,
    ctx: Sns.RequestContext,
  ) => {
    if (!value) return;
    const p = parseRedrivePolicy(value);
    const missing = () =>
      snsError('InvalidParameter', `Invalid parameter: RedrivePolicy: deadLetterTargetArn ${p.deadLetterTargetArn} does not exist`);
    if (p.region !== region || p.accountId !== accountId) throw missing();
    try {
      await o.sqs.getQueueUrl({ QueueName: p.queueName }, ctx);
    } catch (err) {
      if (err instanceof MessagingError) throw missing();
      throw err;
    }
    if (topicArn.endsWith('.fifo') && protocol === 'sqs' && endpoint.endsWith('.fifo') && !p.queueName.endsWith('.fifo')) {
      throw snsError(
        'InvalidParameter',
        'Invalid parameter: RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.',
      );
    }
  };
  // `e.<hash of topic, protocol, endpoint>` names the one subscription of that endpoint. A claim
  // whose subscription is not there (yet) is waited for briefly: its Subscribe writes the record
  // right after the claim; one left by a crash between the two is taken over.
  const endpointKey = (topicArn: string, protocol: string, endpoint: string) =>
    `e.${createHash('sha256').update(`${topicArn}\n${protocol}\n${endpoint}`).digest('hex').slice(0, 40)}`;
  const claimEndpoint = async (
    topicArn: string,
    protocol: string,
    endpoint: string,
    id: string,
  ): Promise<SubscriptionRecord | undefined> => {
    const key = endpointKey(topicArn, protocol, endpoint);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await kv.create(key, id);
        return undefined;
      } catch {
        // Claimed: by whom, and is its subscription there?
      }
      const claim = await kv.get(key);
      if (!claim || claim.operation !== 'PUT') continue;
      for (let waited = 0; waited <= 2000; waited += 100) {
        const other = await subs.fresh(claim.string());
        if (other) return other.value;
        await new Promise((r) => setTimeout(r, 100));
      }
      try {
        await kv.update(key, id, claim.revision);
        return undefined;
      } catch {
        // Someone else took it over meanwhile: look again.
      }
    }
    throw snsError('InternalError', 'Subscribe: the endpoint is being subscribed concurrently; try again');
  };
  const releaseEndpoint = async (s: SubscriptionRecord) => {
    const key = endpointKey(s.topicArn, s.protocol, s.endpoint);
    const claim = await kv.get(key);
    if (claim && claim.operation === 'PUT' && claim.string() === s.id)
      await kv.delete(key, { previousSeq: claim.revision }).catch(() => undefined);
  };
  // The SubscribeURL of an UnsubscribeConfirmation: the subscription comes back as it was (same ARN),
  // unless the endpoint was subscribed again meanwhile (then that subscription's ARN answers).
  const restore = async (t: TopicRecord, token: string): Promise<{ SubscriptionArn: string }> => {
    const e = /^[0-9a-f]{64}$/.test(token) ? await o.store.snsAttempts.get(restoreKey(token)) : null;
    const old = e && e.operation === 'PUT' ? e.json<SubscriptionRecord>() : undefined;
    if (!old || old.topicArn !== t.arn) throw snsError('InvalidParameter', 'Invalid token');
    const winner = await claimEndpoint(old.topicArn, old.protocol, old.endpoint, old.id);
    if (!winner) await putSub(old);
    await o.store.snsAttempts.delete(restoreKey(token)).catch(() => undefined);
    return { SubscriptionArn: (winner ?? old).arn };
  };
  const enqueueHttp = (task: HttpTask, msgId: string) => js.publish(subjects.snsHttp, rpcPack(task), { msgID: msgId });
  const view = (s: SubscriptionRecord): Sns.Subscription => ({
    SubscriptionArn: s.confirmed ? s.arn : 'PendingConfirmation',
    Owner: s.owner,
    Protocol: s.protocol,
    Endpoint: s.endpoint,
    TopicArn: s.topicArn,
  });

  const publishOne = async (t: TopicRecord, m: Sns.MessageToPublish, ctx: Sns.RequestContext): Promise<Sns.PublishResult> => {
    const fifo = t.attributes.FifoTopic === 'true';
    if (fifo && !m.MessageGroupId)
      throw snsError('InvalidParameter', 'Invalid parameter: The MessageGroupId parameter is required for FIFO topics');
    if (!fifo && m.MessageDeduplicationId)
      throw snsError(
        'InvalidParameter',
        'Invalid parameter: MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type',
      );
    if (m.MessageStructure === 'json') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(m.Message);
      } catch {
        throw snsError('InvalidParameter', 'Invalid parameter: Message Structure - JSON message body failed to parse');
      }
      if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { default?: unknown }).default !== 'string') {
        throw snsError('InvalidParameter', 'Invalid parameter: Message Structure - No default entry in JSON message body');
      }
    }
    let dedupId = m.MessageDeduplicationId;
    if (fifo && dedupId === undefined) {
      if (t.attributes.ContentBasedDeduplication !== 'true')
        throw snsError(
          'InvalidParameter',
          'Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly',
        );
      dedupId = createHash('sha256').update(m.Message, 'utf8').digest('hex');
    }
    // FIFO: the id derives from the stream sequence (`fifoMessageId`): a duplicate within the
    // deduplication window answers the original's, a later publish of the same content gets its own.
    const record: PublishedRecord = {
      topicArn: t.arn,
      messageId: fifo ? '' : randomUUID(),
      message: m.Message,
      ...(m.Subject !== undefined ? { subject: m.Subject } : {}),
      ...(m.MessageStructure !== undefined ? { structure: m.MessageStructure } : {}),
      attributes: m.MessageAttributes,
      ...(m.MessageGroupId !== undefined ? { group: m.MessageGroupId } : {}),
      ...(dedupId !== undefined ? { dedupId } : {}),
      timestamp: new Date().toISOString(),
      ...(ctx.accessKeyId ? { senderId: ctx.accessKeyId } : {}),
    };
    // FifoThroughputScope MessageGroup: deduplication per message group (AWS).
    const dedupKey =
      t.attributes.FifoThroughputScope === 'MessageGroup' ? `${t.arn}:${m.MessageGroupId}:${dedupId}` : `${t.arn}:${dedupId}`;
    const ack = await js.publish(
      fifo ? subjects.snsPublishFifo : subjects.snsPublish,
      rpcPack(record),
      dedupId === undefined ? {} : { msgID: dedupKey },
    );
    return fifo ? { MessageId: fifoMessageId(t.arn, ack.seq), SequenceNumber: sequenceNumber(ack.seq) } : { MessageId: record.messageId };
  };

  const engine: Sns.SnsEngine = {
    async createTopic(req, ctx) {
      checkTopicName(req.Name, req.Attributes);
      for (const [k, v] of Object.entries(req.Attributes)) checkTopicAttribute(k, v);
      if (req.Attributes.DeliveryPolicy) checkTopicDeliveryPolicy(req.Attributes.DeliveryPolicy, o.settings);
      const arn = `arn:aws:sns:${ctx.region}:${ctx.accountId}:${req.Name}`;
      if (!(await topics.get(req.Name))) await putTopic({ name: req.Name, arn, attributes: { ...req.Attributes }, tags: [...req.Tags] });
      return { TopicArn: arn };
    },
    async deleteTopic(req) {
      const name = topicNameOf(req.TopicArn, region, accountId);
      const t = name === undefined ? undefined : await topics.get(name);
      if (!t) return;
      await kv.delete(`t.${t.name}`);
      for (const s of await subs.all()) {
        if (s.value.topicArn !== t.arn) continue;
        await kv.delete(`s.${s.name}`);
        await releaseEndpoint(s.value);
      }
      topics.forget(t.name);
    },
    async listTopics(req) {
      const all = (await topics.all()).map((t) => ({ TopicArn: t.value.arn }));
      const p = paged(all, req.NextToken);
      return { Topics: p.items, NextToken: p.NextToken };
    },
    async getTopicAttributes(req) {
      const t = await topicOf(req.TopicArn);
      const mine = (await subs.all()).filter((s) => s.value.topicArn === t.arn);
      return {
        Attributes: {
          SignatureVersion: '1',
          DisplayName: '',
          Policy: defaultTopicPolicy(t.arn, accountId),
          ...t.attributes,
          TopicArn: t.arn,
          Owner: accountId,
          SubscriptionsConfirmed: String(mine.filter((s) => s.value.confirmed).length),
          SubscriptionsPending: String(mine.filter((s) => !s.value.confirmed).length),
          SubscriptionsDeleted: '0',
          EffectiveDeliveryPolicy: topicEffectiveJson(o.settings, t.attributes.DeliveryPolicy),
        },
      };
    },
    async setTopicAttributes(req) {
      const t = await topicOf(req.TopicArn);
      checkTopicAttribute(req.AttributeName, req.AttributeValue ?? '');
      if (req.AttributeName === 'FifoTopic')
        throw snsError('InvalidParameter', 'Invalid parameter: AttributeName FifoTopic cannot be changed');
      if (req.AttributeName === 'DeliveryPolicy') checkTopicDeliveryPolicy(req.AttributeValue ?? '', o.settings);
      await putTopic({ ...t, attributes: { ...t.attributes, [req.AttributeName]: req.AttributeValue ?? '' } });
    },
    async subscribe(req, ctx) {
      const t = await topicOf(req.TopicArn);
      const endpoint = checkEndpoint(req.Protocol, req.Endpoint, guard);
      checkTopicSubscription(t, req.Protocol, endpoint);
      for (const [k, v] of Object.entries(req.Attributes)) checkSubscriptionAttribute(k, v, req.Attributes);
      checkSubscriptionDeliveryPolicy(req.Attributes.DeliveryPolicy ?? '', req.Protocol, t.attributes.DeliveryPolicy, o.settings);
      await checkDeadLetterQueue(req.Attributes.RedrivePolicy, t.arn, req.Protocol, endpoint, ctx);
      const answer = (s: SubscriptionRecord) => {
        // AWS: the same subscription again answers its ARN; with other attributes it is refused.
        if (!sameAttributes(s.attributes, req.Attributes))
          throw snsError('InvalidParameter', 'Invalid parameter: Attributes Reason: Subscription already exists with different attributes');
        return { SubscriptionArn: s.confirmed || req.ReturnSubscriptionArn ? s.arn : 'pending confirmation' };
      };
      const existing = (await subs.all()).find(
        (s) => s.value.topicArn === t.arn && s.value.protocol === req.Protocol && s.value.endpoint === endpoint,
      );
      if (existing) return answer(existing.value);
      const id = randomUUID();
      // Concurrent Subscribes of one endpoint (on any controllers): one claim wins, the others answer its subscription.
      const winner = await claimEndpoint(t.arn, req.Protocol, endpoint, id);
      if (winner) return answer(winner);
      const confirmed = req.Protocol === 'sqs';
      const s: SubscriptionRecord = {
        id,
        arn: `${t.arn}:${id}`,
        topicArn: t.arn,
        protocol: req.Protocol,
        endpoint,
        owner: ctx.accountId,
        attributes: { ...req.Attributes },
        confirmed,
        token: newToken(),
        authenticateOnUnsubscribe: false,
        confirmationWasAuthenticated: confirmed,
      };
      await putSub(s);
      if (!confirmed)
        await enqueueHttp(
          { kind: 'confirmation', subId: id, messageId: randomUUID(), timestamp: new Date().toISOString() },
          `confirm:${id}`,
        );
      return { SubscriptionArn: confirmed || req.ReturnSubscriptionArn ? s.arn : 'pending confirmation' };
    },
    async confirmSubscription(req, ctx) {
      const t = await topicOf(req.TopicArn);
      const found = (await subs.all()).find((s) => s.value.topicArn === t.arn && s.value.token === req.Token);
      if (!found) return restore(t, req.Token);
      const current = await subs.fresh(found.name);
      if (!current) throw snsError('InvalidParameter', 'Invalid token');
      if (!current.value.confirmed) {
        await putSub(
          {
            ...current.value,
            confirmed: true,
            authenticateOnUnsubscribe: req.AuthenticateOnUnsubscribe === 'true',
            confirmationWasAuthenticated: ctx.authenticated,
          },
          current.revision,
        );
      }
      return { SubscriptionArn: current.value.arn };
    },
    async unsubscribe(req, ctx) {
      const { value } = await subOf(req.SubscriptionArn);
      if (!ctx.authenticated && value.authenticateOnUnsubscribe)
        throw snsError('AuthorizationError', 'Unsubscribe requires authentication for this subscription');
      await kv.delete(`s.${value.id}`);
      subs.forget(value.id);
      await releaseEndpoint(value);
      if (value.confirmed && value.protocol !== 'sqs') {
        // AWS tells the endpoint (UnsubscribeConfirmation); its SubscribeURL restores the subscription.
        await o.store.snsAttempts.put(restoreKey(value.token), JSON.stringify(value));
        await enqueueHttp(
          { kind: 'unsubscribed', subId: value.id, sub: value, messageId: randomUUID(), timestamp: new Date().toISOString() },
          `unsubscribed:${value.id}`,
        );
      }
    },
    async listSubscriptions(req) {
      const p = paged(
        (await subs.all()).map((s) => view(s.value)),
        req.NextToken,
      );
      return { Subscriptions: p.items, NextToken: p.NextToken };
    },
    async listSubscriptionsByTopic(req) {
      const t = await topicOf(req.TopicArn);
      const p = paged(
        (await subs.all()).filter((s) => s.value.topicArn === t.arn).map((s) => view(s.value)),
        req.NextToken,
      );
      return { Subscriptions: p.items, NextToken: p.NextToken };
    },
    async getSubscriptionAttributes(req) {
      const { value: s } = await subOf(req.SubscriptionArn);
      // AWS shows the effective policy of http(s) subscriptions only; a topic deleted meanwhile counts as no policy.
      const http = s.protocol === 'http' || s.protocol === 'https';
      const topicPolicy = http
        ? (await topics.get(s.topicArn.slice(s.topicArn.lastIndexOf(':') + 1)))?.attributes.DeliveryPolicy
        : undefined;
      return {
        Attributes: {
          RawMessageDelivery: 'false',
          ...s.attributes,
          SubscriptionArn: s.arn,
          TopicArn: s.topicArn,
          Owner: s.owner,
          Protocol: s.protocol,
          Endpoint: s.endpoint,
          PendingConfirmation: String(!s.confirmed),
          ConfirmationWasAuthenticated: String(s.confirmationWasAuthenticated),
          ...(http ? { EffectiveDeliveryPolicy: subscriptionEffectiveJson(o.settings, topicPolicy, s.attributes.DeliveryPolicy) } : {}),
        },
      };
    },
    async setSubscriptionAttributes(req, ctx) {
      const { value, revision } = await subOf(req.SubscriptionArn);
      const attributes = { ...value.attributes, [req.AttributeName]: req.AttributeValue ?? '' };
      checkSubscriptionAttribute(req.AttributeName, req.AttributeValue ?? '', attributes);
      if (req.AttributeName === 'RedrivePolicy')
        await checkDeadLetterQueue(req.AttributeValue, value.topicArn, value.protocol, value.endpoint, ctx);
      if (req.AttributeName === 'DeliveryPolicy') {
        const topic = await topics.get(value.topicArn.slice(value.topicArn.lastIndexOf(':') + 1));
        checkSubscriptionDeliveryPolicy(req.AttributeValue ?? '', value.protocol, topic?.attributes.DeliveryPolicy, o.settings);
      }
      await putSub({ ...value, attributes }, revision);
    },
    publish: async (req, ctx) => publishOne(await topicOf(req.TopicArn), req, ctx),
    async publishBatch(req, ctx) {
      const t = await topicOf(req.TopicArn);
      const Successful: { Id: string; MessageId: string; SequenceNumber?: string }[] = [];
      const Failed: Sns.PublishBatchResult['Failed'][number][] = [];
      for (const e of req.PublishBatchRequestEntries) {
        try {
          Successful.push({ Id: e.Id, ...(await publishOne(t, e, ctx)) });
        } catch (err) {
          if (!(err instanceof MessagingError)) throw err;
          Failed.push({ Id: e.Id, SenderFault: err.def.fault === 'Sender', Code: err.code, Message: err.message });
        }
      }
      return { Successful, Failed };
    },
    async tagResource(req) {
      const t = await taggable(req.ResourceArn);
      const keys = new Set(req.Tags.map((x) => x.Key));
      const tags = [...t.tags.filter((x) => !keys.has(x.Key)), ...req.Tags];
      if (tags.length > 50) throw snsError('TagLimitExceeded');
      await putTopic({ ...t, tags });
    },
    async untagResource(req) {
      const t = await taggable(req.ResourceArn);
      await putTopic({ ...t, tags: t.tags.filter((x) => !req.TagKeys.includes(x.Key)) });
    },
    listTagsForResource: async (req) => ({ Tags: (await taggable(req.ResourceArn)).tags }),
  };

  async function taggable(arn: string): Promise<TopicRecord> {
    try {
      return await topicOf(arn);
    } catch {
      throw snsError('ResourceNotFound', 'Resource does not exist');
    }
  }

  const delivery = o.workers
    ? await startSnsDelivery({
        js,
        attempts: o.store.snsAttempts,
        sqs: o.sqs,
        topics,
        subs,
        identity,
        settings: o.settings,
        region,
        accountId,
        publicUrl: o.publicUrl,
        certificatePath,
        log,
        guard,
      })
    : undefined;
  return {
    engine,
    identity,
    certificatePath,
    async stop() {
      await delivery?.stop();
      topics.stop();
      subs.stop();
    },
  };
}
