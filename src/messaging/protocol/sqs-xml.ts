/**
 * SQS Query responses: `<XResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><XResult>…
 * </XResult><ResponseMetadata><RequestId>…</RequestId></ResponseMetadata></XResponse>`, with
 * SQS's flattened containers (repeated `<QueueUrl>`, `<Message>`, `<Attribute><Name/><Value/></Attribute>`).
 * Actions without output answer with `ResponseMetadata` only.
 */
import type { MessageAttributes, StringMap } from '../sqs-engine.js';
import type { BatchResultErrorEntry } from '../errors.js';
import { el, opt, type XmlNode } from './xml.js';
import type { SendOutput, SqsAction, SqsOutputs, WireMessage } from './sqs-types.js';

/** The SQS Query namespace. */
export const SQS_XMLNS = 'http://queue.amazonaws.com/doc/2012-11-05/';

/** Renders the children of `<XResult>`, or undefined for actions without a result element. */
type ResultRenderer<A extends SqsAction> = (output: SqsOutputs[A]) => XmlNode[] | undefined;

const none = (): undefined => undefined;

function nameValues(element: string, map: StringMap, key = 'Name', value = 'Value'): XmlNode[] {
  return Object.entries(map).map(([k, v]) => el(element, [el(key, k), el(value, v)]));
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function messageAttributes(attributes: MessageAttributes): XmlNode[] {
  return Object.entries(attributes).map(([name, v]) =>
    el('MessageAttribute', [
      el('Name', name),
      el('Value', [
        ...opt('StringValue', v.StringValue),
        ...opt('BinaryValue', v.BinaryValue && base64(v.BinaryValue)),
        ...(v.StringListValues ?? []).map((s) => el('StringListValue', s)),
        ...(v.BinaryListValues ?? []).map((b) => el('BinaryListValue', base64(b))),
        el('DataType', v.DataType),
      ]),
    ]),
  );
}

function sendFields(o: SendOutput): XmlNode[] {
  return [
    el('MessageId', o.MessageId),
    el('MD5OfMessageBody', o.MD5OfMessageBody),
    ...opt('MD5OfMessageAttributes', o.MD5OfMessageAttributes),
    ...opt('MD5OfMessageSystemAttributes', o.MD5OfMessageSystemAttributes),
    ...opt('SequenceNumber', o.SequenceNumber),
  ];
}

function failed(entries: readonly BatchResultErrorEntry[]): XmlNode[] {
  return entries.map((e) =>
    el('BatchResultErrorEntry', [
      el('Id', e.Id),
      el('SenderFault', String(e.SenderFault)),
      el('Code', e.Code),
      ...opt('Message', e.Message),
    ]),
  );
}

function message(m: WireMessage): XmlNode {
  return el('Message', [
    el('MessageId', m.MessageId),
    el('ReceiptHandle', m.ReceiptHandle),
    el('MD5OfBody', m.MD5OfBody),
    el('Body', m.Body),
    ...nameValues('Attribute', m.Attributes),
    ...opt('MD5OfMessageAttributes', m.MD5OfMessageAttributes),
    ...messageAttributes(m.MessageAttributes),
  ]);
}

/** The result renderer of every action. */
export const sqsXmlResults: { readonly [A in SqsAction]: ResultRenderer<A> } = {
  CreateQueue: (o) => [el('QueueUrl', o.QueueUrl)],
  GetQueueUrl: (o) => [el('QueueUrl', o.QueueUrl)],
  ListQueues: (o) => [...o.QueueUrls.map((u) => el('QueueUrl', u)), ...opt('NextToken', o.NextToken)],
  DeleteQueue: none,
  GetQueueAttributes: (o) => nameValues('Attribute', o.Attributes),
  SetQueueAttributes: none,
  SendMessage: (o) => sendFields(o),
  SendMessageBatch: (o) => [
    ...o.Successful.map((s) => el('SendMessageBatchResultEntry', [el('Id', s.Id), ...sendFields(s)])),
    ...failed(o.Failed),
  ],
  ReceiveMessage: (o) => o.Messages.map(message),
  DeleteMessage: none,
  DeleteMessageBatch: (o) => [...o.Successful.map((s) => el('DeleteMessageBatchResultEntry', [el('Id', s.Id)])), ...failed(o.Failed)],
  ChangeMessageVisibility: none,
  ChangeMessageVisibilityBatch: (o) => [
    ...o.Successful.map((s) => el('ChangeMessageVisibilityBatchResultEntry', [el('Id', s.Id)])),
    ...failed(o.Failed),
  ],
  PurgeQueue: none,
  ListDeadLetterSourceQueues: (o) => [...o.queueUrls.map((u) => el('QueueUrl', u)), ...opt('NextToken', o.NextToken)],
  TagQueue: none,
  UntagQueue: none,
  ListQueueTags: (o) => nameValues('Tag', o.Tags, 'Key', 'Value'),
  AddPermission: none,
  RemovePermission: none,
  StartMessageMoveTask: (o) => [el('TaskHandle', o.TaskHandle)],
  // The list is flattened: one <ListMessageMoveTasksResultEntry> per task.
  ListMessageMoveTasks: (o) =>
    o.Results.map((r) =>
      el('ListMessageMoveTasksResultEntry', [
        ...opt('TaskHandle', r.TaskHandle),
        el('Status', r.Status),
        el('SourceArn', r.SourceArn),
        ...opt('DestinationArn', r.DestinationArn),
        ...opt('MaxNumberOfMessagesPerSecond', r.MaxNumberOfMessagesPerSecond),
        el('ApproximateNumberOfMessagesMoved', String(r.ApproximateNumberOfMessagesMoved)),
        el('ApproximateNumberOfMessagesToMove', String(r.ApproximateNumberOfMessagesToMove)),
        ...opt('FailureReason', r.FailureReason),
        el('StartedTimestamp', String(r.StartedTimestamp)),
      ]),
    ),
  CancelMessageMoveTask: (o) => [el('ApproximateNumberOfMessagesMoved', String(o.ApproximateNumberOfMessagesMoved))],
};

/** The whole success document of `action`. */
export function sqsXmlResponse<A extends SqsAction>(action: A, output: SqsOutputs[A], requestId: string): XmlNode {
  const result = sqsXmlResults[action](output);
  return {
    name: `${action}Response`,
    xmlns: SQS_XMLNS,
    children: [...(result ? [el(`${action}Result`, result)] : []), el('ResponseMetadata', [el('RequestId', requestId)])],
  };
}
