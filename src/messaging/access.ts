/**
 * What each messaging credential may do: the `allow:` rules of a `messaging.credentials` entry,
 * checked after the signature and before the engine, with the answers AWS gives when IAM says no
 * (SQS `AccessDenied`, SNS `AuthorizationError`, both 403).
 *
 * ```yaml
 * credentials:
 *   - access_key_id: AKIAORDERS
 *     secret_access_key: …
 *     allow:
 *       - { actions: ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"], resources: ["orders-*"] }
 *       - { actions: ["sns:Publish"], resources: ["order-events"] }
 * ```
 *
 * Rules only allow; a request is allowed when one rule matches both its action and its resource.
 * No `allow` key = everything (the behaviour before scopes existed). Actions are IAM action names
 * (`sqs:SendMessage`, case-insensitive; `*` wildcards such as `sqs:*`, `sqs:Get*`, `*`); the batch
 * actions are covered by their single forms, as in IAM. Resources are queue or topic names with `*`
 * wildcards (case-sensitive, like the names); absent = `*`. Actions without a queue or topic
 * (ListQueues, ListTopics, ListSubscriptions, CancelMessageMoveTask) need a rule whose resources
 * include `*`, as IAM needs `Resource: "*"` for them.
 *
 * Writing into another queue is checked as `sqs:SendMessage` on that queue: subscribing a queue to a
 * topic, a dead-letter queue in a `RedrivePolicy`, a move task's destination. Without that, a
 * credential scoped to its own topic or queue could have messages put into any queue.
 */
import { commonError, snsError, type MessagingError, type Service } from './errors.js';
import { SnsAction } from './protocol/sns-query.js';
import { SqsAction } from './protocol/sqs-types.js';

/** One `allow:` entry as resolved from the config. */
export interface AccessRule {
  readonly actions: readonly string[];
  /** Queue or topic name patterns; `*` matches everything. */
  readonly resources: readonly string[];
}

/** A credential with its rules; `allow` undefined = full access. */
export interface ScopedCredential {
  readonly accessKeyId: string;
  readonly allow?: readonly AccessRule[];
}

/** Decides requests of authenticated callers. */
export interface AccessControl {
  /**
   * Throws the service's access error unless `accessKeyId` may run `action` on what `request`
   * (the parsed request of the action) names.
   */
  check(accessKeyId: string, service: Service, action: string, request: object): void;
}

// Batch actions are authorised as their single forms (IAM has no separate batch actions).
const BATCH_TO_SINGLE: Readonly<Record<string, string>> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
  PublishBatch: 'Publish',
};

/** The IAM action names per service, e.g. `SendMessage` (batch actions excluded). */
export const IAM_ACTIONS: Readonly<Record<Service, readonly string[]>> = {
  sqs: Object.values(SqsAction).filter((a) => !(a in BATCH_TO_SINGLE)),
  sns: Object.values(SnsAction).filter((a) => !(a in BATCH_TO_SINGLE)),
};

function globRegExp(pattern: string, flags = ''): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, flags);
}

/** True for `*`, `sqs:*`, `sns:Publish`, `sqs:Get*`: a pattern that matches at least one known action. */
export function isActionPattern(text: string): boolean {
  if (text === '*') return true;
  const m = /^(sqs|sns):([A-Za-z*]{1,64})$/i.exec(text);
  if (!m?.[1] || !m[2]) return false;
  const re = globRegExp(m[2], 'i');
  return IAM_ACTIONS[m[1].toLowerCase() as Service].some((a) => re.test(a));
}

/** True for a queue or topic name pattern: letters, digits, `-`, `_`, `.` and `*`. */
export function isResourcePattern(text: string): boolean {
  return /^[A-Za-z0-9_.*-]{1,256}$/.test(text);
}

/** A resource the request touches and the action it needs on it. */
interface Need {
  readonly service: Service;
  readonly action: string;
  /** Undefined: the action names no queue or topic. */
  readonly resource?: string;
}

const lastSegment = (arn: unknown): string | undefined =>
  typeof arn === 'string' && arn !== '' ? arn.slice(arn.lastIndexOf(':') + 1) : undefined;
// SNS topic, subscription and resource ARNs all carry the topic name as the sixth field.
const topicOf = (arn: unknown): string | undefined => (typeof arn === 'string' ? arn.split(':')[5] || undefined : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function deadLetterQueue(redrivePolicy: unknown): string | undefined {
  if (typeof redrivePolicy !== 'string' || redrivePolicy === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(redrivePolicy);
    return typeof parsed === 'object' && parsed !== null ? lastSegment((parsed as Record<string, unknown>).deadLetterTargetArn) : undefined;
  } catch {
    return undefined;
  }
}

/** What `action` with the parsed `request` needs, in the order it is checked. */
export function needsOf(service: Service, action: string, request: object): Need[] {
  const r = request as Readonly<Record<string, unknown>>;
  const single = BATCH_TO_SINGLE[action] ?? action;
  const send = (queue: string | undefined): Need[] => (queue ? [{ service: 'sqs', action: 'SendMessage', resource: queue }] : []);
  const attributes = (typeof r.Attributes === 'object' && r.Attributes !== null ? r.Attributes : {}) as Readonly<Record<string, unknown>>;
  if (service === 'sqs') {
    const resource = text(r.QueueName) ?? lastSegment(r.SourceArn);
    return [
      { service, action: single, resource },
      ...send(deadLetterQueue(attributes.RedrivePolicy)),
      ...send(lastSegment(r.DestinationArn)),
    ];
  }
  const resource = action === 'CreateTopic' ? text(r.Name) : topicOf(r.TopicArn ?? r.SubscriptionArn ?? r.ResourceArn);
  return [
    { service, action: single, resource },
    ...(action === 'Subscribe' && r.Protocol === 'sqs' ? send(lastSegment(r.Endpoint)) : []),
    ...send(deadLetterQueue(attributes.RedrivePolicy)),
    ...(action === 'SetSubscriptionAttributes' && r.AttributeName === 'RedrivePolicy' ? send(deadLetterQueue(r.AttributeValue)) : []),
  ];
}

interface CompiledRule {
  readonly actions: readonly RegExp[];
  readonly resources: readonly RegExp[];
  readonly anyResource: boolean;
}

function compile(rule: AccessRule): CompiledRule {
  return {
    actions: rule.actions.map((a) => globRegExp(a, 'i')),
    resources: rule.resources.map((r) => globRegExp(r)),
    anyResource: rule.resources.includes('*'),
  };
}

function allows(rule: CompiledRule, need: Need): boolean {
  const action = `${need.service}:${need.action}`;
  if (!rule.actions.some((re) => re.test(action))) return false;
  return need.resource === undefined ? rule.anyResource : rule.resources.some((re) => re.test(need.resource ?? ''));
}

/** AWS's words: `User: arn:aws:iam::<account>:user/<key> is not authorized to perform: …`. */
function denied(need: Need, accessKeyId: string, accountId: string, region: string): MessagingError {
  const user = `arn:aws:iam::${accountId}:user/${accessKeyId}`;
  // SQS names the action in lower case, SNS with an upper-case prefix (as their answers quote them).
  const action = need.service === 'sqs' ? `sqs:${need.action.toLowerCase()}` : `SNS:${need.action}`;
  const resource = `arn:aws:${need.service}:${region}:${accountId}:${need.resource ?? '*'}`;
  const message = `User: ${user} is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`;
  return need.service === 'sqs' ? commonError('AccessDenied', message) : snsError('AuthorizationError', message);
}

/** Builds the access control of `credentials` (in ARNs of messages: `accountId`, `region`). */
export function createAccessControl(
  credentials: readonly ScopedCredential[],
  where: { readonly accountId: string; readonly region: string },
): AccessControl {
  const rules = new Map<string, readonly CompiledRule[]>();
  for (const c of credentials) if (c.allow) rules.set(c.accessKeyId, c.allow.map(compile));
  return {
    check(accessKeyId, service, action, request) {
      const own = rules.get(accessKeyId);
      if (own === undefined) return;
      for (const need of needsOf(service, action, request)) {
        if (!own.some((rule) => allows(rule, need))) {
          // The error speaks the request's service even when the missing right is on a queue.
          const error = denied(need, accessKeyId, where.accountId, where.region);
          throw service === 'sns' && need.service === 'sqs' ? snsError('AuthorizationError', error.message) : error;
        }
      }
    },
  };
}
