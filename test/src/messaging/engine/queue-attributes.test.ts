import { expect, test } from 'vitest';
import {
  applyAttributes,
  differingAttribute,
  isValidQueueName,
  parseRedrivePolicy,
} from '../../../../src/messaging/engine/queue-attributes.js';

const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

test('names', () => {
  expect(isValidQueueName('a-b_C9')).toBe(true);
  expect(isValidQueueName('x.fifo')).toBe(true);
  expect(isValidQueueName('a.b')).toBe(false);
  expect(isValidQueueName('a'.repeat(81))).toBe(false);
});

test('create: defaults, ranges, FIFO rules', () => {
  expect(applyAttributes('q', {})).toMatchObject({
    VisibilityTimeout: '30',
    MessageRetentionPeriod: '345600',
    MaximumMessageSize: '1048576',
  });
  expect(applyAttributes('q.fifo', { FifoQueue: 'true' })).toMatchObject({ FifoQueue: 'true', ContentBasedDeduplication: 'false' });
  expect(code(() => applyAttributes('q', { VisibilityTimeout: '43201' }))).toBe('InvalidAttributeValue');
  expect(code(() => applyAttributes('q', { Bogus: '1' }))).toBe('InvalidAttributeName');
  expect(code(() => applyAttributes('q', { ContentBasedDeduplication: 'true' }))).toBe('InvalidAttributeName');
  expect(code(() => applyAttributes('q.fifo', {}))).toBe('InvalidParameterValue');
  expect(code(() => applyAttributes('q', { FifoQueue: 'true' }))).toBe('InvalidParameterValue');
  expect(code(() => applyAttributes('q', { ApproximateNumberOfMessages: '1' }))).toBe('InvalidAttributeName');
});

test('set: queue type cannot change; an empty RedrivePolicy removes it', () => {
  const fifo = applyAttributes('q.fifo', { FifoQueue: 'true' });
  expect(code(() => applyAttributes('q.fifo', { FifoQueue: 'false' }, fifo))).toBe('InvalidAttributeValue');
  const withPolicy = applyAttributes('q', {
    RedrivePolicy: '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":3}',
  });
  expect(applyAttributes('q', { RedrivePolicy: '' }, withPolicy).RedrivePolicy).toBeUndefined();
});

test('redrive policy and idempotent create', () => {
  expect(parseRedrivePolicy('{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":"5"}')).toEqual({
    deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:d',
    maxReceiveCount: 5,
  });
  expect(code(() => parseRedrivePolicy('{"deadLetterTargetArn":"x","maxReceiveCount":5}'))).toBe('InvalidAttributeValue');
  expect(code(() => parseRedrivePolicy('{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":0}'))).toBe(
    'InvalidAttributeValue',
  );
  const stored = applyAttributes('q', { VisibilityTimeout: '20' });
  expect(differingAttribute(stored, { VisibilityTimeout: '20' }, 'q')).toBeUndefined();
  expect(differingAttribute(stored, { VisibilityTimeout: '21' }, 'q')).toBe('VisibilityTimeout');
  expect(differingAttribute(stored, {}, 'q')).toBeUndefined();
});

test('idempotent create: JSON attributes compare as documents (key order, spacing, maxReceiveCount as string or number)', () => {
  const redrive = '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":"5"}';
  const stored = applyAttributes('q', { RedrivePolicy: redrive });
  expect(
    differingAttribute(
      stored,
      { RedrivePolicy: '{ "maxReceiveCount": 5, "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:d" }' },
      'q',
    ),
  ).toBeUndefined();
  expect(
    differingAttribute(
      stored,
      { RedrivePolicy: '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":6}' },
      'q',
    ),
  ).toBe('RedrivePolicy');
  expect(differingAttribute(stored, { RedrivePolicy: '' }, 'q')).toBe('RedrivePolicy');
});
