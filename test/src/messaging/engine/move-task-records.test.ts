import { describe, expect, test } from 'vitest';
import * as T from '../../../../src/messaging/engine/move-task-records.js';
import type { ReceivedMessage } from '../../../../src/messaging/sqs-engine.js';
import { errorText } from '../error-text.js';

const HERE = { accountId: '000000000000', region: 'us-east-1' };
const ARN = 'arn:aws:sqs:us-east-1:000000000000:dlq';

const record = (r: Partial<T.MoveTaskRecord> = {}): T.MoveTaskRecord => ({
  taskId: 't1',
  sourceArn: ARN,
  status: 'RUNNING',
  moved: 0,
  toMove: 5,
  startedAt: 1_000,
  senderId: 'AKID',
  worker: 'w1',
  beatAt: 1_000,
  ...r,
});

const failure = errorText;

describe('task handles', () => {
  test('base64 JSON with taskId and sourceArn, read back', () => {
    const handle = T.encodeTaskHandle('abc', ARN);
    expect(JSON.parse(Buffer.from(handle, 'base64').toString('utf8'))).toEqual({ taskId: 'abc', sourceArn: ARN });
    expect(T.decodeTaskHandle(handle)).toEqual({ taskId: 'abc', sourceArn: ARN });
  });

  test('garbage and forged shapes: AWS wording', () => {
    const invalid = 'InvalidParameterValue: Value for parameter TaskHandle is invalid.';
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');
    expect(failure(() => T.decodeTaskHandle('foobared'))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle('not a handle'))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle(''))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle(b64(['x'])))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle(b64({ taskId: 'x' })))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle(b64({ taskId: '', sourceArn: ARN })))).toBe(invalid);
    expect(failure(() => T.decodeTaskHandle(b64({ taskId: 'x', sourceArn: 'arn:aws:sns:us-east-1:0:t' })))).toBe(invalid);
  });
});

describe('queue ARNs', () => {
  test('the name for this account and region; undefined elsewhere; malformed refused', () => {
    expect(T.queueNameFromArn(ARN, 'SourceArn', HERE)).toBe('dlq');
    expect(T.queueNameFromArn('arn:aws:sqs:us-east-1:000000000000:q.fifo', 'SourceArn', HERE)).toBe('q.fifo');
    expect(T.queueNameFromArn('arn:aws:sqs:eu-west-1:000000000000:dlq', 'SourceArn', HERE)).toBeUndefined();
    expect(T.queueNameFromArn('arn:aws:sqs:us-east-1:111111111111:dlq', 'SourceArn', HERE)).toBeUndefined();
    expect(failure(() => T.queueNameFromArn('dlq', 'DestinationArn', HERE))).toBe(
      'InvalidParameterValue: You must use this format to specify the DestinationArn: arn:<partition>:<service>:<region>:<account-id>:<resource-id>',
    );
  });

  test('arnParts', () => {
    expect(T.arnParts(ARN)).toEqual(HERE);
  });
});

describe('record transitions', () => {
  test('cancel: only RUNNING', () => {
    expect(T.cancelled(record()).status).toBe('CANCELLING');
    for (const status of ['COMPLETED', 'CANCELLING', 'CANCELLED', 'FAILED'] as const) {
      expect(failure(() => T.cancelled(record({ status })))).toMatch(
        /^AWS\.SimpleQueueService\.UnsupportedOperation: Only a task with status RUNNING/,
      );
    }
  });

  test('heartbeat: progress; a cancel ends it; a takeover stops the old worker', () => {
    expect(T.heartbeat(record(), 'w1', 3, 2_000)).toMatchObject({ status: 'RUNNING', moved: 3, beatAt: 2_000 });
    expect(T.heartbeat(record({ status: 'CANCELLING' }), 'w1', 3, 2_000)).toMatchObject({ status: 'CANCELLED', moved: 3 });
    expect(T.heartbeat(record({ worker: 'w2' }), 'w1', 3, 2_000)).toBeUndefined();
    expect(T.heartbeat(record({ status: 'CANCELLED' }), 'w1', 3, 2_000)).toBeUndefined();
  });

  test('finished: completed, failed with a reason, released; a cancel wins', () => {
    expect(T.finished(record(), 'w1', 5, 'COMPLETED')).toMatchObject({ status: 'COMPLETED', moved: 5 });
    expect(T.finished(record(), 'w1', 2, 'FAILED', 'AWS.SimpleQueueService.NonExistentQueue')).toMatchObject({
      status: 'FAILED',
      failureReason: 'AWS.SimpleQueueService.NonExistentQueue',
    });
    expect(T.finished(record(), 'w1', 2, 'RUNNING')).toMatchObject({ status: 'RUNNING', moved: 2, beatAt: 0 });
    expect(T.finished(record({ status: 'CANCELLING' }), 'w1', 4, 'COMPLETED')).toMatchObject({ status: 'CANCELLED', moved: 4 });
    expect(T.finished(record({ worker: 'w2' }), 'w1', 4, 'COMPLETED')).toBeUndefined();
  });

  test('takeover: only after the heartbeat went stale', () => {
    expect(T.takenOver(record({ beatAt: 1_000 }), 'w2', 5_000, 10_000)).toBeUndefined();
    expect(T.takenOver(record({ beatAt: 1_000 }), 'w2', 11_000, 10_000)).toMatchObject({ status: 'RUNNING', worker: 'w2', beatAt: 11_000 });
    // A worker that let go (shutdown) is resumed at once.
    expect(T.takenOver(record({ beatAt: 0 }), 'w2', 5_000, 10_000)).toMatchObject({ worker: 'w2' });
    expect(T.takenOver(record({ status: 'CANCELLING', beatAt: 0 }), 'w2', 5_000, 10_000)).toMatchObject({
      status: 'CANCELLED',
      worker: 'w1',
    });
    expect(T.takenOver(record({ status: 'COMPLETED', beatAt: 0 }), 'w2', 5_000, 10_000)).toBeUndefined();
  });

  test('expiry after 14 days, finished tasks only', () => {
    const late = 1_000 + T.TASK_RETENTION_MS + 1;
    expect(T.expired(record({ status: 'COMPLETED' }), late)).toBe(true);
    expect(T.expired(record({ status: 'COMPLETED' }), late - 2)).toBe(false);
    expect(T.expired(record(), late)).toBe(false);
  });
});

describe('ListMessageMoveTasks entries', () => {
  test('handle only while RUNNING, reason only when FAILED, optional members only when set', () => {
    expect(T.resultEntry(record({ moved: 2 }))).toEqual({
      TaskHandle: T.encodeTaskHandle('t1', ARN),
      Status: 'RUNNING',
      SourceArn: ARN,
      ApproximateNumberOfMessagesMoved: 2,
      ApproximateNumberOfMessagesToMove: 5,
      StartedTimestamp: 1_000,
    });
    expect(
      T.resultEntry(
        record({ status: 'FAILED', failureReason: 'X', destinationArn: 'arn:aws:sqs:us-east-1:000000000000:d', maxPerSecond: 3 }),
      ),
    ).toEqual({
      Status: 'FAILED',
      SourceArn: ARN,
      DestinationArn: 'arn:aws:sqs:us-east-1:000000000000:d',
      MaxNumberOfMessagesPerSecond: 3,
      ApproximateNumberOfMessagesMoved: 0,
      ApproximateNumberOfMessagesToMove: 5,
      FailureReason: 'X',
      StartedTimestamp: 1_000,
    });
    expect(T.resultEntry(record({ status: 'CANCELLED', failureReason: 'X' }))).not.toHaveProperty('FailureReason');
  });

  test('newest first, at most max', () => {
    const tasks = [record({ taskId: 'a', startedAt: 1 }), record({ taskId: 'b', startedAt: 3 }), record({ taskId: 'c', startedAt: 2 })];
    expect(T.newestFirst(tasks, 2).map((t) => t.taskId)).toEqual(['b', 'c']);
    expect(T.newestFirst(tasks, 1).map((t) => t.taskId)).toEqual(['b']);
  });
});

describe('what the destination receives', () => {
  const received = (a: Record<string, string>): ReceivedMessage => ({
    MessageId: 'mid',
    ReceiptHandle: 'h',
    Body: 'body',
    Attributes: a,
    MessageAttributes: { k: { DataType: 'String', StringValue: 'v' } },
  });

  test('standard: body, attributes, trace header and group; no dedup id', () => {
    expect(T.toSend(received({ AWSTraceHeader: 'Root=1', MessageGroupId: 'g', SentTimestamp: '1' }), false)).toEqual({
      MessageBody: 'body',
      MessageAttributes: { k: { DataType: 'String', StringValue: 'v' } },
      MessageSystemAttributes: { AWSTraceHeader: { DataType: 'String', StringValue: 'Root=1' } },
      MessageGroupId: 'g',
    });
  });

  test('FIFO: the group, and the MessageId as deduplication id (as AWS does for dead-lettered messages)', () => {
    expect(T.toSend(received({ MessageGroupId: 'g', MessageDeduplicationId: 'orig' }), true)).toMatchObject({
      MessageGroupId: 'g',
      MessageDeduplicationId: 'mid',
      MessageSystemAttributes: {},
    });
  });
});
