/**
 * SQS configuration rules on the JetStream engine with `@aws-sdk/client-sqs`: a dead-letter queue
 * must be in the same account and region as its sources and let them name it (RedriveAllowPolicy,
 * checked as AWS documents its values); GetQueueUrl for another account's queue; tag limits.
 * Sources: SQS Developer Guide (sqs-dead-letter-queues.html, sqs-queue-tags.html) and the
 * SetQueueAttributes / GetQueueUrl API references.
 */
import * as S from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from '../src/messaging/js-harness.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());
const arn = (name: string, account = '000000000000', region = 'us-east-1') => `arn:aws:sqs:${region}:${account}:${name}`;
const redrive = (target: string) => JSON.stringify({ deadLetterTargetArn: target, maxReceiveCount: 3 });

describe.skipIf(!natsServerAvailable())('SQS rules', () => {
  let sqs: S.SQSClient;
  const refusal = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e, 'expected a refusal').toBeDefined();
    return `${(e as Error).name}: ${(e as Error).message}`;
  };
  const create = async (QueueName: string, Attributes?: Record<string, string>) =>
    (await sqs.send(new S.CreateQueueCommand({ QueueName, Attributes }))).QueueUrl ?? '';

  beforeAll(async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    sqs = new S.SQSClient(sdkConfig((await startService(cleanup, nats.url)).url));
  });

  test('a dead-letter queue of another account or region is no queue of ours', async () => {
    await create('dlq-here');
    const src = await create('dlq-src');
    for (const target of [arn('dlq-here', '111111111111'), arn('dlq-here', '000000000000', 'eu-west-1')]) {
      expect(
        await refusal(sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: src, Attributes: { RedrivePolicy: redrive(target) } }))),
      ).toBe(
        `InvalidParameterValue: Value ${redrive(target)} for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.`,
      );
    }
    await sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: src, Attributes: { RedrivePolicy: redrive(arn('dlq-here')) } }));
  });

  test('RedriveAllowPolicy: denyAll and byQueue keep other queues out, allowAll and a listed queue get in; values are checked', async () => {
    await create('deny-dlq', { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'denyAll' }) });
    await create('by-dlq', { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'byQueue', sourceQueueArns: [arn('listed-src')] }) });
    await create('all-dlq', { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'allowAll' }) });
    expect(await refusal(create('deny-src', { RedrivePolicy: redrive(arn('deny-dlq')) }))).toMatch(
      /Reason: The RedriveAllowPolicy of .*deny-dlq does not allow this queue as a source queue\.$/,
    );
    const other = await create('other-src');
    expect(
      await refusal(sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: other, Attributes: { RedrivePolicy: redrive(arn('by-dlq')) } }))),
    ).toMatch(/by-dlq does not allow/);
    await create('listed-src', { RedrivePolicy: redrive(arn('by-dlq')) });
    await sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: other, Attributes: { RedrivePolicy: redrive(arn('all-dlq')) } }));

    const q = await create('allow-values');
    const bad = {
      garbage: 'Redrive allow policy is not a valid JSON map.',
      '{"redrivePermission":"sometimes"}': 'redrivePermission must be allowAll, denyAll or byQueue.',
      [JSON.stringify({ redrivePermission: 'denyAll', sourceQueueArns: [arn('x')] })]:
        'sourceQueueArns is allowed with redrivePermission byQueue only.',
      '{"redrivePermission":"byQueue"}': 'byQueue needs sourceQueueArns: 1 to 10 SQS queue ARNs.',
    };
    for (const [value, reason] of Object.entries(bad)) {
      expect(await refusal(sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: q, Attributes: { RedriveAllowPolicy: value } })))).toBe(
        `InvalidAttributeValue: Invalid value for the parameter RedriveAllowPolicy. Reason: ${reason}`,
      );
    }
    // An empty value removes it.
    await sqs.send(
      new S.SetQueueAttributesCommand({
        QueueUrl: q,
        Attributes: { RedriveAllowPolicy: JSON.stringify({ redrivePermission: 'denyAll' }) },
      }),
    );
    await sqs.send(new S.SetQueueAttributesCommand({ QueueUrl: q, Attributes: { RedriveAllowPolicy: '' } }));
    expect(
      (await sqs.send(new S.GetQueueAttributesCommand({ QueueUrl: q, AttributeNames: ['All'] }))).Attributes?.RedriveAllowPolicy,
    ).toBeUndefined();
  });

  test('GetQueueUrl with another owner account; tag keys up to 128 characters, values up to 256', async () => {
    const url = await create('owned');
    expect((await sqs.send(new S.GetQueueUrlCommand({ QueueName: 'owned', QueueOwnerAWSAccountId: '000000000000' }))).QueueUrl).toBe(url);
    expect(await refusal(sqs.send(new S.GetQueueUrlCommand({ QueueName: 'owned', QueueOwnerAWSAccountId: '111111111111' })))).toMatch(
      /^QueueDoesNotExist/,
    );
    await sqs.send(new S.TagQueueCommand({ QueueUrl: url, Tags: { ['k'.repeat(128)]: 'v'.repeat(256) } }));
    expect(await refusal(sqs.send(new S.TagQueueCommand({ QueueUrl: url, Tags: { ['k'.repeat(129)]: 'v' } })))).toMatch(
      /^InvalidParameterValue: Tag keys must be between 1 and 128 characters/,
    );
    expect(await refusal(sqs.send(new S.TagQueueCommand({ QueueUrl: url, Tags: { k: 'v'.repeat(257) } })))).toMatch(
      /^InvalidParameterValue: Tag values must be at most 256 characters/,
    );
    expect(
      await refusal(
        create('tagged', undefined).then(() =>
          sqs.send(new S.CreateQueueCommand({ QueueName: 'tagged2', tags: { ['k'.repeat(129)]: 'v' } })),
        ),
      ),
    ).toMatch(/Tag keys/);
  });
});
