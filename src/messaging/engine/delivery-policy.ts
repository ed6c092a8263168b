/**
 * SNS delivery policies for http(s) subscriptions: parsing and checking the `DeliveryPolicy`
 * attributes of topics and subscriptions, the effective policy of a subscription, and its retry
 * schedule. Pure.
 *
 * The effective policy starts from the deployment's default (the `messaging.sns.http_*` keys),
 * then takes, field by field, what the topic's `http.defaultHealthyRetryPolicy`,
 * `defaultThrottlePolicy` and `defaultRequestPolicy` set, then what the subscription's
 * `healthyRetryPolicy`, `throttlePolicy` and `requestPolicy` set, unless the topic says
 * `disableSubscriptionOverrides`.
 *
 * Retries run in AWS's four phases: `numNoDelayRetries` at once, `numMinDelayRetries` after
 * `minDelayTarget`, then the backoff phase from `minDelayTarget` to `maxDelayTarget` shaped by
 * `backoffFunction`, and `numMaxDelayRetries` after `maxDelayTarget`; `numRetries` counts all
 * of them. AWS documents the backoff curves only as a graph, so ours are: `linear` evenly spaced,
 * `arithmetic` growing quadratically, `geometric` by a constant factor, `exponential` doubling
 * from the minimum and capped at the maximum. The whole schedule is capped at 3,600 s, as AWS's.
 */
import { snsError } from '../errors.js';
import type { SnsSettings } from '../settings.js';

/** How a retry's delay grows in the backoff phase. */
export type BackoffFunction = 'linear' | 'arithmetic' | 'geometric' | 'exponential';

/** A complete `healthyRetryPolicy`; delays in seconds. */
export interface RetryPolicy {
  readonly minDelayTarget: number;
  readonly maxDelayTarget: number;
  readonly numRetries: number;
  readonly numNoDelayRetries: number;
  readonly numMinDelayRetries: number;
  readonly numMaxDelayRetries: number;
  readonly backoffFunction: BackoffFunction;
}

/** What delivery to one http(s) subscription follows. */
export interface EffectiveDeliveryPolicy {
  readonly retry: RetryPolicy;
  /** Deliveries per second to this subscription; undefined: not throttled. */
  readonly maxReceivesPerSecond?: number;
  readonly headerContentType: string;
  readonly disableSubscriptionOverrides: boolean;
}

interface Parts {
  retry?: Partial<RetryPolicy>;
  maxReceivesPerSecond?: number;
  headerContentType?: string;
}

/** AWS's default content type of http(s) notifications. */
export const DEFAULT_CONTENT_TYPE = 'text/plain; charset=UTF-8';
/** The most time all retries of one delivery may take (AWS's hard limit). */
export const MAX_RETRY_SECONDS = 3600;

const BACKOFF = new Set<string>(['linear', 'arithmetic', 'geometric', 'exponential']);
const CONTENT_TYPES = new Set(['text/plain', 'text/html', 'text/xml', 'application/json', 'application/xml']);
const RETRY_KEYS = [
  'minDelayTarget',
  'maxDelayTarget',
  'numRetries',
  'numNoDelayRetries',
  'numMinDelayRetries',
  'numMaxDelayRetries',
  'backoffFunction',
] as const;
// Keys AWS prints in EffectiveDeliveryPolicy: accepted (and ignored) so a printed policy can be set again.
const IGNORED = new Set(['sicklyRetryPolicy', 'defaultSicklyRetryPolicy', 'guaranteed']);

function invalid(reason: string): Error {
  return snsError('InvalidParameter', `Invalid parameter: DeliveryPolicy: ${reason}`);
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k) && !IGNORED.has(k)) throw invalid(`${what} has an unknown key ${k}`);
}

function integer(v: unknown, what: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
    throw invalid(`${what} must be an integer from ${min} to ${max}`);
  return n;
}

function parseRetry(v: unknown, what: string): Partial<RetryPolicy> | undefined {
  if (v === null || v === undefined) return undefined;
  const o = object(v, what);
  known(o, RETRY_KEYS, what);
  const out: Record<string, unknown> = {};
  for (const k of ['minDelayTarget', 'maxDelayTarget'] as const)
    if (o[k] !== undefined) out[k] = integer(o[k], `${what}.${k}`, 1, MAX_RETRY_SECONDS);
  for (const k of ['numRetries', 'numNoDelayRetries', 'numMinDelayRetries', 'numMaxDelayRetries'] as const)
    if (o[k] !== undefined) out[k] = integer(o[k], `${what}.${k}`, 0, 100);
  if (o.backoffFunction !== undefined) {
    if (typeof o.backoffFunction !== 'string' || !BACKOFF.has(o.backoffFunction))
      throw invalid(`${what}.backoffFunction must be linear, arithmetic, geometric or exponential`);
    out.backoffFunction = o.backoffFunction;
  }
  const r = out as Partial<RetryPolicy>;
  if (r.minDelayTarget !== undefined && r.maxDelayTarget !== undefined && r.minDelayTarget > r.maxDelayTarget)
    throw invalid(`${what}.minDelayTarget must not exceed maxDelayTarget`);
  return r;
}

function parseThrottle(v: unknown, what: string): number | undefined {
  if (v === null || v === undefined) return undefined;
  const o = object(v, what);
  known(o, ['maxReceivesPerSecond'], what);
  return o.maxReceivesPerSecond === undefined ? undefined : integer(o.maxReceivesPerSecond, `${what}.maxReceivesPerSecond`, 1, 1_000_000);
}

function parseRequest(v: unknown, what: string): string | undefined {
  if (v === null || v === undefined) return undefined;
  const o = object(v, what);
  known(o, ['headerContentType'], what);
  const t = o.headerContentType;
  if (t === undefined) return undefined;
  const base = typeof t === 'string' ? /^\s*([a-z]+\/[a-z+.-]+)\s*(;\s*charset=utf-8\s*)?$/i.exec(t)?.[1]?.toLowerCase() : undefined;
  if (typeof t !== 'string' || base === undefined || !CONTENT_TYPES.has(base))
    throw invalid(`${what}.headerContentType must be one of ${[...CONTENT_TYPES].join(', ')} (optionally with ; charset=UTF-8)`);
  return t.trim();
}

function parseJson(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalid('failed to parse JSON');
  }
  return object(parsed, 'the policy');
}

interface TopicParts extends Parts {
  disableSubscriptionOverrides: boolean;
}

function topicParts(value: string | undefined): TopicParts {
  if (!value) return { disableSubscriptionOverrides: false };
  const o = parseJson(value);
  known(o, ['http'], 'the policy');
  if (o.http === undefined) return { disableSubscriptionOverrides: false };
  const http = object(o.http, 'http');
  known(http, ['defaultHealthyRetryPolicy', 'disableSubscriptionOverrides', 'defaultThrottlePolicy', 'defaultRequestPolicy'], 'http');
  const disable = http.disableSubscriptionOverrides;
  if (disable !== undefined && typeof disable !== 'boolean') throw invalid('http.disableSubscriptionOverrides must be true or false');
  return {
    retry: parseRetry(http.defaultHealthyRetryPolicy, 'http.defaultHealthyRetryPolicy'),
    maxReceivesPerSecond: parseThrottle(http.defaultThrottlePolicy, 'http.defaultThrottlePolicy'),
    headerContentType: parseRequest(http.defaultRequestPolicy, 'http.defaultRequestPolicy'),
    disableSubscriptionOverrides: disable === true,
  };
}

function subscriptionParts(value: string | undefined): Parts {
  if (!value) return {};
  const o = parseJson(value);
  known(o, ['healthyRetryPolicy', 'throttlePolicy', 'requestPolicy'], 'the policy');
  return {
    retry: parseRetry(o.healthyRetryPolicy, 'healthyRetryPolicy'),
    maxReceivesPerSecond: parseThrottle(o.throttlePolicy, 'throttlePolicy'),
    headerContentType: parseRequest(o.requestPolicy, 'requestPolicy'),
  };
}

/** The deployment's default retry policy, from the `messaging.sns.http_*` keys. */
export function defaultRetryPolicy(s: Pick<SnsSettings, 'httpRetries' | 'httpMinDelayMs' | 'httpMaxDelayMs'>): RetryPolicy {
  return {
    minDelayTarget: s.httpMinDelayMs / 1000,
    maxDelayTarget: s.httpMaxDelayMs / 1000,
    numRetries: s.httpRetries,
    numNoDelayRetries: 0,
    numMinDelayRetries: 0,
    numMaxDelayRetries: 0,
    backoffFunction: 'exponential',
  };
}

function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function combine(settings: SnsSettings, topic: TopicParts, sub: Parts): EffectiveDeliveryPolicy {
  const own = topic.disableSubscriptionOverrides ? {} : sub;
  const retry = { ...defaultRetryPolicy(settings), ...defined(topic.retry), ...defined(own.retry) };
  const maxReceivesPerSecond = own.maxReceivesPerSecond ?? topic.maxReceivesPerSecond;
  return {
    retry,
    ...(maxReceivesPerSecond !== undefined ? { maxReceivesPerSecond } : {}),
    headerContentType: own.headerContentType ?? topic.headerContentType ?? DEFAULT_CONTENT_TYPE,
    disableSubscriptionOverrides: topic.disableSubscriptionOverrides,
  };
}

/** Refuses a retry policy AWS would: phases longer than `numRetries`, min above max, over an hour. */
function checkCombined(p: RetryPolicy): void {
  if (p.minDelayTarget > p.maxDelayTarget) throw invalid('minDelayTarget must not exceed maxDelayTarget');
  if (p.numNoDelayRetries + p.numMinDelayRetries + p.numMaxDelayRetries > p.numRetries) {
    throw invalid('numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries');
  }
  const total = retryDelays(p).reduce((a, b) => a + b, 0);
  if (total > MAX_RETRY_SECONDS) throw invalid(`the retries take ${Math.round(total)} s, more than ${MAX_RETRY_SECONDS} s`);
}

/** Checks a topic's `DeliveryPolicy` value (empty: none), throwing AWS's `InvalidParameter`. */
export function checkTopicDeliveryPolicy(value: string, settings: SnsSettings): void {
  checkCombined(combine(settings, topicParts(value), {}).retry);
}

/** Checks a subscription's `DeliveryPolicy` value against its protocol and its topic's policy. */
export function checkSubscriptionDeliveryPolicy(
  value: string,
  protocol: string,
  topicValue: string | undefined,
  settings: SnsSettings,
): void {
  if (value === '') return;
  if (protocol !== 'http' && protocol !== 'https') throw invalid(`Delivery protocol [${protocol}] does not support delivery policies`);
  const topic = safeTopicParts(topicValue);
  checkCombined(combine(settings, { ...topic, disableSubscriptionOverrides: false }, subscriptionParts(value)).retry);
}

// A stored value that no longer parses (stored before it was checked) counts as absent.
function safeTopicParts(value: string | undefined): TopicParts {
  try {
    return topicParts(value);
  } catch {
    return { disableSubscriptionOverrides: false };
  }
}

function safeSubscriptionParts(value: string | undefined): Parts {
  try {
    return subscriptionParts(value);
  } catch {
    return {};
  }
}

/** The policy delivery to a subscription follows, from the stored attribute values. Never throws. */
export function effectiveDeliveryPolicy(
  settings: SnsSettings,
  topicValue: string | undefined,
  subscriptionValue: string | undefined,
): EffectiveDeliveryPolicy {
  const p = combine(settings, safeTopicParts(topicValue), safeSubscriptionParts(subscriptionValue));
  // A topic change can make a subscription's stored fields inconsistent: keep the delays ordered.
  return p.retry.minDelayTarget > p.retry.maxDelayTarget ? { ...p, retry: { ...p.retry, maxDelayTarget: p.retry.minDelayTarget } } : p;
}

function backoffDelay(p: RetryPolicy, k: number, n: number): number {
  const { minDelayTarget: min, maxDelayTarget: max } = p;
  const t = n <= 1 ? 0 : (k - 1) / (n - 1);
  switch (p.backoffFunction) {
    case 'exponential':
      return Math.min(max, min * 2 ** (k - 1));
    case 'geometric':
      return min > 0 ? min * (max / min) ** t : min + (max - min) * t;
    case 'arithmetic':
      return min + (max - min) * t * t;
    default:
      return min + (max - min) * t;
  }
}

/**
 * The delay in seconds before each retry (index 0: the first retry), in AWS's four phases, cut
 * where their sum would pass 3,600 s.
 */
export function retryDelays(p: RetryPolicy): number[] {
  const noDelay = Math.min(p.numNoDelayRetries, p.numRetries);
  const minDelay = Math.min(p.numMinDelayRetries, p.numRetries - noDelay);
  const maxDelay = Math.min(p.numMaxDelayRetries, p.numRetries - noDelay - minDelay);
  const backoff = p.numRetries - noDelay - minDelay - maxDelay;
  const out: number[] = [];
  for (let i = 0; i < noDelay; i++) out.push(0);
  for (let i = 0; i < minDelay; i++) out.push(p.minDelayTarget);
  for (let k = 1; k <= backoff; k++) out.push(backoffDelay(p, k, backoff));
  for (let i = 0; i < maxDelay; i++) out.push(p.maxDelayTarget);
  return out;
}

/** Delay in ms before retry number `retry` (1-based), or undefined when the retries are spent. */
export function retryDelayMsFor(p: RetryPolicy, retry: number): number | undefined {
  const delays = retryDelays(p);
  if (retry < 1 || retry > delays.length) return undefined;
  let total = 0;
  for (let i = 0; i < retry; i++) total += delays[i] ?? 0;
  // Checked policies stay within the limit; this guards the deployment default and stored values.
  if (total > MAX_RETRY_SECONDS + 1e-9) return undefined;
  return Math.round((delays[retry - 1] ?? 0) * 1000);
}

function retryJson(p: RetryPolicy): Record<string, unknown> {
  // AWS prints this key order; whole seconds (the deployment default may hold fractions: rounded).
  return {
    minDelayTarget: Math.round(p.minDelayTarget),
    maxDelayTarget: Math.round(p.maxDelayTarget),
    numRetries: p.numRetries,
    numMaxDelayRetries: p.numMaxDelayRetries,
    numNoDelayRetries: p.numNoDelayRetries,
    numMinDelayRetries: p.numMinDelayRetries,
    backoffFunction: p.backoffFunction,
  };
}

/** A topic's `EffectiveDeliveryPolicy` attribute: the deployment default overridden by the topic. */
export function topicEffectiveJson(settings: SnsSettings, topicValue: string | undefined): string {
  const p = effectiveDeliveryPolicy(settings, topicValue, undefined);
  return JSON.stringify({
    http: {
      defaultHealthyRetryPolicy: retryJson(p.retry),
      disableSubscriptionOverrides: p.disableSubscriptionOverrides,
      ...(p.maxReceivesPerSecond !== undefined ? { defaultThrottlePolicy: { maxReceivesPerSecond: p.maxReceivesPerSecond } } : {}),
      defaultRequestPolicy: { headerContentType: p.headerContentType },
    },
  });
}

/** An http(s) subscription's `EffectiveDeliveryPolicy` attribute, in AWS's shape. */
export function subscriptionEffectiveJson(
  settings: SnsSettings,
  topicValue: string | undefined,
  subscriptionValue: string | undefined,
): string {
  const p = effectiveDeliveryPolicy(settings, topicValue, subscriptionValue);
  return JSON.stringify({
    healthyRetryPolicy: retryJson(p.retry),
    sicklyRetryPolicy: null,
    throttlePolicy: p.maxReceivesPerSecond !== undefined ? { maxReceivesPerSecond: p.maxReceivesPerSecond } : null,
    requestPolicy: { headerContentType: p.headerContentType },
    guaranteed: false,
  });
}
