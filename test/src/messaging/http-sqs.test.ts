/** Every SQS action once through injected requests (light-my-request), in both wire forms, over the in-memory engine. */
import { describe, expect, test, vi } from 'vitest';
import { md5OfBody, md5OfMessageAttributes } from '../../../src/messaging/md5.js';
import { sqsJson, sqsQuery, testApp, xmlText, xmlTexts } from './helpers.js';

const BASE = 'http://localhost/000000000000';

describe('SQS Query (XML)', () => {
  test('every action', async () => {
    const { app } = await testApp();
    const call = async (params: Record<string, string>) => {
      const res = await sqsQuery(app, params);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toBe('text/xml');
      expect(xmlText(res.body, 'RequestId')).toBe(res.headers['x-amzn-requestid']);
      expect(res.body).toContain(`<${params.Action}Response xmlns="http://queue.amazonaws.com/doc/2012-11-05/">`);
      return res.body;
    };
    const url = `${BASE}/q1`;
    expect(
      xmlText(
        await call({
          Action: 'CreateQueue',
          QueueName: 'q1',
          'Attribute.1.Name': 'VisibilityTimeout',
          'Attribute.1.Value': '5',
          'Tag.1.Key': 't',
          'Tag.1.Value': 'v',
        }),
        'QueueUrl',
      ),
    ).toBe(url);
    await call({ Action: 'CreateQueue', QueueName: 'dlq' });
    expect(xmlText(await call({ Action: 'GetQueueUrl', QueueName: 'q1' }), 'QueueUrl')).toBe(url);
    expect(xmlTexts(await call({ Action: 'ListQueues', QueueNamePrefix: 'q' }), 'QueueUrl')).toEqual([url]);
    await call({
      Action: 'SetQueueAttributes',
      QueueUrl: `${BASE}/dlq`,
      'Attribute.1.Name': 'RedrivePolicy',
      'Attribute.1.Value': '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:q1"}',
    });
    const attrs = await call({
      Action: 'GetQueueAttributes',
      QueueUrl: url,
      'AttributeName.1': 'VisibilityTimeout',
      'AttributeName.2': 'QueueArn',
    });
    expect(attrs).toContain(
      '<Attribute><Name>VisibilityTimeout</Name><Value>5</Value></Attribute><Attribute><Name>QueueArn</Name><Value>arn:aws:sqs:us-east-1:000000000000:q1</Value></Attribute>',
    );

    const sent = await call({
      Action: 'SendMessage',
      QueueUrl: url,
      MessageBody: 'a <b> & c\r\n',
      'MessageAttribute.1.Name': 'k',
      'MessageAttribute.1.Value.DataType': 'String',
      'MessageAttribute.1.Value.StringValue': 'v',
    });
    expect(xmlText(sent, 'MD5OfMessageBody')).toBe(md5OfBody('a <b> & c\r\n'));
    expect(xmlText(sent, 'MD5OfMessageAttributes')).toBe(md5OfMessageAttributes({ k: { DataType: 'String', StringValue: 'v' } }));
    expect(sent).not.toContain('MD5OfMessageSystemAttributes');
    const batch = await call({
      Action: 'SendMessageBatch',
      QueueUrl: url,
      'SendMessageBatchRequestEntry.1.Id': 'x',
      'SendMessageBatchRequestEntry.1.MessageBody': 'one',
      'SendMessageBatchRequestEntry.2.Id': 'y',
      'SendMessageBatchRequestEntry.2.MessageBody': 'two',
    });
    expect(batch).toMatch(
      /<SendMessageBatchResultEntry><Id>x<\/Id><MessageId>[^<]+<\/MessageId><MD5OfMessageBody>[0-9a-f]{32}<\/MD5OfMessageBody><\/SendMessageBatchResultEntry>/,
    );

    const received = await call({
      Action: 'ReceiveMessage',
      QueueUrl: url,
      MaxNumberOfMessages: '10',
      'AttributeName.1': 'ApproximateReceiveCount',
      'MessageAttributeName.1': 'All',
    });
    expect(xmlTexts(received, 'Body')).toEqual(['a <b> & c\r\n', 'one', 'two']);
    expect(received).toContain('&#xD;');
    expect(received).toContain('<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>');
    expect(received).toContain(
      '<MessageAttribute><Name>k</Name><Value><StringValue>v</StringValue><DataType>String</DataType></Value></MessageAttribute>',
    );
    const handles = xmlTexts(received, 'ReceiptHandle');
    expect(handles).toHaveLength(3);

    await call({ Action: 'ChangeMessageVisibility', QueueUrl: url, ReceiptHandle: handles[0] ?? '', VisibilityTimeout: '60' });
    const cmvb = await call({
      Action: 'ChangeMessageVisibilityBatch',
      QueueUrl: url,
      'ChangeMessageVisibilityBatchRequestEntry.1.Id': 'c1',
      'ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle': handles[1] ?? '',
      'ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout': '60',
    });
    expect(cmvb).toContain('<ChangeMessageVisibilityBatchResultEntry><Id>c1</Id></ChangeMessageVisibilityBatchResultEntry>');
    await call({ Action: 'DeleteMessage', QueueUrl: url, ReceiptHandle: handles[0] ?? '' });
    const dmb = await call({
      Action: 'DeleteMessageBatch',
      QueueUrl: url,
      'DeleteMessageBatchRequestEntry.1.Id': 'd1',
      'DeleteMessageBatchRequestEntry.1.ReceiptHandle': handles[1] ?? '',
      'DeleteMessageBatchRequestEntry.2.Id': 'd2',
      'DeleteMessageBatchRequestEntry.2.ReceiptHandle': 'bogus',
    });
    expect(dmb).toContain('<DeleteMessageBatchResultEntry><Id>d1</Id></DeleteMessageBatchResultEntry>');
    expect(dmb).toContain('<BatchResultErrorEntry><Id>d2</Id><SenderFault>true</SenderFault><Code>ReceiptHandleIsInvalid</Code>');
    await call({ Action: 'PurgeQueue', QueueUrl: url });
    expect(await call({ Action: 'ReceiveMessage', QueueUrl: url })).toContain('<ReceiveMessageResult/>');

    expect(xmlTexts(await call({ Action: 'ListDeadLetterSourceQueues', QueueUrl: url }), 'QueueUrl')).toEqual([`${BASE}/dlq`]);
    await call({ Action: 'TagQueue', QueueUrl: url, 'Tag.1.Key': 'u', 'Tag.1.Value': 'w' });
    await call({ Action: 'UntagQueue', QueueUrl: url, 'TagKey.1': 't' });
    expect(await call({ Action: 'ListQueueTags', QueueUrl: url })).toContain(
      '<ListQueueTagsResult><Tag><Key>u</Key><Value>w</Value></Tag></ListQueueTagsResult>',
    );
    const deleted = await call({ Action: 'DeleteQueue', QueueUrl: url });
    expect(deleted).not.toContain('DeleteQueueResult');
  });

  test('GET with the query string, and a request addressed to the queue path', async () => {
    const { app } = await testApp();
    await sqsQuery(app, { Action: 'CreateQueue', QueueName: 'p' });
    const viaPath = await sqsQuery(app, { Action: 'SendMessage', MessageBody: 'by path' }, { path: '/000000000000/p' });
    expect(viaPath.statusCode, viaPath.body).toBe(200);
    const viaGet = await sqsQuery(
      app,
      {},
      { method: 'GET', body: '', query: { Action: 'ReceiveMessage', QueueUrl: `${BASE}/p`, Version: '2012-11-05' } },
    );
    expect(xmlText(viaGet.body, 'Body')).toBe('by path');
  });

  test('queue URLs follow the Host header, or messaging.base_url', async () => {
    const { app } = await testApp();
    const res = await sqsQuery(
      app,
      { Action: 'CreateQueue', QueueName: 'h' },
      { headers: { host: 'queues.internal:9324', 'content-type': 'application/x-www-form-urlencoded' } },
    );
    expect(xmlText(res.body, 'QueueUrl')).toBe('http://queues.internal:9324/000000000000/h');
    const configured = await testApp({ base_url: 'https://sqs.example.org/', account_id: '123456789012' });
    const res2 = await sqsQuery(configured.app, { Action: 'CreateQueue', QueueName: 'h' });
    expect(xmlText(res2.body, 'QueueUrl')).toBe('https://sqs.example.org/123456789012/h');
  });
});

describe('SQS JSON 1.0', () => {
  test('every action', async () => {
    const { app } = await testApp();
    const call = async (action: string, input: unknown) => {
      const res = await sqsJson(app, action, input);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-amz-json-1.0');
      expect(res.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/);
      return JSON.parse(res.body) as Record<string, unknown>;
    };
    const QueueUrl = `${BASE}/j`;
    expect(await call('CreateQueue', { QueueName: 'j', Attributes: { DelaySeconds: '0' }, tags: { t: 'v' } })).toEqual({ QueueUrl });
    await call('CreateQueue', {
      QueueName: 'jdlq',
      Attributes: { RedrivePolicy: '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:j"}' },
    });
    expect(await call('GetQueueUrl', { QueueName: 'j' })).toEqual({ QueueUrl });
    expect(await call('ListQueues', { MaxResults: 1 })).toEqual({ QueueUrls: [QueueUrl], NextToken: '1' });
    expect(await call('SetQueueAttributes', { QueueUrl, Attributes: { VisibilityTimeout: '9' } })).toEqual({});
    expect(await call('GetQueueAttributes', { QueueUrl, AttributeNames: ['VisibilityTimeout'] })).toEqual({
      Attributes: { VisibilityTimeout: '9' },
    });
    const attributes = { bin: { DataType: 'Binary', BinaryValue: 'AAEC' } };
    const sent = await call('SendMessage', {
      QueueUrl,
      MessageBody: 'hi',
      MessageAttributes: attributes,
      MessageSystemAttributes: { AWSTraceHeader: { DataType: 'String', StringValue: 'Root=1-a' } },
    });
    expect(sent).toMatchObject({
      MD5OfMessageBody: md5OfBody('hi'),
      MD5OfMessageAttributes: md5OfMessageAttributes({ bin: { DataType: 'Binary', BinaryValue: Buffer.from([0, 1, 2]) } }),
      MD5OfMessageSystemAttributes: md5OfMessageAttributes({ AWSTraceHeader: { DataType: 'String', StringValue: 'Root=1-a' } }),
    });
    const batch = await call('SendMessageBatch', {
      QueueUrl,
      Entries: [
        { Id: 'a', MessageBody: 'one' },
        { Id: 'b', MessageBody: 'bad\u0001' },
      ],
    });
    expect(batch).toMatchObject({
      Successful: [{ Id: 'a', MD5OfMessageBody: md5OfBody('one') }],
      Failed: [{ Id: 'b', Code: 'InvalidMessageContents', SenderFault: true }],
    });

    const received = (await call('ReceiveMessage', {
      QueueUrl,
      MaxNumberOfMessages: 10,
      MessageAttributeNames: ['b.*'],
      MessageSystemAttributeNames: ['AWSTraceHeader'],
    })) as { Messages: Record<string, unknown>[] };
    expect(received.Messages).toHaveLength(2);
    expect(received.Messages[0]).toMatchObject({
      Body: 'hi',
      MD5OfBody: md5OfBody('hi'),
      Attributes: { AWSTraceHeader: 'Root=1-a' },
      MessageAttributes: attributes,
    });
    expect(received.Messages[1]).not.toHaveProperty('MessageAttributes');
    expect(received.Messages[1]).not.toHaveProperty('MD5OfMessageAttributes');
    const [h1, h2] = received.Messages.map((m) => m.ReceiptHandle as string);

    expect(await call('ChangeMessageVisibility', { QueueUrl, ReceiptHandle: h1, VisibilityTimeout: 30 })).toEqual({});
    expect(
      await call('ChangeMessageVisibilityBatch', { QueueUrl, Entries: [{ Id: 'c', ReceiptHandle: h2, VisibilityTimeout: 50000 }] }),
    ).toMatchObject({ Successful: [], Failed: [{ Id: 'c', Code: 'InvalidParameterValue' }] });
    expect(await call('DeleteMessage', { QueueUrl, ReceiptHandle: h1 })).toEqual({});
    expect(await call('DeleteMessageBatch', { QueueUrl, Entries: [{ Id: 'd', ReceiptHandle: h2 }] })).toEqual({
      Successful: [{ Id: 'd' }],
      Failed: [],
    });
    expect(await call('PurgeQueue', { QueueUrl })).toEqual({});
    expect(await call('ReceiveMessage', { QueueUrl, WaitTimeSeconds: 0 })).toEqual({});
    expect(await call('ListDeadLetterSourceQueues', { QueueUrl })).toEqual({ queueUrls: [`${BASE}/jdlq`] });
    expect(await call('TagQueue', { QueueUrl, Tags: { u: 'w' } })).toEqual({});
    expect(await call('UntagQueue', { QueueUrl, TagKeys: ['t'] })).toEqual({});
    expect(await call('ListQueueTags', { QueueUrl })).toEqual({ Tags: { u: 'w' } });
    expect(await call('DeleteQueue', { QueueUrl })).toEqual({});
  });

  test('a long poll returns when a message arrives', async () => {
    const { app, engine } = await testApp();
    const QueueUrl = `${BASE}/lp`;
    await sqsJson(app, 'CreateQueue', { QueueName: 'lp' });
    const poll = sqsJson(app, 'ReceiveMessage', { QueueUrl, WaitTimeSeconds: 5 });
    await vi.waitFor(() => expect(engine.waiting()).toBe(1), { timeout: 2000, interval: 5 });
    await sqsJson(app, 'SendMessage', { QueueUrl, MessageBody: 'late' });
    const res = await poll;
    expect(JSON.parse(res.body)).toMatchObject({ Messages: [{ Body: 'late' }] });
  });
});
