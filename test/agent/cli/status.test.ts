/** How `mammatus status` reads one agent's answer. */
import { describe, expect, it } from 'vitest';
import { parseStatusAnswer } from '../../../agent/cli/status.js';

describe('parseStatusAnswer', () => {
  it('accepts a status object', () => {
    const a = { node: 'n', roles: ['gateway'], version: '0.1.0', uptime_s: 1, role_status: { gateway: { state: 'ok', applied_at: null } } };
    expect(parseStatusAnswer(JSON.stringify(a))).toEqual(a);
  });

  it.each([
    ['{"error":"timeout"}', 'error: timeout'],
    ['{"error":"answer too large: 2000 bytes > 981"}', 'error: answer too large: 2000 bytes > 981'],
    ['pong', 'bad answer'],
    ['null', 'bad answer'],
    ['[1,2]', 'bad answer'],
    ['{"node":"n"}', 'bad answer'],
  ])('turns %s into a reason, not a crash', (text, reason) => {
    expect(parseStatusAnswer(text)).toBe(reason);
  });
});
