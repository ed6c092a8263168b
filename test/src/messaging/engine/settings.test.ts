import { expect, test } from 'vitest';
import { parseMessagingSettings } from '../../../../src/messaging/settings.js';

const creds = [{ access_key_id: 'AKIDONE', secret_access_key: 'secret-one' }];

test('defaults', () => {
  const s = parseMessagingSettings({ credentials: creds });
  expect(s.engine).toEqual({
    nats: 'nats://127.0.0.1:4222',
    listen: '0.0.0.0:9324',
    replicas: 1,
    receiptKey: undefined,
    ownerLeaseMs: 10_000,
    sns: { httpRetries: 3, httpMinDelayMs: 1000, httpMaxDelayMs: 20_000, httpTimeoutMs: 15_000 },
  });
  expect(s.wire.region).toBe('us-east-1');
});

test('keys are checked', () => {
  expect(parseMessagingSettings({ credentials: creds, receipt_key: 'ab'.repeat(16) }).engine.receiptKey?.length).toBe(16);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ replicas: 2 }, /messaging\.replicas/],
    [{ bogus: 1 }, /messaging\.bogus: unknown key/],
    [{ receipt_key: 'short' }, /receipt_key: must decode to at least 16 bytes/],
    [{ listen: 'nope' }, /listen/],
    [{ nats: 'http://x' }, /nats/],
    [{ owner_lease_seconds: 1 }, /owner_lease_seconds/],
    [{ sns: { http_min_delay_seconds: 5, http_max_delay_seconds: 2 } }, /http_max_delay_seconds/],
    [{ sns: { signing_key_file: '/k' } }, /signing_cert_file/],
    [{ sns: { wat: 1 } }, /sns\.wat/],
  ];
  for (const [over, msg] of bad) expect(() => parseMessagingSettings({ credentials: creds, ...over })).toThrow(msg);
});
