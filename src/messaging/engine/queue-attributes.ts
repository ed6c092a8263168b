/**
 * Queue names and attributes: defaults, ranges and the rules between them (pure). The engine
 * stores the settable attributes with defaults applied; the read-only ones are computed on read.
 */
import { sqsError } from '../errors.js';

/** Settable attributes with their defaults, for standard queues. */
export const STANDARD_DEFAULTS: Readonly<Record<string, string>> = {
  DelaySeconds: '0',
  MaximumMessageSize: '1048576',
  MessageRetentionPeriod: '345600',
  ReceiveMessageWaitTimeSeconds: '0',
  VisibilityTimeout: '30',
  SqsManagedSseEnabled: 'true',
};
/** Extra defaults of FIFO queues. */
export const FIFO_DEFAULTS: Readonly<Record<string, string>> = {
  FifoQueue: 'true',
  ContentBasedDeduplication: 'false',
  DeduplicationScope: 'queue',
  FifoThroughputLimit: 'perQueue',
};
const RANGES: Readonly<Record<string, readonly [number, number]>> = {
  DelaySeconds: [0, 900],
  MaximumMessageSize: [1024, 1048576],
  MessageRetentionPeriod: [60, 1209600],
  ReceiveMessageWaitTimeSeconds: [0, 20],
  VisibilityTimeout: [0, 43200],
  KmsDataKeyReusePeriodSeconds: [60, 86400],
};
const FREE_TEXT = new Set(['Policy', 'KmsMasterKeyId']);
const BOOLEANS = new Set(['SqsManagedSseEnabled', 'ContentBasedDeduplication', 'FifoQueue']);
const FIFO_ONLY = new Set(['ContentBasedDeduplication', 'DeduplicationScope', 'FifoThroughputLimit']);
/** Attributes GetQueueAttributes computes. */
export const READ_ONLY = new Set([
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'ApproximateNumberOfMessagesDelayed',
  'CreatedTimestamp',
  'LastModifiedTimestamp',
  'QueueArn',
]);
const SETTABLE = new Set([
  ...Object.keys(STANDARD_DEFAULTS),
  ...Object.keys(FIFO_DEFAULTS),
  ...Object.keys(RANGES),
  ...FREE_TEXT,
  'RedrivePolicy',
  'RedriveAllowPolicy',
]);

/** Every name GetQueueAttributes knows. */
export function isKnownAttribute(name: string): boolean {
  return SETTABLE.has(name) || READ_ONLY.has(name);
}

/** 1–80 of `[A-Za-z0-9_-]`, plus `.fifo` for FIFO queues. */
export function isValidQueueName(name: string): boolean {
  return /^[A-Za-z0-9_-]{1,75}\.fifo$|^[A-Za-z0-9_-]{1,80}$/.test(name);
}

/** The parsed `RedrivePolicy`. */
export interface RedrivePolicy {
  readonly deadLetterTargetArn: string;
  readonly maxReceiveCount: number;
}

/** Parses a stored or sent RedrivePolicy (`maxReceiveCount` may be a string or a number). */
export function parseRedrivePolicy(value: string | undefined): RedrivePolicy | undefined {
  if (!value) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalidValue('RedrivePolicy', 'Redrive policy is not a valid JSON map.');
  }
  const p = parsed as { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
  const arn = p.deadLetterTargetArn;
  const count = Number(p.maxReceiveCount);
  if (typeof arn !== 'string' || !/^arn:aws:sqs:[^:]+:\d{12}:[A-Za-z0-9_.-]+$/.test(arn)) {
    throw invalidValue('RedrivePolicy', 'Dead-letter target ARN is not a valid SQS queue ARN.');
  }
  if (!Number.isInteger(count) || count < 1 || count > 1000)
    throw invalidValue('RedrivePolicy', 'Value for maxReceiveCount must be between 1 and 1000.');
  return { deadLetterTargetArn: arn, maxReceiveCount: count };
}

/** The parsed `RedriveAllowPolicy` of a dead-letter queue: which queues may name it in their RedrivePolicy. */
export interface RedriveAllowPolicy {
  readonly redrivePermission: 'allowAll' | 'denyAll' | 'byQueue';
  /** byQueue: the source queues' ARNs (1–10). */
  readonly sourceQueueArns: readonly string[];
}

/** Parses a RedriveAllowPolicy (AWS's rules: a permission, and source ARNs with `byQueue` only). */
export function parseRedriveAllowPolicy(value: string | undefined): RedriveAllowPolicy | undefined {
  if (!value) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalidValue('RedriveAllowPolicy', 'Redrive allow policy is not a valid JSON map.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalidValue('RedriveAllowPolicy', 'Redrive allow policy is not a valid JSON map.');
  const p = parsed as { redrivePermission?: unknown; sourceQueueArns?: unknown };
  const permission = p.redrivePermission;
  if (permission !== 'allowAll' && permission !== 'denyAll' && permission !== 'byQueue') {
    throw invalidValue('RedriveAllowPolicy', 'redrivePermission must be allowAll, denyAll or byQueue.');
  }
  const arns = p.sourceQueueArns;
  if (permission !== 'byQueue') {
    if (arns !== undefined) throw invalidValue('RedriveAllowPolicy', 'sourceQueueArns is allowed with redrivePermission byQueue only.');
    return { redrivePermission: permission, sourceQueueArns: [] };
  }
  if (
    !Array.isArray(arns) ||
    arns.length < 1 ||
    arns.length > 10 ||
    !arns.every((a) => typeof a === 'string' && /^arn:aws:sqs:[^:]+:\d{12}:[A-Za-z0-9_.-]+$/.test(a))
  ) {
    throw invalidValue('RedriveAllowPolicy', 'byQueue needs sourceQueueArns: 1 to 10 SQS queue ARNs.');
  }
  return { redrivePermission: permission, sourceQueueArns: arns as string[] };
}

function invalidValue(name: string, reason: string): Error {
  return sqsError('InvalidAttributeValue', `Invalid value for the parameter ${name}. Reason: ${reason}`);
}

/**
 * Checks `attributes` of a CreateQueue (`current` undefined) or SetQueueAttributes and returns the
 * complete settable set: defaults (create) or `current`, overlaid with the checked values.
 */
export function applyAttributes(
  queueName: string,
  attributes: Readonly<Record<string, string>>,
  current?: Readonly<Record<string, string>>,
): Record<string, string> {
  const fifo = queueName.endsWith('.fifo');
  for (const [name, value] of Object.entries(attributes)) {
    if (READ_ONLY.has(name) || !SETTABLE.has(name)) throw sqsError('InvalidAttributeName', `Unknown Attribute ${name}.`);
    const range = RANGES[name];
    if (range && !(/^\d+$/.test(value) && Number(value) >= range[0] && Number(value) <= range[1])) {
      throw invalidValue(name, `Must be an integer from ${range[0]} to ${range[1]}.`);
    }
    if (BOOLEANS.has(name) && value !== 'true' && value !== 'false') throw invalidValue(name, 'Must be true or false.');
    if (FIFO_ONLY.has(name) && !fifo) throw sqsError('InvalidAttributeName', `Unknown Attribute ${name}.`);
    if (name === 'DeduplicationScope' && value !== 'queue' && value !== 'messageGroup')
      throw invalidValue(name, 'Must be queue or messageGroup.');
    if (name === 'FifoThroughputLimit' && value !== 'perQueue' && value !== 'perMessageGroupId')
      throw invalidValue(name, 'Must be perQueue or perMessageGroupId.');
    if (name === 'RedrivePolicy' && value !== '') parseRedrivePolicy(value);
    if (name === 'RedriveAllowPolicy' && value !== '') parseRedriveAllowPolicy(value);
  }
  if (current === undefined) {
    const fifoValue = attributes.FifoQueue;
    if (fifo && fifoValue !== 'true') {
      throw sqsError(
        'InvalidParameterValue',
        'The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix. The queue name can have up to 80 characters. Set FifoQueue to true.',
      );
    }
    if (!fifo && fifoValue === 'true') throw sqsError('InvalidParameterValue', 'The name of a FIFO queue must end with the .fifo suffix.');
    if (!fifo && fifoValue === 'false') {
      // AWS accepts FifoQueue=false on a standard queue but does not report it.
      const { FifoQueue: _ignored, ...rest } = attributes;
      return { ...STANDARD_DEFAULTS, ...rest };
    }
    return { ...STANDARD_DEFAULTS, ...(fifo ? FIFO_DEFAULTS : {}), ...attributes };
  }
  if (attributes.FifoQueue !== undefined && attributes.FifoQueue !== current.FifoQueue && !(attributes.FifoQueue === 'false' && !fifo)) {
    throw invalidValue('FifoQueue', 'Modifying queue type is not supported.');
  }
  const next = { ...current, ...attributes };
  // An empty RedrivePolicy (RedriveAllowPolicy) removes it.
  if (next.RedrivePolicy === '') delete next.RedrivePolicy;
  if (next.RedriveAllowPolicy === '') delete next.RedriveAllowPolicy;
  if (!fifo) delete next.FifoQueue;
  return next;
}

/** Do `sent` attributes differ from the stored ones (CreateQueue idempotency)? */
export function differingAttribute(
  stored: Readonly<Record<string, string>>,
  sent: Readonly<Record<string, string>>,
  queueName: string,
): string | undefined {
  const effective = applyAttributes(queueName, sent);
  for (const name of Object.keys(sent)) {
    if (name === 'FifoQueue' && !queueName.endsWith('.fifo')) continue;
    if (effective[name] !== stored[name] && !sameJsonDocument(effective[name], stored[name])) return name;
  }
  return undefined;
}

// JSON attributes (RedrivePolicy, Policy, …) are the same when they parse to the same document:
// a client re-creating a queue need not format them as the first one did. maxReceiveCount may be
// a string or a number (both are accepted when set).
function sameJsonDocument(a: string | undefined, b: string | undefined): boolean {
  const parse = (v: string | undefined) => {
    if (v === undefined || !v.trimStart().startsWith('{')) return undefined;
    try {
      return JSON.parse(v, (k, x: unknown) =>
        k === 'maxReceiveCount' && typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : x,
      ) as unknown;
    } catch {
      return undefined;
    }
  };
  const [x, y] = [parse(a), parse(b)];
  return x !== undefined && y !== undefined && canonical(x) === canonical(y);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
