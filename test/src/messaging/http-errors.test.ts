/** Error answers in both wire shapes, through injected requests (light-my-request). */
import { pino } from 'pino';
import { describe, expect, test, onTestFinished } from 'vitest';
import { buildMessagingApp } from '../../../src/messaging/http.js';
import type { SqsEngine } from '../../../src/messaging/sqs-engine.js';
import { createMemoryEngine } from './memory-engine.js';
import { injectInto, send, snsQuery, sqsJson, sqsQuery, testApp, testConfig, xmlText } from './helpers.js';

const Q = 'http://localhost/000000000000/q';

function queryError(res: { statusCode: number; body: string; headers: Record<string, unknown> }) {
  expect(res.headers['content-type']).toBe('text/xml');
  expect(xmlText(res.body, 'RequestId')).toBe(res.headers['x-amzn-requestid']);
  return {
    status: res.statusCode,
    type: xmlText(res.body, 'Type'),
    code: xmlText(res.body, 'Code'),
    message: xmlText(res.body, 'Message'),
  };
}

function jsonError(res: { statusCode: number; body: string; headers: Record<string, unknown> }) {
  expect(res.headers['content-type']).toBe('application/x-amz-json-1.0');
  expect(res.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/);
  const body = JSON.parse(res.body) as { __type: string; message: string };
  return { status: res.statusCode, type: body.__type, message: body.message, queryError: res.headers['x-amzn-query-error'] };
}

describe('the two shapes of one error', () => {
  test('Query: ErrorResponse with Type, Code, Message, Detail and RequestId', async () => {
    const { app } = await testApp();
    const res = await sqsQuery(app, { Action: 'GetQueueUrl', QueueName: 'missing' });
    expect(res.body).toMatch(
      /^<\?xml version="1.0"\?><ErrorResponse xmlns="http:\/\/queue.amazonaws.com\/doc\/2012-11-05\/"><Error><Type>Sender<\/Type><Code>AWS.SimpleQueueService.NonExistentQueue<\/Code><Message>The specified queue does not exist for this wsdl version.<\/Message><Detail\/><\/Error><RequestId>[0-9a-f-]{36}<\/RequestId><\/ErrorResponse>$/,
    );
    expect(res.statusCode).toBe(400);
  });

  test('JSON: __type and message, plus x-amzn-query-error', async () => {
    const { app } = await testApp();
    expect(jsonError(await sqsJson(app, 'GetQueueUrl', { QueueName: 'missing' }))).toEqual({
      status: 400,
      type: 'com.amazonaws.sqs#QueueDoesNotExist',
      message: 'The specified queue does not exist.',
      queryError: 'AWS.SimpleQueueService.NonExistentQueue;Sender',
    });
  });

  test('SNS: its own namespace and codes', async () => {
    const { app } = await testApp();
    const res = await snsQuery(app, { Action: 'GetTopicAttributes', TopicArn: 'arn:aws:sns:us-east-1:000000000000:none' });
    expect(res.body).toContain('<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">');
    expect(queryError(res)).toEqual({ status: 404, type: 'Sender', code: 'NotFound', message: 'Topic does not exist' });
  });
});

describe('front-end errors', () => {
  test('unknown and missing actions', async () => {
    const { app } = await testApp();
    expect(queryError(await sqsQuery(app, { Action: 'FlyToTheMoon' }))).toMatchObject({
      status: 400,
      code: 'InvalidAction',
      message: 'The action FlyToTheMoon is not valid for this endpoint.',
    });
    expect(queryError(await sqsQuery(app, {}))).toMatchObject({ status: 400, code: 'MissingAction' });
    expect(jsonError(await sqsJson(app, 'FlyToTheMoon', {}))).toMatchObject({ status: 400, queryError: 'InvalidAction;Sender' });
    // An SQS action signed for SNS is not an SNS action.
    expect(queryError(await snsQuery(app, { Action: 'CreateQueue', QueueName: 'x' }))).toMatchObject({ code: 'InvalidAction' });
  });

  test("methods other than GET and POST, and undecodable URLs, get the protocol's error, not the framework's", async () => {
    const { app } = await testApp({ verify_signatures: false });
    const json = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues' };
    for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND'] as const) {
      const res = await injectInto(app, { method: method, url: '/', headers: json, payload: '{}' });
      expect([method, jsonError(res)]).toMatchObject([method, { status: 400, queryError: 'InvalidAction;Sender' }]);
      const query = await injectInto(app, { method: method, url: '/?Action=ListQueues' });
      expect([method, queryError(query)]).toMatchObject([method, { status: 400, code: 'InvalidAction' }]);
    }
    expect(queryError(await injectInto(app, { method: 'GET', url: '/%e9/?Action=ListQueues' }))).toMatchObject({
      status: 404,
      code: 'MalformedQueryString',
    });
  });

  test('malformed input', async () => {
    const { app } = await testApp();
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect(queryError(await send(app, { body: 'Action=ListQueues&Version=2012-11-05&X=%zz', headers: form }))).toMatchObject({
      status: 404,
      code: 'MalformedQueryString',
    });
    const json = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues' };
    expect(jsonError(await send(app, { body: '{"QueueNamePrefix": ', headers: json }))).toMatchObject({
      status: 400,
      queryError: 'SerializationException;Sender',
    });
    expect(jsonError(await sqsJson(app, 'ReceiveMessage', { QueueUrl: Q, MaxNumberOfMessages: '5' }))).toMatchObject({
      status: 400,
      type: 'com.amazon.coral.service#SerializationException',
    });
  });

  test('missing and invalid parameters', async () => {
    const { app } = await testApp();
    expect(queryError(await sqsQuery(app, { Action: 'SendMessage', MessageBody: 'x' }))).toMatchObject({
      status: 400,
      code: 'MissingParameter',
      message: 'The request must contain the parameter QueueUrl.',
    });
    expect(jsonError(await sqsJson(app, 'DeleteQueue', {}))).toMatchObject({
      type: 'com.amazonaws.sqs#MissingRequiredParameterException',
      queryError: 'MissingParameter;Sender',
    });
    expect(queryError(await sqsQuery(app, { Action: 'ReceiveMessage', QueueUrl: Q, MaxNumberOfMessages: '11' }))).toMatchObject({
      code: 'InvalidParameterValue',
      message: 'Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.',
    });
    expect(jsonError(await sqsJson(app, 'ReceiveMessage', { QueueUrl: Q, WaitTimeSeconds: 21 }))).toMatchObject({
      type: 'com.amazonaws.sqs#InvalidParameterValueException',
      queryError: 'InvalidParameterValue;Sender',
    });
    expect(queryError(await snsQuery(app, { Action: 'CreateTopic' }))).toMatchObject({
      code: 'ValidationError',
      message: "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null",
    });
    expect(queryError(await snsQuery(app, { Action: 'Publish', Message: 'm' }))).toMatchObject({ code: 'InvalidParameter' });
  });

  test('message contents, attributes and size', async () => {
    const { app } = await testApp();
    await sqsJson(app, 'CreateQueue', { QueueName: 'q' });
    expect(jsonError(await sqsJson(app, 'SendMessage', { QueueUrl: Q, MessageBody: 'nul\u0000' }))).toMatchObject({
      queryError: 'InvalidMessageContents;Sender',
    });
    const bad = await sqsJson(app, 'SendMessage', {
      QueueUrl: Q,
      MessageBody: 'x',
      MessageAttributes: { 'AWS.x': { DataType: 'String', StringValue: 'v' } },
    });
    expect(jsonError(bad)).toMatchObject({ queryError: 'InvalidParameterValue;Sender' });
    const noValue = await sqsQuery(app, {
      Action: 'SendMessage',
      QueueUrl: Q,
      MessageBody: 'x',
      'MessageAttribute.1.Name': 'n',
      'MessageAttribute.1.Value.DataType': 'Number',
    });
    expect(queryError(noValue).message).toBe("Message (user) attribute 'n' must contain a non-empty value of type 'Number'.");
    const big = await sqsJson(app, 'SendMessage', { QueueUrl: Q, MessageBody: 'x'.repeat(1_048_577) });
    expect(jsonError(big).message).toBe('One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.');
  });

  test('batch shape', async () => {
    const { app } = await testApp();
    const entry = (Id: string) => ({ Id, MessageBody: 'b' });
    const code = async (Entries: unknown[]) => jsonError(await sqsJson(app, 'SendMessageBatch', { QueueUrl: Q, Entries })).queryError;
    expect(await code([])).toBe('AWS.SimpleQueueService.EmptyBatchRequest;Sender');
    expect(await code(Array.from({ length: 11 }, (_, i) => entry(`e${i}`)))).toBe(
      'AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender',
    );
    expect(await code([entry('a'), entry('a')])).toBe('AWS.SimpleQueueService.BatchEntryIdsNotDistinct;Sender');
    expect(await code([entry('no spaces')])).toBe('AWS.SimpleQueueService.InvalidBatchEntryId;Sender');
    expect(
      await code([
        { Id: 'a', MessageBody: 'x'.repeat(600_000) },
        { Id: 'b', MessageBody: 'x'.repeat(600_000) },
      ]),
    ).toBe('AWS.SimpleQueueService.BatchRequestTooLong;Sender');
  });

  test('a body over max_request_bytes', async () => {
    const { app } = await testApp({ max_request_bytes: 1_200_000 });
    const huge = 'x'.repeat(1_300_000);
    const query = await send(app, {
      body: `Action=SendMessage&MessageBody=${huge}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(queryError(query)).toMatchObject({
      status: 400,
      code: 'InvalidParameterValue',
      message: 'One or more parameters are invalid. Reason: Request body must be shorter than 1200000 bytes.',
    });
    const json = await send(app, {
      body: huge,
      headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.SendMessageBatch' },
    });
    expect(jsonError(json)).toMatchObject({ status: 400, queryError: 'AWS.SimpleQueueService.BatchRequestTooLong;Sender' });
  });
});

describe('authentication', () => {
  test('unsigned, unknown key, wrong secret', async () => {
    const { app } = await testApp();
    expect(queryError(await sqsQuery(app, { Action: 'ListQueues' }, { unsigned: true }))).toMatchObject({
      status: 403,
      code: 'MissingAuthenticationToken',
    });
    const stranger = { accessKeyId: 'AKIDSTRANGER', secretAccessKey: 'whatever-secret' };
    expect(jsonError(await sqsJson(app, 'ListQueues', {}, { credentials: stranger }))).toMatchObject({
      status: 403,
      queryError: 'InvalidClientTokenId;Sender',
    });
    const wrong = { accessKeyId: 'AKIDTESTKEY', secretAccessKey: 'not-the-secret' };
    expect(queryError(await snsQuery(app, { Action: 'ListTopics' }, { service: 'sns', credentials: wrong }))).toMatchObject({
      status: 403,
      code: 'SignatureDoesNotMatch',
    });
    const stale = await sqsJson(app, 'ListQueues', {}, { signingDate: new Date(Date.now() - 20 * 60_000) });
    expect(jsonError(stale)).toMatchObject({ status: 403, queryError: 'SignatureDoesNotMatch;Sender' });
    expect(jsonError(stale).message).toMatch(/^Signature expired: /);
  });

  test('verify_signatures: false accepts unsigned requests', async () => {
    const { app } = await testApp({ verify_signatures: false, credentials: [] });
    const res = await sqsQuery(app, { Action: 'ListQueues' }, { unsigned: true });
    expect(res.statusCode).toBe(200);
  });
});

describe('engine failures', () => {
  test('untyped exceptions become 500 InternalFailure / InternalError without internals', async () => {
    const memory = createMemoryEngine();
    const failing: SqsEngine = {
      ...memory.sqs,
      listQueues: async () => Promise.reject(new Error('nats://10.0.0.5:4222 stream SQS_q: secret detail')),
    };
    const logged: unknown[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const app = buildMessagingApp({
      config: testConfig(),
      sqs: failing,
      sns: { ...memory.sns, listTopics: async () => Promise.reject(new TypeError('boom')) },
      log,
    });
    onTestFinished(() => app.close());
    const query = await sqsQuery(app, { Action: 'ListQueues' });
    expect(queryError(query)).toEqual({
      status: 500,
      type: 'Receiver',
      code: 'InternalFailure',
      message: 'The request processing has failed because of an unknown error, exception or failure.',
    });
    expect(query.body).not.toContain('secret');
    const json = jsonError(await sqsJson(app, 'ListQueues', {}));
    expect(json).toMatchObject({ status: 500, queryError: 'InternalFailure;Receiver' });
    expect(queryError(await snsQuery(app, { Action: 'ListTopics' }))).toMatchObject({
      status: 500,
      type: 'Receiver',
      code: 'InternalError',
    });
    expect(logged).toHaveLength(3);
    expect(logged[0]).toMatchObject({ msg: 'messaging request failed', err: { message: expect.stringContaining('secret detail') } });
    expect(JSON.stringify(logged)).not.toContain('Signature=');
  });
});
