import { describe, expect, test } from 'vitest';
import {
  checkSubscriptionDeliveryPolicy,
  checkTopicDeliveryPolicy,
  effectiveDeliveryPolicy,
  retryDelayMsFor,
  retryDelays,
  subscriptionEffectiveJson,
  topicEffectiveJson,
  type RetryPolicy,
} from '../../../../src/messaging/engine/delivery-policy.js';
import { DeliveryThrottle } from '../../../../src/messaging/engine/delivery-throttle.js';
import type { SnsSettings } from '../../../../src/messaging/settings.js';

const settings: SnsSettings = {
  httpRetries: 3,
  httpMinDelayMs: 1000,
  httpMaxDelayMs: 20_000,
  httpTimeoutMs: 15_000,
  endpointAllow: [],
  endpointDeny: [],
};
const policy = (p: Partial<RetryPolicy>): RetryPolicy => ({
  minDelayTarget: 20,
  maxDelayTarget: 20,
  numRetries: 3,
  numNoDelayRetries: 0,
  numMinDelayRetries: 0,
  numMaxDelayRetries: 0,
  backoffFunction: 'linear',
  ...p,
});

describe('retry schedule', () => {
  test("AWS's default: three retries 20 s apart", () => {
    expect(retryDelays(policy({}))).toEqual([20, 20, 20]);
  });

  test('the deployment default doubles from the minimum up to the maximum (the sns.http_* keys)', () => {
    expect(retryDelays(effectiveDeliveryPolicy(settings, undefined, undefined).retry)).toEqual([1, 2, 4]);
    expect(retryDelays(effectiveDeliveryPolicy({ ...settings, httpRetries: 7 }, undefined, undefined).retry)).toEqual([
      1, 2, 4, 8, 16, 20, 20,
    ]);
  });

  test('four phases in order: no delay, minimum, backoff, maximum', () => {
    const p = policy({
      minDelayTarget: 1,
      maxDelayTarget: 9,
      numRetries: 9,
      numNoDelayRetries: 2,
      numMinDelayRetries: 2,
      numMaxDelayRetries: 2,
    });
    expect(retryDelays(p)).toEqual([0, 0, 1, 1, 1, 5, 9, 9, 9]);
  });

  test.each([
    ['linear', [1, 4, 7, 10]],
    ['arithmetic', [1, 2, 5, 10]],
    ['geometric', [1, 10 ** (1 / 3), 10 ** (2 / 3), 10]],
    ['exponential', [1, 2, 4, 8]],
  ] as const)('%s backoff from the minimum to the maximum', (backoffFunction, expected) => {
    const got = retryDelays(policy({ minDelayTarget: 1, maxDelayTarget: 10, numRetries: 4, backoffFunction }));
    got.forEach((d, i) => expect(d).toBeCloseTo(expected[i] ?? NaN, 6));
  });

  test('retryDelayMsFor: 1-based, undefined once spent', () => {
    const p = policy({ minDelayTarget: 1, maxDelayTarget: 3, numRetries: 3 });
    expect([1, 2, 3, 4].map((r) => retryDelayMsFor(p, r))).toEqual([1000, 2000, 3000, undefined]);
    expect(retryDelayMsFor(policy({ numRetries: 0 }), 1)).toBeUndefined();
  });

  test('a schedule is cut where it would pass an hour (deployment defaults are not checked)', () => {
    const p = policy({ minDelayTarget: 3600, maxDelayTarget: 3600, numRetries: 3 });
    expect(retryDelayMsFor(p, 1)).toBe(3_600_000);
    expect(retryDelayMsFor(p, 2)).toBeUndefined();
  });
});

describe('effective policy', () => {
  const topic = JSON.stringify({
    http: {
      defaultHealthyRetryPolicy: { numRetries: 5, minDelayTarget: 2, maxDelayTarget: 30 },
      defaultThrottlePolicy: { maxReceivesPerSecond: 4 },
      defaultRequestPolicy: { headerContentType: 'application/json' },
    },
  });
  const sub = JSON.stringify({ healthyRetryPolicy: { numRetries: 1 }, requestPolicy: { headerContentType: 'text/xml' } });

  test('deployment default, then the topic, then the subscription, field by field', () => {
    const p = effectiveDeliveryPolicy(settings, topic, sub);
    expect(p.retry).toMatchObject({ numRetries: 1, minDelayTarget: 2, maxDelayTarget: 30, backoffFunction: 'exponential' });
    expect(p.maxReceivesPerSecond).toBe(4);
    expect(p.headerContentType).toBe('text/xml');
  });

  test('disableSubscriptionOverrides keeps the topic policy', () => {
    const locked = JSON.stringify({ http: { defaultHealthyRetryPolicy: { numRetries: 5 }, disableSubscriptionOverrides: true } });
    expect(effectiveDeliveryPolicy(settings, locked, sub).retry.numRetries).toBe(5);
    expect(effectiveDeliveryPolicy(settings, locked, sub).headerContentType).toBe('text/plain; charset=UTF-8');
  });

  test('unreadable stored values count as absent', () => {
    expect(effectiveDeliveryPolicy(settings, '{bad', 'nope').retry.numRetries).toBe(3);
  });

  test("EffectiveDeliveryPolicy attributes in AWS's shapes", () => {
    expect(JSON.parse(topicEffectiveJson(settings, undefined))).toEqual({
      http: {
        defaultHealthyRetryPolicy: {
          minDelayTarget: 1,
          maxDelayTarget: 20,
          numRetries: 3,
          numMaxDelayRetries: 0,
          numNoDelayRetries: 0,
          numMinDelayRetries: 0,
          backoffFunction: 'exponential',
        },
        disableSubscriptionOverrides: false,
        defaultRequestPolicy: { headerContentType: 'text/plain; charset=UTF-8' },
      },
    });
    expect(JSON.parse(topicEffectiveJson(settings, topic)).http.defaultThrottlePolicy).toEqual({ maxReceivesPerSecond: 4 });
    const s = JSON.parse(subscriptionEffectiveJson(settings, topic, sub)) as Record<string, unknown>;
    expect(Object.keys(s)).toEqual(['healthyRetryPolicy', 'sicklyRetryPolicy', 'throttlePolicy', 'requestPolicy', 'guaranteed']);
    expect(s).toMatchObject({
      sicklyRetryPolicy: null,
      throttlePolicy: { maxReceivesPerSecond: 4 },
      requestPolicy: { headerContentType: 'text/xml' },
      guaranteed: false,
    });
    expect(JSON.parse(subscriptionEffectiveJson(settings, undefined, undefined)).throttlePolicy).toBeNull();
  });

  test('a printed effective policy can be set again', () => {
    expect(() => checkSubscriptionDeliveryPolicy(subscriptionEffectiveJson(settings, topic, sub), 'https', topic, settings)).not.toThrow();
    expect(() => checkTopicDeliveryPolicy(topicEffectiveJson(settings, topic), settings)).not.toThrow();
  });
});

describe('checks', () => {
  const refusedSub = (value: string, protocol = 'http') => {
    try {
      checkSubscriptionDeliveryPolicy(value, protocol, undefined, settings);
    } catch (err) {
      expect(err).toMatchObject({ code: 'InvalidParameter' });
      return (err as Error).message;
    }
    return 'accepted';
  };

  test.each([
    ['{bad', 'Invalid parameter: DeliveryPolicy: failed to parse JSON'],
    ['[]', 'Invalid parameter: DeliveryPolicy: the policy must be a JSON object'],
    ['{"retry":{}}', 'Invalid parameter: DeliveryPolicy: the policy has an unknown key retry'],
    [
      '{"healthyRetryPolicy":{"numRetries":101}}',
      'Invalid parameter: DeliveryPolicy: healthyRetryPolicy.numRetries must be an integer from 0 to 100',
    ],
    [
      '{"healthyRetryPolicy":{"minDelayTarget":0}}',
      'Invalid parameter: DeliveryPolicy: healthyRetryPolicy.minDelayTarget must be an integer from 1 to 3600',
    ],
    [
      '{"healthyRetryPolicy":{"minDelayTarget":1.5}}',
      'Invalid parameter: DeliveryPolicy: healthyRetryPolicy.minDelayTarget must be an integer from 1 to 3600',
    ],
    [
      '{"healthyRetryPolicy":{"minDelayTarget":30,"maxDelayTarget":10}}',
      'Invalid parameter: DeliveryPolicy: healthyRetryPolicy.minDelayTarget must not exceed maxDelayTarget',
    ],
    [
      '{"healthyRetryPolicy":{"backoffFunction":"cubic"}}',
      'Invalid parameter: DeliveryPolicy: healthyRetryPolicy.backoffFunction must be linear, arithmetic, geometric or exponential',
    ],
    [
      '{"healthyRetryPolicy":{"numRetries":2,"numNoDelayRetries":3}}',
      'Invalid parameter: DeliveryPolicy: numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries',
    ],
    [
      '{"healthyRetryPolicy":{"numRetries":100,"minDelayTarget":60,"maxDelayTarget":60}}',
      'Invalid parameter: DeliveryPolicy: the retries take 6000 s, more than 3600 s',
    ],
    [
      '{"throttlePolicy":{"maxReceivesPerSecond":0}}',
      'Invalid parameter: DeliveryPolicy: throttlePolicy.maxReceivesPerSecond must be an integer from 1 to 1000000',
    ],
    [
      '{"requestPolicy":{"headerContentType":"image/png"}}',
      'Invalid parameter: DeliveryPolicy: requestPolicy.headerContentType must be one of text/plain, text/html, text/xml, application/json, application/xml (optionally with ; charset=UTF-8)',
    ],
  ])('refuses %s', (value, message) => {
    expect(refusedSub(value)).toBe(message);
  });

  test('accepts numbers as strings, content types with a charset, and an empty value', () => {
    expect(
      refusedSub('{"healthyRetryPolicy":{"numRetries":"5"},"requestPolicy":{"headerContentType":"application/json; charset=UTF-8"}}'),
    ).toBe('accepted');
    expect(refusedSub('')).toBe('accepted');
    expect(refusedSub('', 'sqs')).toBe('accepted');
  });

  test('only http(s) subscriptions take a delivery policy', () => {
    expect(refusedSub('{"healthyRetryPolicy":{"numRetries":1}}', 'sqs')).toBe(
      'Invalid parameter: DeliveryPolicy: Delivery protocol [sqs] does not support delivery policies',
    );
  });

  test('topic policies: the http key, its members, and the same field checks', () => {
    expect(() => checkTopicDeliveryPolicy('', settings)).not.toThrow();
    expect(() => checkTopicDeliveryPolicy('{"http":{"defaultHealthyRetryPolicy":{"numRetries":5}}}', settings)).not.toThrow();
    expect(() => checkTopicDeliveryPolicy('{"sqs":{}}', settings)).toThrow('the policy has an unknown key sqs');
    expect(() => checkTopicDeliveryPolicy('{"http":{"disableSubscriptionOverrides":"yes"}}', settings)).toThrow(
      'http.disableSubscriptionOverrides must be true or false',
    );
    expect(() => checkTopicDeliveryPolicy('{"http":{"defaultHealthyRetryPolicy":{"numRetries":-1}}}', settings)).toThrow(
      'http.defaultHealthyRetryPolicy.numRetries must be an integer from 0 to 100',
    );
  });
});

describe('pacing', () => {
  test('slots 1/rate apart; short waits reserved, long ones postponed without a reservation', () => {
    let now = 1000;
    const t = new DeliveryThrottle(() => now);
    expect(t.reserve('a', 2, 1000)).toEqual({ waitMs: 0 });
    expect(t.reserve('a', 2, 1000)).toEqual({ waitMs: 500 });
    expect(t.reserve('a', 2, 1000)).toEqual({ waitMs: 1000 });
    expect(t.reserve('a', 2, 1000)).toEqual({ postponeMs: 1500 });
    expect(t.reserve('a', 2, 1000)).toEqual({ postponeMs: 1500 });
    expect(t.reserve('b', 2, 1000)).toEqual({ waitMs: 0 });
    now += 1500;
    expect(t.reserve('a', 2, 1000)).toEqual({ waitMs: 0 });
  });
});
