/**
 * A request the metadata service refuses for its size must not hold the connection. Found by the
 * metadata fuzzer (issue #16): the 413 answer said `Connection: keep-alive` and the unread body was
 * left in the socket, so the connection stayed open, paused, until node's request timeout — a
 * tenant could hold sockets on the service at no cost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetadataApp } from '../../../src/metadata/server.js';
import { startEmptyMetadataApp } from './empty-app.js';
import { exchange } from '../../helpers/raw-exchange.js';

describe('metadata service: a body too large', () => {
  let app: MetadataApp;
  let port: number;

  beforeAll(async () => {
    ({ app, port } = await startEmptyMetadataApp());
  });

  afterAll(() => app?.close());

  it('is answered 413 and the connection closed, without reading the body', async () => {
    const body = Buffer.alloc(256 * 1024, 0x61);
    const started = Date.now();
    const head = `PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: ${body.length}\r\n\r\n`;
    const { text, closed } = await exchange(port, Buffer.concat([Buffer.from(head), body]));
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
