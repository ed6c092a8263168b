/**
 * The CA's part of the NATS permissions (issue 20): every admitted node reads the public CA bucket
 * and asks for its own certificate only; nobody but a controller touches the keys bucket.
 */
import { describe, expect, it } from 'vitest';
import { natsUser } from '../../../roles/controller/permissions.js';
import { admittedNode } from '../../../core/trust.js';
import type { RoleName } from '../../../core/members.js';
import { fixedCredentials } from '../../helpers/trust.js';

const user = (node: string, roles: RoleName[], i = 1) => natsUser(admittedNode(fixedCredentials(node, roles, i)));

describe('CA permissions', () => {
  const nodes = [user('gw1', ['gateway']), user('cn1', ['compute'], 2), user('st1', ['storage'], 3), user('bare', [], 0)];

  it('lets every admitted node read mammatus-ca and publish its own sign subject, whatever its roles', () => {
    for (const u of nodes) {
      const allow = u.permissions!.publish.allow;
      expect(allow).toContain('$JS.API.STREAM.INFO.KV_mammatus-ca');
      expect(allow).toContain('$JS.API.DIRECT.GET.KV_mammatus-ca.>');
      expect(allow).toContain('$JS.API.STREAM.MSG.GET.KV_mammatus-ca');
    }
    expect(nodes.map((u) => u.permissions!.publish.allow.filter((s) => s.startsWith('mammatus.ca.')))).toEqual([
      ['mammatus.ca.sign.gw1'],
      ['mammatus.ca.sign.cn1'],
      ['mammatus.ca.sign.st1'],
      ['mammatus.ca.sign.bare'],
    ]);
  });

  it('gives no node a wildcard on the sign subject, no write to the CA, nothing of mammatus-ca-keys', () => {
    for (const u of nodes) {
      const all = [...u.permissions!.publish.allow, ...u.permissions!.subscribe.allow];
      expect(all.some((s) => s.includes('mammatus-ca-keys'))).toBe(false);
      expect(all.some((s) => s.startsWith('$KV.'))).toBe(false);
      expect(all.some((s) => s.startsWith('mammatus.ca.') && /[*>]/.test(s))).toBe(false);
      // Reading the bucket needs no consumer: nothing can be watched or created on it.
      expect(all.some((s) => s.includes('CONSUMER') && s.includes('mammatus-ca'))).toBe(false);
      // Nobody listens on another node's sign requests.
      expect(u.permissions!.subscribe.allow.some((s) => s.startsWith('mammatus.ca.'))).toBe(false);
    }
  });

  it('leaves a controller unrestricted (it runs the signing service and writes the buckets)', () => {
    expect(user('ctl', ['controller']).permissions).toBeUndefined();
  });
});
