import { expect, test } from 'vitest';
import {
  checkSubscriptionAttribute,
  parseRedrivePolicy,
  redrivePolicyOf,
  type SubscriptionRecord,
} from '../../../../src/messaging/engine/sns-records.js';

const arn = 'arn:aws:sqs:us-east-1:000000000000:my-dlq';

test('parses a redrive policy into the queue it names', () => {
  expect(parseRedrivePolicy(JSON.stringify({ deadLetterTargetArn: arn }))).toEqual({
    deadLetterTargetArn: arn,
    region: 'us-east-1',
    accountId: '000000000000',
    queueName: 'my-dlq',
  });
  expect(parseRedrivePolicy(JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:eu-west-1:123456789012:q.fifo' })).queueName).toBe('q.fifo');
});

test.each([
  ['{invalidjson}', 'Invalid parameter: RedrivePolicy: failed to parse JSON.'],
  ['[]', 'Invalid parameter: RedrivePolicy: failed to parse JSON.'],
  ['"x"', 'Invalid parameter: RedrivePolicy: failed to parse JSON.'],
  ['{}', 'Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn'],
  ['{"deadLetterTargetArn": "fake-arn"}', 'Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn'],
  ['{"deadLetterTargetArn": 42}', 'Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn'],
  [
    '{"deadLetterTargetArn": "arn:aws:sns:us-east-1:000000000000:topic"}',
    'Invalid parameter: RedrivePolicy: deadLetterTargetArn arn:aws:sns:us-east-1:000000000000:topic does not exist',
  ],
])('refuses %s', (value, message) => {
  expect(() => parseRedrivePolicy(value)).toThrow(expect.objectContaining({ code: 'InvalidParameter', message }));
  expect(() => checkSubscriptionAttribute('RedrivePolicy', value, { RedrivePolicy: value })).toThrow(message);
});

test('an empty value removes the policy; unreadable stored policies are ignored', () => {
  expect(() => checkSubscriptionAttribute('RedrivePolicy', '', {})).not.toThrow();
  const sub = (RedrivePolicy?: string) =>
    ({ attributes: RedrivePolicy === undefined ? {} : { RedrivePolicy } }) as unknown as SubscriptionRecord;
  expect(redrivePolicyOf(sub())).toBeUndefined();
  expect(redrivePolicyOf(sub(''))).toBeUndefined();
  expect(redrivePolicyOf(sub('nonsense'))).toBeUndefined();
  expect(redrivePolicyOf(sub(JSON.stringify({ deadLetterTargetArn: arn })))?.queueName).toBe('my-dlq');
});
