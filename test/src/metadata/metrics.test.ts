/**
 * The metadata service's metrics (src/metadata/metrics.ts): the kind of each request from a
 * bounded set, requests counted by kind and HTTP status through the real server, the latency
 * histogram, and the registry's size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exposition } from '../../../core/metrics.js';
import { exportRegistrySize, metadataKind } from '../../../src/metadata/metrics.js';
import type { MetadataApp } from '../../../src/metadata/server.js';
import { startEmptyMetadataApp } from './empty-app.js';

describe('metadataKind', () => {
  it.each([
    ['GET', '/latest/meta-data/instance-id', 'meta-data'],
    ['GET', '//latest/meta-data/', 'meta-data'],
    ['GET', '/2009-04-04/user-data', 'user-data'],
    ['GET', '/openstack/latest/user_data', 'user-data'],
    ['GET', '/nocloud/vendor-data', 'vendor-data'],
    ['GET', '/openstack/2018-08-27/vendor_data.json', 'vendor-data'],
    ['GET', '/nocloud/meta-data', 'nocloud'],
    ['GET', '/openstack/latest/meta_data.json', 'nocloud'],
    ['GET', '/latest/dynamic/instance-identity/document', 'identity'],
    ['PUT', '/latest/api/token', 'token'],
    ['GET', '/mammatus/ipxe', 'host'],
    ['POST', '/mammatus/join', 'host'],
    ['GET', '/healthz', 'other'],
    ['GET', '/<script>/attacker-chosen', 'other'],
  ])('%s %s is %s', (method, url, kind) => {
    expect(metadataKind(method, url)).toBe(kind);
  });
});

/** The value of `series` (name and labels as exposed), 0 when absent. */
function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('metadata service: requests counted', () => {
  let app: MetadataApp;
  let base: string;

  beforeAll(async () => {
    let port: number;
    ({ app, port } = await startEmptyMetadataApp());
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => app?.close());

  it('by kind and status, with one latency observation per answer', async () => {
    const before = await exposition();
    const unknownCaller = 'mammatus_metadata_requests_total{kind="meta-data",outcome="404"}';
    const health = 'mammatus_metadata_requests_total{kind="other",outcome="200"}';
    const token = 'mammatus_metadata_requests_total{kind="token",outcome="404"}';
    for (let i = 0; i < 3; i += 1) expect((await fetch(`${base}/latest/meta-data/instance-id`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const put = await fetch(`${base}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
    expect(put.status).toBe(404);
    expect((await fetch(`${base}/evil-${Date.now()}`)).status).toBe(404);
    const after = await exposition();
    expect(value(after, unknownCaller) - value(before, unknownCaller)).toBe(3);
    expect(value(after, health) - value(before, health)).toBe(1);
    expect(value(after, token) - value(before, token)).toBe(1);
    expect(value(after, 'mammatus_metadata_request_seconds_count') - value(before, 'mammatus_metadata_request_seconds_count')).toBe(6);
    expect(after).not.toContain('evil-');
  });

  it('exports the registry size, keeping the last one while the view is unavailable', async () => {
    let size: number | undefined;
    const stop = exportRegistrySize(() => size);
    try {
      size = 42;
      expect(value(await exposition(), 'mammatus_registry_instances')).toBe(42);
      // The view unavailable (NATS unreachable): the last size stays.
      size = undefined;
      expect(value(await exposition(), 'mammatus_registry_instances')).toBe(42);
      size = 40;
      expect(value(await exposition(), 'mammatus_registry_instances')).toBe(40);
    } finally {
      stop();
    }
  });
});
