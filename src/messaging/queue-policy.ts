/**
 * AddPermission/RemovePermission as edits of a queue's `Policy` attribute (pure). AWS keeps the
 * grants as statements of a policy document `{"Version":"2012-10-17","Id":"<queue arn>/SQSDefaultPolicy",
 * "Statement":[…]}`, one statement per label: `{"Sid":<label>,"Effect":"Allow","Principal":{"AWS":
 * <arn:aws:iam::<account>:root>},"Action":<"SQS:<action>">,"Resource":<queue arn>}`, where a
 * principal or action list of one item is written as that string (as GetQueueAttributes answers on
 * AWS). The policy is stored and returned, never evaluated.
 */
import { sqsError, type MessagingError } from './errors.js';
import { sqsFieldErrors } from './protocol/fields.js';

/** What AddPermission asks for, as sent. */
export interface PermissionGrant {
  readonly Label: string;
  readonly AWSAccountIds: readonly string[];
  readonly Actions: readonly string[];
}

/** Actions another account may be granted (plus `*`); the rest are the queue owner's only. */
export const GRANTABLE_ACTIONS: ReadonlySet<string> = new Set([
  '*',
  'ChangeMessageVisibility',
  'DeleteMessage',
  'GetQueueAttributes',
  'GetQueueUrl',
  'ListDeadLetterSourceQueues',
  'PurgeQueue',
  'ReceiveMessage',
  'SendMessage',
]);
const OWNER_ONLY_ACTIONS: ReadonlySet<string> = new Set([
  'AddPermission',
  'CancelMessageMoveTask',
  'ChangeMessageVisibilityBatch',
  'CreateQueue',
  'DeleteMessageBatch',
  'DeleteQueue',
  'ListMessageMoveTasks',
  'ListQueues',
  'ListQueueTags',
  'RemovePermission',
  'SendMessageBatch',
  'SetQueueAttributes',
  'StartMessageMoveTask',
  'TagQueue',
  'UntagQueue',
]);
/** AWS's limit of actions in one AddPermission. */
export const MAX_PERMISSION_ACTIONS = 7;
const LABEL = /^[A-Za-z0-9_-]{1,80}$/;
const ACCOUNT_ID = /^\d{12}$/;

/** One statement of the policy document. */
export interface PolicyStatement {
  readonly Sid?: unknown;
  readonly [key: string]: unknown;
}

/** The document as stored. */
interface PolicyDocument {
  readonly [key: string]: unknown;
  readonly Statement: readonly PolicyStatement[];
}

/**
 * The stateless rules of AddPermission, in AWS's order (wording as AWS answers where known):
 * label shape, `Actions` present, principals verifiable, at most 7 actions, grantable actions.
 */
export function checkPermissionGrant(grant: PermissionGrant): void {
  if (grant.Label === '') throw sqsFieldErrors.missing('Label');
  if (!LABEL.test(grant.Label)) {
    throw sqsFieldErrors.invalid(
      'Label',
      grant.Label,
      'Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.',
    );
  }
  if (grant.Actions.length === 0) throw sqsFieldErrors.missing('Actions');
  if (grant.AWSAccountIds.length === 0 || grant.AWSAccountIds.some((id) => !ACCOUNT_ID.test(id))) {
    throw sqsError(
      'InvalidParameterValue',
      `Value [${grant.AWSAccountIds.join(', ')}] for parameter PrincipalId is invalid. Reason: Unable to verify.`,
    );
  }
  if (grant.Actions.length > MAX_PERMISSION_ACTIONS) {
    throw sqsError('OverLimit', `${grant.Actions.length} Actions were found, maximum allowed is ${MAX_PERMISSION_ACTIONS}.`);
  }
  for (const action of grant.Actions) {
    if (GRANTABLE_ACTIONS.has(action)) continue;
    const reason = OWNER_ONLY_ACTIONS.has(action)
      ? 'Only the queue owner is allowed to invoke this action.'
      : 'Please refer to the appropriate WSDL for a list of valid actions.';
    throw sqsError('InvalidParameterValue', `Value SQS:${action} for parameter ActionName is invalid. Reason: ${reason}`);
  }
}

/** A list of one written as the item itself, as AWS writes policies. */
function oneOrMany(items: readonly string[]): string | readonly string[] {
  return items.length === 1 ? items[0] : items;
}

/** The statement AddPermission adds for `grant` on the queue `queueArn`. */
export function permissionStatement(queueArn: string, grant: PermissionGrant): PolicyStatement {
  const partition = queueArn.split(':')[1] || 'aws';
  return {
    Sid: grant.Label,
    Effect: 'Allow',
    Principal: { AWS: oneOrMany(grant.AWSAccountIds.map((id) => `arn:${partition}:iam::${id}:root`)) },
    Action: oneOrMany(grant.Actions.map((a) => `SQS:${a}`)),
    Resource: queueArn,
  };
}

function storedPolicyInvalid(): MessagingError {
  return sqsError(
    'InvalidAttributeValue',
    'Invalid value for the parameter Policy. Reason: The stored policy is not a JSON policy document.',
  );
}

/** The stored policy text as a document (a new empty one when there is none). */
function parsePolicy(text: string | undefined, queueArn: string): PolicyDocument {
  if (text === undefined || text === '') return { Version: '2012-10-17', Id: `${queueArn}/SQSDefaultPolicy`, Statement: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw storedPolicyInvalid();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw storedPolicyInvalid();
  const doc = parsed as Record<string, unknown>;
  const s = doc.Statement;
  const statements = s === undefined ? [] : Array.isArray(s) ? s : [s];
  if (!statements.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x))) throw storedPolicyInvalid();
  return { ...doc, Statement: statements as PolicyStatement[] };
}

/**
 * The `Policy` text after AddPermission: `current` (the stored Policy, if any) plus the statement
 * of `grant`. @throws SqsError `InvalidParameterValue` when the label is already used.
 */
export function addPermissionToPolicy(current: string | undefined, queueArn: string, grant: PermissionGrant): string {
  const doc = parsePolicy(current, queueArn);
  if (doc.Statement.some((s) => s.Sid === grant.Label)) {
    throw sqsError('InvalidParameterValue', `Value ${grant.Label} for parameter Label is invalid. Reason: Already exists.`);
  }
  return JSON.stringify({ ...doc, Statement: [...doc.Statement, permissionStatement(queueArn, grant)] });
}

/**
 * The `Policy` text after RemovePermission of `label`, or undefined when no statement is left (the
 * attribute goes away). @throws SqsError `InvalidParameterValue` when no statement has that label.
 */
export function removePermissionFromPolicy(current: string | undefined, queueArn: string, label: string): string | undefined {
  const doc = parsePolicy(current, queueArn);
  const rest = doc.Statement.filter((s) => s.Sid !== label);
  if (current === undefined || current === '' || rest.length === doc.Statement.length) {
    throw sqsError('InvalidParameterValue', `Value ${label} for parameter Label is invalid. Reason: can't find label on existing policy.`);
  }
  return rest.length > 0 ? JSON.stringify({ ...doc, Statement: rest }) : undefined;
}
