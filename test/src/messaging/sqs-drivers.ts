/**
 * One small SQS interface over three real clients, so the same scenarios run through each:
 * current `@aws-sdk/client-sqs` (JSON 1.0), `client-sqs-query` (3.445.0, Query) and Debian's
 * `/usr/bin/aws` 2.9.19 (Query, botocore). Errors surface with the Query `Code` in `.Code`.
 */
import * as SqsJson from '@aws-sdk/client-sqs';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as SqsQuery from 'client-sqs-query';
import { CREDENTIALS } from './helpers.js';
import { sdkConfig } from './js-harness.js';

/** A received message, as every driver reports it. */
export interface Msg {
  readonly MessageId: string;
  readonly Body: string;
  readonly ReceiptHandle: string;
  readonly Attributes: Record<string, string>;
  readonly MessageAttributes: Record<string, { DataType?: string; StringValue?: string }>;
}

/** Options of a send. */
export interface SendOptions {
  readonly group?: string;
  readonly dedup?: string;
  readonly delay?: number;
  readonly attributes?: Record<string, { DataType: string; StringValue: string }>;
}

/** Options of a receive. */
export interface ReceiveOptions {
  readonly max?: number;
  readonly wait?: number;
  readonly visibility?: number;
  readonly attemptId?: string;
}

/** Batch results, reduced to what the scenarios check. */
export interface BatchOut {
  readonly Successful: { Id: string; MessageId?: string }[];
  readonly Failed: { Id: string; Code: string }[];
}

/** One ListMessageMoveTasks result, as every driver reports it. */
export interface MoveTaskOut {
  readonly TaskHandle?: string;
  readonly Status?: string;
  readonly SourceArn?: string;
  readonly DestinationArn?: string;
  readonly MaxNumberOfMessagesPerSecond?: number;
  readonly ApproximateNumberOfMessagesMoved?: number;
  readonly ApproximateNumberOfMessagesToMove?: number;
  readonly FailureReason?: string;
  readonly StartedTimestamp?: number;
}

/** What the scenarios drive. */
export interface SqsDriver {
  readonly name: string;
  createQueue(name: string, attributes?: Record<string, string>): Promise<string>;
  send(url: string, body: string, o?: SendOptions): Promise<{ MessageId: string; SequenceNumber?: string }>;
  sendBatch(
    url: string,
    entries: { Id: string; MessageBody: string; MessageGroupId?: string; MessageDeduplicationId?: string }[],
  ): Promise<BatchOut>;
  receive(url: string, o?: ReceiveOptions): Promise<Msg[]>;
  delete(url: string, handle: string): Promise<void>;
  deleteBatch(url: string, entries: { Id: string; ReceiptHandle: string }[]): Promise<BatchOut>;
  changeVisibility(url: string, handle: string, seconds: number): Promise<void>;
  purge(url: string): Promise<void>;
  attributes(url: string, names?: string[]): Promise<Record<string, string>>;
  setAttributes(url: string, attributes: Record<string, string>): Promise<void>;
  deadLetterSources(url: string): Promise<string[]>;
  addPermission(url: string, label: string, accounts: string[], actions: string[]): Promise<void>;
  removePermission(url: string, label: string): Promise<void>;
  startMoveTask(sourceArn: string, o?: { destinationArn?: string; rate?: number }): Promise<string>;
  listMoveTasks(sourceArn: string, max?: number): Promise<MoveTaskOut[]>;
  cancelMoveTask(handle: string): Promise<number | undefined>;
}

/**
 * The error code of a driver's error without the `AWS.SimpleQueueService.` prefix: 3.445 names
 * modelled errors by shape (`PurgeQueueInProgress`), the others report the Query code.
 */
export function errorCode(err: unknown): string {
  const e = err as { Code?: string; name?: string };
  return (e.Code ?? e.name ?? String(err)).replace(/^AWS\.SimpleQueueService\./, '');
}

type AnySdk = typeof SqsJson | typeof SqsQuery;

function sdkDriver(name: string, sdk: AnySdk, endpoint: string): SqsDriver {
  const c = new sdk.SQSClient(sdkConfig(endpoint)) as SqsJson.SQSClient;
  const S = sdk as typeof SqsJson;
  const msg = (m: SqsJson.Message): Msg => ({
    MessageId: m.MessageId ?? '',
    Body: m.Body ?? '',
    ReceiptHandle: m.ReceiptHandle ?? '',
    Attributes: m.Attributes ?? {},
    MessageAttributes: m.MessageAttributes ?? {},
  });
  const batch = (r: { Successful?: { Id?: string; MessageId?: string }[]; Failed?: { Id?: string; Code?: string }[] }): BatchOut => ({
    Successful: (r.Successful ?? []).map((s) => ({ Id: s.Id ?? '', ...(s.MessageId ? { MessageId: s.MessageId } : {}) })),
    Failed: (r.Failed ?? []).map((f) => ({ Id: f.Id ?? '', Code: f.Code ?? '' })),
  });
  return {
    name,
    createQueue: async (QueueName, Attributes) => (await c.send(new S.CreateQueueCommand({ QueueName, Attributes }))).QueueUrl ?? '',
    async send(QueueUrl, MessageBody, o = {}) {
      const r = await c.send(
        new S.SendMessageCommand({
          QueueUrl,
          MessageBody,
          MessageGroupId: o.group,
          MessageDeduplicationId: o.dedup,
          DelaySeconds: o.delay,
          MessageAttributes: o.attributes,
        }),
      );
      return { MessageId: r.MessageId ?? '', ...(r.SequenceNumber ? { SequenceNumber: r.SequenceNumber } : {}) };
    },
    sendBatch: async (QueueUrl, Entries) => batch(await c.send(new S.SendMessageBatchCommand({ QueueUrl, Entries }))),
    async receive(QueueUrl, o = {}) {
      const input = {
        QueueUrl,
        MaxNumberOfMessages: o.max,
        WaitTimeSeconds: o.wait,
        VisibilityTimeout: o.visibility,
        ReceiveRequestAttemptId: o.attemptId,
        AttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      };
      return ((await c.send(new S.ReceiveMessageCommand(input as SqsJson.ReceiveMessageCommandInput))).Messages ?? []).map(msg);
    },
    delete: async (QueueUrl, ReceiptHandle) => void (await c.send(new S.DeleteMessageCommand({ QueueUrl, ReceiptHandle }))),
    deleteBatch: async (QueueUrl, Entries) => batch(await c.send(new S.DeleteMessageBatchCommand({ QueueUrl, Entries }))),
    changeVisibility: async (QueueUrl, ReceiptHandle, VisibilityTimeout) =>
      void (await c.send(new S.ChangeMessageVisibilityCommand({ QueueUrl, ReceiptHandle, VisibilityTimeout }))),
    purge: async (QueueUrl) => void (await c.send(new S.PurgeQueueCommand({ QueueUrl }))),
    attributes: async (QueueUrl, names = ['All']) =>
      (await c.send(new S.GetQueueAttributesCommand({ QueueUrl, AttributeNames: names as SqsJson.QueueAttributeName[] }))).Attributes ?? {},
    setAttributes: async (QueueUrl, Attributes) => void (await c.send(new S.SetQueueAttributesCommand({ QueueUrl, Attributes }))),
    deadLetterSources: async (QueueUrl) => (await c.send(new S.ListDeadLetterSourceQueuesCommand({ QueueUrl }))).queueUrls ?? [],
    addPermission: async (QueueUrl, Label, AWSAccountIds, Actions) =>
      void (await c.send(new S.AddPermissionCommand({ QueueUrl, Label, AWSAccountIds, Actions }))),
    removePermission: async (QueueUrl, Label) => void (await c.send(new S.RemovePermissionCommand({ QueueUrl, Label }))),
    startMoveTask: async (SourceArn, o = {}) =>
      (
        await c.send(
          new S.StartMessageMoveTaskCommand({ SourceArn, DestinationArn: o.destinationArn, MaxNumberOfMessagesPerSecond: o.rate }),
        )
      ).TaskHandle ?? '',
    listMoveTasks: async (SourceArn, MaxResults) =>
      (await c.send(new S.ListMessageMoveTasksCommand({ SourceArn, MaxResults }))).Results ?? [],
    cancelMoveTask: async (TaskHandle) =>
      (await c.send(new S.CancelMessageMoveTaskCommand({ TaskHandle }))).ApproximateNumberOfMessagesMoved,
  };
}

const DEBIAN_SQS_MODEL = '/usr/lib/python3/dist-packages/awscli/botocore/data/sqs/2012-11-05/service-2.json';

/**
 * awscli 2.9.19 predates the move-task actions: give it a model with them (its own SQS model plus
 * the three operations from a later botocore Query model, `fixtures/sqs-move-task-model.json`) in
 * `~/.aws/models`, which botocore reads before its bundled data.
 */
function addMoveTaskModel(home: string): void {
  if (!existsSync(DEBIAN_SQS_MODEL)) return;
  const model = JSON.parse(readFileSync(DEBIAN_SQS_MODEL, 'utf8')) as { operations: object; shapes: object };
  const extra = JSON.parse(readFileSync(new URL('./fixtures/sqs-move-task-model.json', import.meta.url), 'utf8')) as {
    operations: object;
    shapes: object;
  };
  const dir = path.join(home, '.aws', 'models', 'sqs', '2012-11-05');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'service-2.json'),
    JSON.stringify({ ...model, operations: { ...model.operations, ...extra.operations }, shapes: { ...model.shapes, ...extra.shapes } }),
  );
}

const run = promisify(execFile);

function cliDriver(endpoint: string, home: string): SqsDriver {
  addMoveTaskModel(home);
  let files = 0;
  const aws = async (args: string[]): Promise<Record<string, unknown>> => {
    try {
      const { stdout } = await run('/usr/bin/aws', ['--no-cli-pager', '--output', 'json', '--endpoint-url', endpoint, 'sqs', ...args], {
        env: {
          PATH: '/usr/bin:/bin',
          HOME: home,
          AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_MAX_ATTEMPTS: '1',
        },
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : {};
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '');
      const code = /An error occurred \(([^)]+)\)/.exec(stderr)?.[1];
      throw Object.assign(new Error(stderr || String(err)), { Code: code ?? 'CliFailed' });
    }
  };
  // Long bodies go through a file: one argv string is limited to 128 KiB on Linux.
  const bodyArg = (body: string) => {
    if (body.length < 64 * 1024) return body;
    const file = path.join(home, `body-${(files += 1)}.txt`);
    writeFileSync(file, body);
    return `file://${file}`;
  };
  const json = (v: unknown) => JSON.stringify(v);
  const batch = (r: Record<string, unknown>): BatchOut => ({
    Successful: ((r.Successful ?? []) as { Id: string; MessageId?: string }[]).map((s) => ({
      Id: s.Id,
      ...(s.MessageId ? { MessageId: s.MessageId } : {}),
    })),
    Failed: ((r.Failed ?? []) as { Id: string; Code: string }[]).map((f) => ({ Id: f.Id, Code: f.Code })),
  });
  return {
    name: 'awscli 2.9.19 (Query)',
    createQueue: async (name, attributes) =>
      (await aws(['create-queue', '--queue-name', name, ...(attributes ? ['--attributes', json(attributes)] : [])])).QueueUrl as string,
    async send(url, body, o = {}) {
      const args = ['send-message', '--queue-url', url, '--message-body', bodyArg(body)];
      if (o.group) args.push('--message-group-id', o.group);
      if (o.dedup) args.push('--message-deduplication-id', o.dedup);
      if (o.delay !== undefined) args.push('--delay-seconds', String(o.delay));
      if (o.attributes) args.push('--message-attributes', json(o.attributes));
      const r = await aws(args);
      return { MessageId: r.MessageId as string, ...(r.SequenceNumber ? { SequenceNumber: r.SequenceNumber as string } : {}) };
    },
    sendBatch: async (url, entries) => batch(await aws(['send-message-batch', '--queue-url', url, '--entries', json(entries)])),
    async receive(url, o = {}) {
      const args = ['receive-message', '--queue-url', url, '--attribute-names', 'All', '--message-attribute-names', 'All'];
      if (o.max !== undefined) args.push('--max-number-of-messages', String(o.max));
      if (o.wait !== undefined) args.push('--wait-time-seconds', String(o.wait));
      if (o.visibility !== undefined) args.push('--visibility-timeout', String(o.visibility));
      if (o.attemptId) args.push('--receive-request-attempt-id', o.attemptId);
      return ((await aws(args)).Messages ?? []) as Msg[];
    },
    delete: async (url, handle) => void (await aws(['delete-message', '--queue-url', url, '--receipt-handle', handle])),
    deleteBatch: async (url, entries) => batch(await aws(['delete-message-batch', '--queue-url', url, '--entries', json(entries)])),
    changeVisibility: async (url, handle, seconds) =>
      void (await aws([
        'change-message-visibility',
        '--queue-url',
        url,
        '--receipt-handle',
        handle,
        '--visibility-timeout',
        String(seconds),
      ])),
    purge: async (url) => void (await aws(['purge-queue', '--queue-url', url])),
    attributes: async (url, names = ['All']) =>
      ((await aws(['get-queue-attributes', '--queue-url', url, '--attribute-names', ...names])).Attributes ?? {}) as Record<string, string>,
    setAttributes: async (url, attributes) =>
      void (await aws(['set-queue-attributes', '--queue-url', url, '--attributes', json(attributes)])),
    deadLetterSources: async (url) => ((await aws(['list-dead-letter-source-queues', '--queue-url', url])).queueUrls ?? []) as string[],
    addPermission: async (url, label, accounts, actions) =>
      void (await aws(['add-permission', '--queue-url', url, '--label', label, '--aws-account-ids', ...accounts, '--actions', ...actions])),
    removePermission: async (url, label) => void (await aws(['remove-permission', '--queue-url', url, '--label', label])),
    async startMoveTask(sourceArn, o = {}) {
      const args = ['start-message-move-task', '--source-arn', sourceArn];
      if (o.destinationArn) args.push('--destination-arn', o.destinationArn);
      if (o.rate !== undefined) args.push('--max-number-of-messages-per-second', String(o.rate));
      return (await aws(args)).TaskHandle as string;
    },
    listMoveTasks: async (sourceArn, max) =>
      ((await aws(['list-message-move-tasks', '--source-arn', sourceArn, ...(max !== undefined ? ['--max-results', String(max)] : [])]))
        .Results ?? []) as MoveTaskOut[],
    cancelMoveTask: async (handle) =>
      (await aws(['cancel-message-move-task', '--task-handle', handle])).ApproximateNumberOfMessagesMoved as number | undefined,
  };
}

/** The three drivers against `endpoint`; `home` is an empty HOME for the CLI. */
export function sqsDrivers(endpoint: string, home: string, withCli: boolean): SqsDriver[] {
  return [
    sdkDriver('@aws-sdk/client-sqs (JSON 1.0)', SqsJson, endpoint),
    sdkDriver('client-sqs-query 3.445 (Query)', SqsQuery, endpoint),
    ...(withCli ? [cliDriver(endpoint, home)] : []),
  ];
}
