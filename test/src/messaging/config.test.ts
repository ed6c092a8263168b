import { expect, test } from 'vitest';
import { MESSAGING_DEFAULTS, parseMessagingConfig } from '../../../src/messaging/config.js';
import { SettingsError } from '../../../core/validation.js';

const creds = [{ access_key_id: 'AKIDONE', secret_access_key: 'secret-one' }];

test('defaults', () => {
  expect(parseMessagingConfig({ credentials: creds })).toEqual({
    credentials: [{ accessKeyId: 'AKIDONE', secretAccessKey: 'secret-one' }],
    region: 'us-east-1',
    verify_signatures: true,
    base_url: undefined,
    account_id: '000000000000',
    max_request_bytes: MESSAGING_DEFAULTS.max_request_bytes,
  });
  expect(parseMessagingConfig({ verify_signatures: false }).credentials).toEqual([]);
});

test('base_url is normalised', () => {
  expect(parseMessagingConfig({ credentials: creds, base_url: 'https://sqs.example.org:9324/' }).base_url).toBe(
    'https://sqs.example.org:9324',
  );
  expect(parseMessagingConfig({ credentials: creds, base_url: 'http://gw/api/sqs//' }).base_url).toBe('http://gw/api/sqs');
});

test.each([
  [{}, 'messaging.credentials: must list at least one key pair'],
  [{ credentials: 'x' }, 'messaging.credentials: must be a list'],
  [{ credentials: [{ access_key_id: 'AKIDONE' }] }, 'messaging.credentials[0].secret_access_key: must be a string'],
  [{ credentials: [...creds, ...creds] }, 'messaging.credentials[1].access_key_id: duplicate'],
  [{ credentials: creds, region: 'Mars 1' }, 'messaging.region:'],
  [{ credentials: creds, verify_signatures: 'yes' }, 'messaging.verify_signatures:'],
  [{ credentials: creds, account_id: 123 }, 'messaging.account_id:'],
  [{ credentials: creds, base_url: 'ftp://x' }, 'messaging.base_url: must use http or https'],
  [{ credentials: creds, base_url: 'http://x/?a=b' }, 'messaging.base_url: must not have a query'],
  [{ credentials: creds, max_request_bytes: 1000 }, 'messaging.max_request_bytes:'],
  [[], 'messaging: must be a mapping'],
])('%j is refused', (raw, message) => {
  expect(() => parseMessagingConfig(raw)).toThrow(SettingsError);
  expect(() => parseMessagingConfig(raw)).toThrow(message);
});

test('secrets never appear in errors', () => {
  expect(() => parseMessagingConfig({ credentials: [{ access_key_id: 'AKIDONE', secret_access_key: 'short' }] })).toThrow(
    /^(?!.*short).*$/,
  );
});

test('keys of other owners are left alone', () => {
  expect(() => parseMessagingConfig({ credentials: creds, listen: '0.0.0.0:9324', nats: { url: 'x' } })).not.toThrow();
});
