import { expect, test } from 'vitest';
import { messagingNodeFlags, parseMessagingSettings } from '../../../../src/messaging/settings.js';
import { serviceArgv } from '../../../../core/child-service.js';

const creds = [{ access_key_id: 'AKIDONE', secret_access_key: 'secret-one' }];

test('defaults', () => {
  const s = parseMessagingSettings({ credentials: creds });
  expect(s.engine).toEqual({
    nats: 'nats://127.0.0.1:4222',
    listen: '0.0.0.0:9324',
    replicas: 1,
    receiptKey: undefined,
    ownerLeaseMs: 10_000,
    ownerIdleMs: 30_000,
    bodyCacheBytes: 1_048_576,
    heapMb: 0,
    sns: { httpRetries: 3, httpMinDelayMs: 1000, httpMaxDelayMs: 20_000, httpTimeoutMs: 15_000, endpointAllow: [], endpointDeny: [] },
  });
  expect(s.wire.region).toBe('us-east-1');
});

test('keys are checked', () => {
  expect(parseMessagingSettings({ credentials: creds, receipt_key: 'ab'.repeat(16) }).engine.receiptKey?.length).toBe(16);
  expect(parseMessagingSettings({ credentials: creds, body_cache_bytes: 0 }).engine.bodyCacheBytes).toBe(0);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ replicas: 2 }, /messaging\.replicas/],
    [{ bogus: 1 }, /messaging\.bogus: unknown key/],
    [{ receipt_key: 'short' }, /receipt_key: must decode to at least 16 bytes/],
    [{ listen: 'nope' }, /listen/],
    [{ nats: 'http://x' }, /nats/],
    [{ owner_lease_seconds: 1 }, /owner_lease_seconds/],
    [{ owner_idle_seconds: -1 }, /owner_idle_seconds: must be an integer between 0 and 86400/],
    [{ owner_idle_seconds: 1.5 }, /owner_idle_seconds/],
    [{ body_cache_bytes: -1 }, /body_cache_bytes: must be an integer between 0 and/],
    [{ heap_mb: 32 }, /heap_mb: must be 0 \(node's default\) or an integer between 64 and 65536/],
    [{ heap_mb: 70_000 }, /heap_mb/],
    [{ sns: { http_min_delay_seconds: 5, http_max_delay_seconds: 2 } }, /http_max_delay_seconds/],
    [{ sns: { signing_key_file: '/k' } }, /signing_cert_file/],
    [{ sns: { wat: 1 } }, /sns\.wat/],
    [{ sns: { endpoint_allow: ['10.0.0.0/33'] } }, /sns\.endpoint_allow\[0\]: must be an IPv4 or IPv6 address or network/],
    [{ sns: { endpoint_allow: ['http://x'] } }, /sns\.endpoint_allow\[0\]/],
    [{ sns: { endpoint_deny: ['example.org'] } }, /sns\.endpoint_deny\[0\]: must be an IPv4 or IPv6 address or network/],
  ];
  for (const [over, msg] of bad) expect(() => parseMessagingSettings({ credentials: creds, ...over })).toThrow(msg);
});

test('SNS endpoint allow and deny lists', () => {
  const s = parseMessagingSettings({
    credentials: creds,
    sns: { endpoint_allow: ['127.0.0.0/8', '::1', 'hooks.example'], endpoint_deny: ['198.51.100.0/24'] },
  });
  expect(s.engine.sns.endpointAllow).toEqual(['127.0.0.0/8', '::1', 'hooks.example']);
  expect(s.engine.sns.endpointDeny).toEqual(['198.51.100.0/24']);
});

test('http_listen: a second, plain listener only when configured', () => {
  expect(parseMessagingSettings({ credentials: creds }).engine.httpListen).toBeUndefined();
  expect(parseMessagingSettings({ credentials: creds, http_listen: '127.0.0.1:9325' }).engine.httpListen).toBe('127.0.0.1:9325');
  expect(() => parseMessagingSettings({ credentials: creds, http_listen: 'nope' })).toThrow(/messaging\.http_listen/);
});

test('heap_mb: the API child runs with a small young generation and the old-space limit; 0 leaves node its default', () => {
  expect(parseMessagingSettings({ credentials: creds, heap_mb: 256 }).engine.heapMb).toBe(256);
  expect(messagingNodeFlags(128)).toEqual(['--max-semi-space-size=1', '--heap-growing-percent=20', '--max-old-space-size=128']);
  expect(messagingNodeFlags(0)).toEqual(['--max-semi-space-size=1', '--heap-growing-percent=20']);
  // Node flags go before the program, or node would hand them to mammatus as arguments.
  expect(serviceArgv(['/usr/bin/node', ['/usr/lib/mammatus/mammatus.mjs']], 'messaging', messagingNodeFlags(256))).toEqual([
    '/usr/bin/node',
    [
      '--max-semi-space-size=1',
      '--heap-growing-percent=20',
      '--max-old-space-size=256',
      '/usr/lib/mammatus/mammatus.mjs',
      'service',
      'run',
      'messaging',
    ],
  ]);
});
