/**
 * SNS http(s) endpoints on the JetStream engine (issue 16): loopback, link-local and private
 * addresses are refused at Subscribe when written as IP literals, and at every delivery when a host
 * name resolves to them; a refused delivery fails like an unreachable endpoint (retries, then the
 * subscription's dead-letter queue); `messaging.sns.endpoint_allow` lets them through.
 */
import * as Sns from '@aws-sdk/client-sns';
import * as Sqs from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { until } from '../../scripts/lib/wait.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from '../src/messaging/js-harness.js';
import { endpoint } from '../src/messaging/sns-endpoint.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

// No allow list: the defaults (the harness allows loopback for the other tests).
const STRICT = { sns: { endpoint_allow: [], http_retries: 1, http_min_delay_seconds: 0, http_max_delay_seconds: 1 } };

if (!natsServerAvailable()) console.warn('SNS endpoint tests skipped: nats-server is missing');
describe.skipIf(!natsServerAvailable())('SNS http endpoints', () => {
  test(
    'IP literals in refused ranges are refused at Subscribe; a name resolving to loopback at delivery',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const svc = await startService(cleanup, nats.url, STRICT);
      const sns = new Sns.SNSClient(sdkConfig(svc.url));
      const hook = await endpoint(cleanup, () => 200);
      const port = new URL(hook.url).port;
      const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'guarded' }));
      const refused: [string, RegExp][] = [
        [hook.url, /127\.0\.0\.1 is a loopback address/],
        ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/],
        [`http://[::1]:${port}/hook`, /::1 is a loopback address/],
        ['http://10.20.30.40/hook', /10\.20\.30\.40 is a private address/],
      ];
      for (const [Endpoint, why] of refused) {
        const e = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint })).catch((err: unknown) => err);
        expect(e).toMatchObject({ name: 'InvalidParameterException', $metadata: { httpStatusCode: 400 } });
        expect((e as Error).message).toMatch(why);
      }
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toEqual([]);

      // A host name is accepted at Subscribe (it resolves only at delivery) and refused there:
      // the confirmation never reaches the endpoint, through the first attempt and the retry.
      const sub = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: `http://localhost:${port}/hook` }));
      expect(sub.SubscriptionArn).toBe('pending confirmation');
      await new Promise((r) => setTimeout(r, 3000));
      expect(hook.hits).toEqual([]);
    },
  );

  test(
    'with loopback allowed it is delivered; later refused, a notification goes to the dead-letter queue',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const hook = await endpoint(cleanup, () => 200);
      const url = `http://localhost:${new URL(hook.url).port}/hook`;
      // First with the allow list (the harness default): subscribe and confirm through the name.
      const open = await startService(cleanup, nats.url, { sns: { endpoint_allow: ['127.0.0.0/8', '::1', 'localhost'] } });
      let sns = new Sns.SNSClient(sdkConfig(open.url));
      let sqs = new Sqs.SQSClient(sdkConfig(open.url));
      const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'later-refused' }));
      const { QueueUrl: dlqUrl = '' } = await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'refused-dlq' }));
      const RedrivePolicy = JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:refused-dlq' });
      await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: url, Attributes: { RedrivePolicy } }));
      await until('the confirmation', async () => (hook.hits.length > 0 ? true : undefined), 15_000);
      expect(hook.hits[0]?.headers.host).toBe(new URL(url).host);
      await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);
      await open.stop();

      // Then without it: the delivery is refused, retried once, and dead-lettered.
      const strict = await startService(cleanup, nats.url, STRICT);
      sns = new Sns.SNSClient(sdkConfig(strict.url));
      sqs = new Sqs.SQSClient(sdkConfig(strict.url));
      const { MessageId } = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'not for loopback' }));
      const dead = await until(
        'the dead letter',
        async () => (await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: dlqUrl, WaitTimeSeconds: 1 }))).Messages?.[0],
        20_000,
      );
      expect(JSON.parse(dead.Body ?? '')).toMatchObject({ Type: 'Notification', MessageId, Message: 'not for loopback' });
      expect(hook.hits.filter((h) => h.headers['x-amz-sns-message-type'] === 'Notification')).toEqual([]);
    },
  );
});
