/** Every SNS action once through injected requests (light-my-request) (Query/XML), over the in-memory engine. */
import { describe, expect, test } from 'vitest';
import { send, snsQuery, sqsJson, testApp, xmlText, xmlTexts } from './helpers.js';

describe('SNS Query (XML)', () => {
  test('every action', async () => {
    const { app } = await testApp();
    const call = async (params: Record<string, string>) => {
      const res = await snsQuery(app, params);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toBe('text/xml');
      expect(res.body).toContain(`<${params.Action}Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/">`);
      expect(xmlText(res.body, 'RequestId')).toBe(res.headers['x-amzn-requestid']);
      return res.body;
    };
    await sqsJson(app, 'CreateQueue', { QueueName: 'inbox' });
    const T = 'arn:aws:sns:us-east-1:000000000000:news';
    expect(
      xmlText(
        await call({
          Action: 'CreateTopic',
          Name: 'news',
          'Attributes.entry.1.key': 'DisplayName',
          'Attributes.entry.1.value': 'News',
          'Tags.member.1.Key': 'a',
          'Tags.member.1.Value': 'b',
        }),
        'TopicArn',
      ),
    ).toBe(T);
    expect(await call({ Action: 'ListTopics' })).toContain(`<Topics><member><TopicArn>${T}</TopicArn></member></Topics>`);
    await call({ Action: 'SetTopicAttributes', TopicArn: T, AttributeName: 'DisplayName', AttributeValue: 'Daily <News>' });
    expect(await call({ Action: 'GetTopicAttributes', TopicArn: T })).toContain(
      '<Attributes><entry><key>DisplayName</key><value>Daily &lt;News&gt;</value></entry>',
    );

    const subscribed = await call({
      Action: 'Subscribe',
      TopicArn: T,
      Protocol: 'sqs',
      Endpoint: 'arn:aws:sqs:us-east-1:000000000000:inbox',
      'Attributes.entry.1.key': 'RawMessageDelivery',
      'Attributes.entry.1.value': 'true',
    });
    const subArn = xmlText(subscribed, 'SubscriptionArn') ?? '';
    expect(subArn.startsWith(`${T}:`)).toBe(true);
    const pending = await call({ Action: 'Subscribe', TopicArn: T, Protocol: 'https', Endpoint: 'https://hooks.example/x' });
    expect(xmlText(pending, 'SubscriptionArn')).toBe('pending confirmation');
    const listed = await call({ Action: 'ListSubscriptions' });
    expect(xmlTexts(listed, 'SubscriptionArn')).toEqual([subArn, 'PendingConfirmation']);
    expect(listed).toContain(
      `<member><TopicArn>${T}</TopicArn><Protocol>sqs</Protocol><SubscriptionArn>${subArn}</SubscriptionArn><Owner>000000000000</Owner><Endpoint>arn:aws:sqs:us-east-1:000000000000:inbox</Endpoint></member>`,
    );
    expect(xmlTexts(await call({ Action: 'ListSubscriptionsByTopic', TopicArn: T }), 'Protocol')).toEqual(['sqs', 'https']);
    await call({ Action: 'SetSubscriptionAttributes', SubscriptionArn: subArn, AttributeName: 'FilterPolicy', AttributeValue: '{}' });
    expect(await call({ Action: 'GetSubscriptionAttributes', SubscriptionArn: subArn })).toContain(
      '<entry><key>FilterPolicy</key><value>{}</value></entry>',
    );

    const published = await call({
      Action: 'Publish',
      TopicArn: T,
      Message: 'hello',
      'MessageAttributes.entry.1.Name': 'k',
      'MessageAttributes.entry.1.Value.DataType': 'String',
      'MessageAttributes.entry.1.Value.StringValue': 'v',
    });
    expect(xmlText(published, 'MessageId')).toMatch(/^[0-9a-f-]{36}$/);
    const batch = await call({
      Action: 'PublishBatch',
      TopicArn: T,
      'PublishBatchRequestEntries.member.1.Id': 'one',
      'PublishBatchRequestEntries.member.1.Message': 'first',
      'PublishBatchRequestEntries.member.2.Id': 'two',
      'PublishBatchRequestEntries.member.2.Message': '',
    });
    expect(batch).toMatch(/<Successful><member><Id>one<\/Id><MessageId>[^<]+<\/MessageId><\/member><\/Successful>/);
    expect(batch).toContain(
      '<Failed><member><Id>two</Id><Code>InvalidParameter</Code><Message>Invalid parameter: Empty message</Message><SenderFault>true</SenderFault></member></Failed>',
    );
    const inbox = JSON.parse(
      (
        await sqsJson(app, 'ReceiveMessage', {
          QueueUrl: 'http://localhost/000000000000/inbox',
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ['All'],
        })
      ).body,
    );
    expect(inbox.Messages.map((m: { Body: string }) => m.Body)).toEqual(['hello', 'first']);

    await call({ Action: 'TagResource', ResourceArn: T, 'Tags.member.1.Key': 'c', 'Tags.member.1.Value': 'd' });
    expect(await call({ Action: 'UntagResource', ResourceArn: T, 'TagKeys.member.1': 'a' })).toContain('<UntagResourceResult/>');
    expect(await call({ Action: 'ListTagsForResource', ResourceArn: T })).toContain(
      '<Tags><member><Key>c</Key><Value>d</Value></member></Tags>',
    );
    await call({ Action: 'Unsubscribe', SubscriptionArn: subArn });
    expect(await call({ Action: 'DeleteTopic', TopicArn: T })).not.toContain('DeleteTopicResult');
  });

  test('confirmation links are unsigned GETs and are answered', async () => {
    const { app, engine } = await testApp();
    const T = xmlText((await snsQuery(app, { Action: 'CreateTopic', Name: 'hooks' })).body, 'TopicArn') ?? '';
    await snsQuery(app, { Action: 'Subscribe', TopicArn: T, Protocol: 'https', Endpoint: 'https://example/hook' });
    const wrong = await send(app, { method: 'GET', unsigned: true, query: { Action: 'ConfirmSubscription', TopicArn: T, Token: 'nope' } });
    expect(wrong.statusCode).toBe(400);
    expect(xmlText(wrong.body, 'Code')).toBe('InvalidParameter');
    expect(wrong.body).toContain('xmlns="http://sns.amazonaws.com/doc/2010-03-31/"');
    const [token] = engine.pendingTokens();
    const confirmed = await send(app, {
      method: 'GET',
      unsigned: true,
      query: { Action: 'ConfirmSubscription', TopicArn: T, Token: token ?? '' },
    });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    expect(xmlText(confirmed.body, 'SubscriptionArn')).toMatch(/^arn:aws:sns:us-east-1:000000000000:hooks:/);
    const other = await send(app, { method: 'GET', unsigned: true, query: { Action: 'ListTopics' } });
    expect(other.statusCode).toBe(403);
    expect(xmlText(other.body, 'Code')).toBe('MissingAuthenticationToken');
  });
});
