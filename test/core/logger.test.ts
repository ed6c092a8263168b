/** The root logger: level changes reach child loggers made earlier; secrets are redacted. */
import { describe, expect, it } from 'vitest';
import { buildLogger, setLogLevel } from '../../core/logger.js';

const capture = (level: string) => {
  const lines: Record<string, unknown>[] = [];
  const log = buildLogger(level, {
    journal: false,
    dest: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { log, lines };
};

describe('buildLogger', () => {
  it('applies a new level to child loggers created before the change (config reload)', () => {
    const { log, lines } = capture('info');
    const child = log.child({ component: 'dispatch' });
    child.debug('hidden');
    setLogLevel(log, 'debug');
    child.debug('shown');
    setLogLevel(log, 'warn');
    child.info('hidden too');
    log.child({ component: 'late' }).warn('shown too');
    setLogLevel(log, 'silent');
    log.fatal('nothing');
    expect(lines.map((l) => l.msg)).toEqual(['shown', 'shown too']);
  });

  it('never writes serf rpc_auth values', () => {
    const { log, lines } = capture('info');
    log.info({ serf: { rpc_addr: '127.0.0.1:7373', rpc_auth: 'topsecret' } }, 'config');
    expect(JSON.stringify(lines)).not.toContain('topsecret');
  });

  it('never writes a secret of any config section or service, at any depth, in lines or child bindings', () => {
    // One distinct value per secret, so a leak names itself.
    const s = (name: string) => `SECRET-${name}-0123456789`;
    const config = {
      state_dir: '/var/lib/mammatus',
      serf: { rpc_addr: '127.0.0.1:7373', rpc_auth: s('rpc_auth') },
      metadata: {
        proxy_secret: s('proxy_secret'),
        proxy_secret_file: '/etc/mammatus/metadata.secret',
        vendor_data: {
          consul: { gossip_key: s('gossip_key') },
          vault: { role_id: 'role-id-is-public', token_file: '/etc/vault.token' },
        },
      },
      messaging: {
        receipt_key: s('receipt_key'),
        credentials: [
          { access_key_id: 'AKIDONE', secret_access_key: s('secret_access_key1') },
          { access_key_id: 'AKIDTWO', secret_access_key: s('secret_access_key2') },
        ],
      },
      roles: { gateway: { metadata: { secret_file: '/etc/mammatus/metadata.secret' } } },
    };
    const inCode = {
      serf: { authKey: s('authKey') },
      sigv4: { secretAccessKey: s('secretAccessKey'), credentials: [{ accessKeyId: 'AKIDONE', secretAccessKey: s('secretAccessKey2') }] },
      metadata: { proxySecret: s('proxySecret'), vault: { token: s('vault_token'), vaultWrappedSecretId: s('wrapped') } },
      nats: {
        credentials: { seed: s('seed'), authority_seed: s('authority_seed') },
        authorization: { user: 'route', password: s('password') },
      },
      request: {
        headers: {
          authorization: s('authorization'),
          'x-aws-ec2-metadata-token': s('imds_token'),
          'x-amz-security-token': s('session_token'),
          'x-mammatus-signature': s('signature'),
          cookie: s('cookie'),
        },
      },
    };
    const { log, lines } = capture('debug');
    log.info({ config }, 'config loaded');
    log.info({ config: { messaging: { credentials: [{ access_key_id: 'AKIDONE', secret_access_key: s('nested') }] } } }, 'nested');
    log.debug({ deep: { a: { b: { c: { d: { e: [{ f: { g: inCode } }] } } } } } }, 'deep');
    log.child({ bound: { serf: { rpc_auth: s('bound') } } }).warn(inCode, 'top level');
    const text = JSON.stringify(lines);
    expect(text).not.toMatch(/SECRET-/);
    expect(lines).toHaveLength(4);
    // What is not secret stays readable: the key ids, the file paths, the public role id.
    for (const kept of ['AKIDONE', 'AKIDTWO', '/etc/mammatus/metadata.secret', '/etc/vault.token', 'role-id-is-public', '127.0.0.1:7373'])
      expect(text).toContain(kept);
    expect((lines[0].config as typeof config).serf.rpc_auth).toBe('[redacted]');
    // The object logged is untouched.
    expect(config.serf.rpc_auth).toBe(s('rpc_auth'));
  });
});
