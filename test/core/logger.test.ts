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
});
