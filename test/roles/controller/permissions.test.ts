/**
 * The CA's part of the NATS permissions (issue 20): every admitted node reads the public CA bucket
 * and asks for its own certificate only; nobody but a controller touches the keys bucket. And the
 * load balancer bucket (issue 21): gateways read it, nobody else but a controller sees it.
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
      expect(all.some((s) => s.startsWith('$KV.') && !s.startsWith('$KV.mammatus-lb-health.'))).toBe(false);
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

describe('load balancer permissions', () => {
  const LB = 'KV_mammatus-lb';
  const HEALTH = 'mammatus-lb-health';

  it('lets a gateway bind mammatus-lb-health and write only keys of one token after its own name; read nothing there', () => {
    for (const node of ['gw1', 'gw.lab']) {
      const allow = user(node, ['gateway']).permissions!.publish.allow;
      expect(allow.filter((s) => s.includes(HEALTH)).sort()).toEqual(
        [`$JS.API.STREAM.INFO.KV_${HEALTH}`, `$KV.${HEALTH}.${node}.*`].sort(),
      );
    }
    const sub = user('gw1', ['gateway']).permissions!.subscribe.allow;
    expect(sub.some((s) => s.includes(HEALTH))).toBe(false);
  });

  it('lets a gateway get, list and watch mammatus-lb, as it reads the instance registry', () => {
    const allow = user('gw1', ['gateway']).permissions!.publish.allow;
    expect(allow.filter((s) => s.includes(LB) && !s.includes(HEALTH)).sort()).toEqual(
      [
        `$JS.API.STREAM.INFO.${LB}`,
        `$JS.API.STREAM.MSG.GET.${LB}`,
        `$JS.API.DIRECT.GET.${LB}.>`,
        `$JS.API.CONSUMER.CREATE.${LB}.>`,
        `$JS.API.CONSUMER.INFO.${LB}.>`,
        `$JS.FC.${LB}.>`,
      ].sort(),
    );
    // Reads only: no write subject of the bucket, no stream or consumer management beyond the ordered consumer.
    expect(allow.some((s) => s.startsWith('$KV.mammatus-lb.'))).toBe(false);
    expect(allow.some((s) => s.includes(LB) && /DELETE|UPDATE|PURGE/.test(s))).toBe(false);
  });

  it('gives compute, storage and role-less nodes nothing of mammatus-lb; a controller everything', () => {
    for (const u of [user('cn1', ['compute'], 2), user('st1', ['storage'], 3), user('bare', [], 0)]) {
      const all = [...u.permissions!.publish.allow, ...u.permissions!.subscribe.allow];
      expect(all.some((s) => s.includes('mammatus-lb'))).toBe(false);
    }
    expect(user('ctl', ['controller']).permissions).toBeUndefined();
  });
});
