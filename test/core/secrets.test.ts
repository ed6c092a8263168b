/** Secret keys by name: what the log redaction and the config-file mode check rely on. */
import { describe, expect, it } from 'vitest';
import { CENSOR, findSecret, isSecretKey, redactSecrets } from '../../core/secrets.js';

describe('isSecretKey', () => {
  it('knows the secrets of every config section and service, in snake, camel and header case', () => {
    for (const name of [
      'rpc_auth',
      'authKey',
      'AuthKey',
      'proxy_secret',
      'proxySecret',
      'secret_access_key',
      'secretAccessKey',
      'gossip_key',
      'gossipKey',
      'encrypt_key',
      'receipt_key',
      'receiptKey',
      'seed',
      'authority_seed',
      'token',
      'vaultToken',
      'password',
      'authorization',
      'Authorization',
      'x-aws-ec2-metadata-token',
      'x-amz-security-token',
      'x-mammatus-signature',
      'cookie',
      'vaultWrappedSecretId',
      'secret',
    ])
      expect(isSecretKey(name), name).toBe(true);
  });

  it('leaves alone the keys that only name a secret (a path, an id, a mode)', () => {
    for (const name of [
      'access_key_id',
      'accessKeyId',
      'proxy_secret_file',
      'secret_file',
      'token_file',
      'tokens',
      'secret_id_ttl',
      'preseed',
      'key',
      'rpc_addr',
      'trust',
      'role_id',
    ])
      expect(isSecretKey(name), name).toBe(false);
  });
});

describe('findSecret', () => {
  it('names the first secret a config file holds, with its full key path', () => {
    expect(findSecret({ serf: { rpc_addr: '127.0.0.1:7373', rpc_auth: 'k' } })).toBe('serf.rpc_auth');
    expect(findSecret({ messaging: { credentials: [{ access_key_id: 'AKID', secret_access_key: 'sk-12345678' }] } })).toBe(
      'messaging.credentials[0].secret_access_key',
    );
    expect(findSecret({ metadata: { vendor_data: { consul: { gossip_key: 'x' } } } })).toBe('metadata.vendor_data.consul.gossip_key');
  });

  it('finds none where a secret key is empty or only a file path is given', () => {
    expect(findSecret({ serf: { rpc_auth: '' }, metadata: { proxy_secret: null, proxy_secret_file: '/etc/s' } })).toBeUndefined();
    expect(
      findSecret({ roles: { gateway: { metadata: { secret_file: '/etc/s' } }, compute: { paths: { preseed: '/p' } } } }),
    ).toBeUndefined();
  });
});

describe('redactSecrets', () => {
  it('returns the very object when it holds no secret, and never changes the one it is given', () => {
    const plain = { a: 1, b: [{ c: 'd' }] };
    expect(redactSecrets(plain)).toBe(plain);
    const frozen = Object.freeze({ serf: Object.freeze({ rpc_auth: 'topsecret' }) });
    expect(redactSecrets(frozen)).toEqual({ serf: { rpc_auth: CENSOR } });
    expect(frozen.serf.rpc_auth).toBe('topsecret');
  });

  it('censors cycles and objects deeper than any log line', () => {
    const loop: Record<string, unknown> = { token: 't0p' };
    loop.self = loop;
    expect(redactSecrets(loop)).toEqual({ token: CENSOR, self: '[Circular]' });
    let deep: Record<string, unknown> = { password: 'p4ss' };
    for (let i = 0; i < 40; i++) deep = { next: deep };
    expect(JSON.stringify(redactSecrets(deep))).not.toContain('p4ss');
  });

  it('defines an own __proto__ key instead of setting the prototype', () => {
    const obj = JSON.parse('{"__proto__": {"token": "x"}}') as object;
    const out = redactSecrets(obj);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe(`{"__proto__":{"token":"${CENSOR}"}}`);
  });
});
