/**
 * Opening the messaging store over what an earlier version created: subjects a newer version
 * needs are added to the existing streams, and its new consumers are created (real nats-server).
 */
import { AckPolicy, RetentionPolicy, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { SNS_FANOUT_FIFO_CONSUMER, SNS_STREAM, openMessagingStore } from '../../src/messaging/engine/layout.js';
import { connectNats } from '../../core/nats.js';
import { Cleanup, startNats, tempDir } from '../src/messaging/js-harness.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

describe.skipIf(!natsServerAvailable())('messaging store layout', () => {
  test('an SNS stream of an earlier version gains the FIFO subject and consumer; messages it held stay', { timeout: 30_000 }, async () => {
    const server = await startNats(cleanup, tempDir(cleanup));
    const nc = await connectNats(server.url, { name: 'layout-test', credentials: server.credentials });
    cleanup.add(() => nc.close());
    const jsm = await jetstreamManager(nc);
    // What the version before FIFO fan-out created.
    await jsm.streams.add({ name: SNS_STREAM, subjects: ['mammatus.sns.pub', 'mammatus.sns.http'], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add(SNS_STREAM, { durable_name: 'fanout', filter_subject: 'mammatus.sns.pub', ack_policy: AckPolicy.Explicit });
    await nc.request('mammatus.sns.pub', new TextEncoder().encode('pending'));

    await openMessagingStore(nc, jsm, { replicas: 1, leaseMs: 10_000, snsAckWaitMs: 30_000 });
    const info = await jsm.streams.info(SNS_STREAM);
    expect(info.config.subjects).toEqual(['mammatus.sns.pub', 'mammatus.sns.http', 'mammatus.sns.fifo']);
    expect(info.state.messages).toBe(1);
    const fifo = await jsm.consumers.info(SNS_STREAM, SNS_FANOUT_FIFO_CONSUMER);
    expect(fifo.config).toMatchObject({ filter_subject: 'mammatus.sns.fifo', max_ack_pending: 1 });
    // A second open (another controller) changes nothing.
    await openMessagingStore(nc, jsm, { replicas: 1, leaseMs: 10_000, snsAckWaitMs: 30_000 });
    expect((await jsm.streams.info(SNS_STREAM)).config.subjects).toHaveLength(3);
  });
});
