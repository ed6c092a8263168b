/** Which tagged roles a node runs (agent/trust-policy.ts): admission, trust.allowed_roles, a safe Serf. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../agent/config/schema.js';
import { decideRoles, serfWeaknesses, trustStatus } from '../../agent/trust-policy.js';
import { parseRoleTag } from '../../core/members.js';
import { fixedCredentials } from '../helpers/trust.js';

const secure = { ...DEFAULT_CONFIG, serf: { ...DEFAULT_CONFIG.serf, rpc_auth: 'k' } };
const tag = (t: string) => parseRoleTag(t);

describe('the roles a node takes', () => {
  it('runs only what its credentials admit; the rest is reported with why', () => {
    const d = decideRoles(tag('compute,controller'), secure, fixedCredentials('n', ['compute']), true);
    expect(d).toEqual({ roles: ['compute'], refused: { controller: 'not admitted (its credentials admit compute)' } });
  });

  it('takes trust.allowed_roles over the admitted roles', () => {
    const c = { ...secure, trust: { ...secure.trust, allowed_roles: ['gateway' as const] } };
    const d = decideRoles(tag('gateway,compute'), c, fixedCredentials('n', ['gateway', 'compute']), true);
    expect(d).toEqual({ roles: ['gateway'], refused: { compute: 'not in trust.allowed_roles' } });
  });

  it('refuses a controller on a Serf without gossip encryption or an RPC key, unless the lab switch is on', () => {
    const creds = fixedCredentials('n', ['controller']);
    expect(decideRoles(tag('controller'), secure, creds, true)).toEqual({ roles: ['controller'], refused: {} });
    const plain = decideRoles(tag('controller'), DEFAULT_CONFIG, creds, false);
    expect(plain.roles).toEqual([]);
    expect(plain.refused.controller).toMatch(/^refused: Serf gossip is not encrypted .*; Serf RPC has no auth key .*allow_plain_serf/);
    const lab = { ...DEFAULT_CONFIG, trust: { ...DEFAULT_CONFIG.trust, allow_plain_serf: true } };
    expect(decideRoles(tag('controller'), lab, creds, false).roles).toEqual(['controller']);
    // Other roles do not need it.
    expect(decideRoles(tag('gateway'), DEFAULT_CONFIG, fixedCredentials('n', ['gateway']), false).roles).toEqual(['gateway']);
  });

  it('lets a node never admitted take its tagged roles, which then fail on their own (no credentials)', () => {
    expect(decideRoles(tag('gateway'), secure, undefined, true)).toEqual({ roles: ['gateway'], refused: {} });
  });

  it("reports the node's weaknesses in its status", () => {
    expect(serfWeaknesses(secure, undefined)).toEqual([]);
    expect(trustStatus(DEFAULT_CONFIG, undefined, false)).toEqual({
      errors: [
        'Serf gossip is not encrypted (serf agent -encrypt / keyring)',
        'Serf RPC has no auth key (serf.rpc_auth)',
        'not admitted: no credentials (mammatus node admit)',
      ],
    });
    expect(trustStatus(secure, fixedCredentials('n', ['storage']), true)).toEqual({ admitted: ['storage'], errors: [] });
  });
});
