/**
 * Node identities (core/trust.ts): what admission mints, how a trust tag is checked, and the
 * credentials file refused when others can read it or when it is not what it claims.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Member } from '../../core/contracts.js';
import { actsAs } from '../../core/members.js';
import { createUser } from '@nats-io/nkeys';
import { certFingerprint, makeIntermediate, makeNodeKeyAndCsr, makeRoot, signNodeCsr } from '../../src/ca/pki.js';
import {
  TRUST_TAG,
  annotateTrust,
  authorityKey,
  createAuthority,
  isUserKey,
  mintCredentials,
  mintForKey,
  parseCredentials,
  readCredentials,
  routePassword,
  userKey,
  verifyTrustTag,
} from '../../core/trust.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-trust-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const seed = createAuthority();
const authority = authorityKey(seed);
const now = new Date('2026-12-06T00:00:00Z');

describe('admission and trust tags', () => {
  it('mints credentials whose tag proves the name and roles; only controllers get the authority seed', () => {
    const ctl = mintCredentials(seed, 'ctl-1', ['controller', 'gateway'], now);
    expect(ctl.roles).toEqual(['gateway', 'controller']); // canonical order
    expect(ctl.authority_seed).toBe(seed);
    expect(verifyTrustTag(authority, 'ctl-1', ctl.tag)).toEqual({ roles: ['gateway', 'controller'], nkey: userKey(ctl) });
    const gw = mintCredentials(seed, 'gw-1', ['gateway'], now);
    expect(gw.authority_seed).toBeUndefined();
    expect(Buffer.byteLength(`${TRUST_TAG}${ctl.tag}`)).toBeLessThan(200); // Serf's tags share 512 bytes
  });

  it('refuses a tag copied to another name, edited roles, another authority, or garbage', () => {
    const gw = mintCredentials(seed, 'gw-1', ['gateway'], now);
    expect(verifyTrustTag(authority, 'gw-2', gw.tag)).toBeUndefined();
    expect(verifyTrustTag(authority, 'gw-1', gw.tag.replace(/^gateway/, 'controller'))).toBeUndefined();
    const other = mintCredentials(createAuthority(), 'gw-1', ['gateway'], now);
    expect(verifyTrustTag(authority, 'gw-1', other.tag)).toBeUndefined();
    for (const bad of [undefined, '', 'controller', 'a.b.c', 'controller.UABC.!!!', `x.${'A'.repeat(300)}.y`]) {
      expect(verifyTrustTag(authority, 'gw-1', bad)).toBeUndefined();
    }
  });

  it('marks members with what their tags prove; a controller tag without proof does not act as one', () => {
    const ctl = mintCredentials(seed, 'ctl-1', ['controller'], now);
    const m = (name: string, tags: Record<string, string>): Member => ({ name, addr: '10.0.0.1', port: 7946, status: 'alive', tags });
    const members = [
      m('ctl-1', { role: 'controller', trust: ctl.tag }),
      m('evil', { role: 'controller' }),
      m('copycat', { role: 'controller', trust: ctl.tag }),
    ];
    const [real, evil, copycat] = annotateTrust(members, authority, new Map());
    expect(actsAs(real, 'controller')).toBe(true);
    expect(actsAs(evil, 'controller')).toBe(false);
    expect(actsAs(copycat, 'controller')).toBe(false);
    // A node that was never admitted has nothing to check with: tags decide, as before.
    expect(annotateTrust(members, undefined).every((x) => actsAs(x, 'controller'))).toBe(true);
  });

  it('mints for a key the node keeps: the same tag as with its seed, no seed, no controllers', () => {
    const user = createUser();
    const nkey = user.getPublicKey();
    const nodeSeed = Buffer.from(user.getSeed()).toString('ascii');
    const grant = mintForKey(seed, 'metal-1', ['storage', 'compute'], now, nkey);
    expect(grant).toEqual({
      version: 1,
      node: 'metal-1',
      roles: ['compute', 'storage'],
      authority,
      tag: mintCredentials(seed, 'metal-1', ['compute', 'storage'], now, nodeSeed).tag,
      nkey,
      admitted_at: now.toISOString(),
    });
    expect(verifyTrustTag(authority, 'metal-1', grant.tag)).toEqual({ roles: ['compute', 'storage'], nkey });
    // With the node's seed added, they are credentials like any other.
    const { nkey: _k, ...rest } = grant;
    void _k;
    expect(parseCredentials({ ...rest, seed: nodeSeed }, 'x').node).toBe('metal-1');
    expect(() => mintForKey(seed, 'metal-1', ['controller'], now, nkey)).toThrow(/authority's seed/);
    for (const bad of ['', 'U', nkey.slice(0, -1), `${nkey.slice(0, -1)}${nkey.endsWith('A') ? 'B' : 'A'}`, authority, `N${nkey.slice(1)}`])
      expect(() => mintForKey(seed, 'metal-1', ['compute'], now, bad)).toThrow(/user public key/);
    expect(() => mintForKey(seed, 'bad name', ['compute'], now, nkey)).toThrow(/cannot be admitted/);
    expect(isUserKey(nkey)).toBe(true);
  });

  it('derives one route secret per authority', () => {
    expect(routePassword(seed)).toBe(routePassword(seed));
    expect(routePassword(seed)).not.toBe(routePassword(createAuthority()));
  });
});

describe('the credentials file', () => {
  const write = (name: string, content: string, mode: number) => {
    const file = path.join(tmp, name);
    writeFileSync(file, content, { mode });
    chmodSync(file, mode);
    return file;
  };
  const creds = mintCredentials(seed, 'cn-1', ['compute'], now);

  it('reads credentials kept 0600; absent is undefined', async () => {
    expect(await readCredentials(write('ok.json', JSON.stringify(creds), 0o600))).toEqual(creds);
    expect(await readCredentials(path.join(tmp, 'missing.json'))).toBeUndefined();
  });

  it('refuses a file that group or others can read, as ssh refuses a private key', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      await expect(readCredentials(write(`open-${mode}.json`, JSON.stringify(creds), mode))).rejects.toThrow(
        /readable by others.*chmod 600/,
      );
    }
  });

  it('refuses what is not credentials: bad JSON, missing keys, a tag not signed by its authority, a wrong authority seed', async () => {
    await expect(readCredentials(write('bad.json', '{', 0o600))).rejects.toThrow(/not mammatus node credentials/);
    expect(() => parseCredentials({ ...creds, seed: undefined }, 'x')).toThrow(/\(seed\)/);
    expect(() => parseCredentials({ ...creds, node: 'cn-2' }, 'x')).toThrow(/not signed/);
    expect(() => parseCredentials({ ...creds, roles: ['compute', 'root'] }, 'x')).toThrow(/\(roles\)/);
    expect(() => parseCredentials({ ...creds, authority_seed: createAuthority() }, 'x')).toThrow(/authority_seed/);
    expect(() => parseCredentials({ ...creds, seed: 'SUnot-a-seed' }, 'x')).toThrow(/\(keys\)/);
  });

  it('takes the CA root only as one CA certificate matching the pinned fingerprint (ca_root)', async () => {
    const root = await makeRoot();
    const other = await makeRoot({ commonName: 'someone else' });
    const pin = { ca_fingerprint: certFingerprint(root.certPem), ca_root: root.certPem };
    expect(parseCredentials({ ...creds, ...pin }, 'x')).toMatchObject(pin);
    // Credentials from before ca_root still read (the agent then says: re-admit).
    expect(parseCredentials({ ...creds, ca_fingerprint: pin.ca_fingerprint }, 'x').ca_root).toBeUndefined();
    expect(() => parseCredentials({ ...creds, ...pin, ca_root: other.certPem }, 'x')).toThrow(
      /ca_root: the CA root [0-9a-f]{16}… does not match the pinned fingerprint/,
    );
    // A bundle whose first certificate is the pinned one: the second would be trusted too.
    expect(() => parseCredentials({ ...creds, ...pin, ca_root: `${root.certPem}\n${other.certPem}` }, 'x')).toThrow(
      /ca_root: the CA root holds 2 certificates, not one/,
    );
    expect(() => parseCredentials({ ...creds, ca_root: root.certPem }, 'x')).toThrow(/ca_root: the CA root comes without its fingerprint/);
    expect(() => parseCredentials({ ...creds, ...pin, ca_root: 'not pem' }, 'x')).toThrow(/ca_root: the CA root holds 0 certificates/);
    expect(() => parseCredentials({ ...creds, ...pin, ca_root: 42 }, 'x')).toThrow(/ca_root: the CA root is not PEM text/);
    // A certificate that is no CA (a node's leaf) is no root, whatever its fingerprint.
    const leaf = await signNodeCsr({
      csrPem: (await makeNodeKeyAndCsr('cn-1')).csrPem,
      node: 'cn-1',
      intermediate: await makeIntermediate(root),
    });
    expect(() => parseCredentials({ ...creds, ca_fingerprint: certFingerprint(leaf.certPem), ca_root: leaf.certPem }, 'x')).toThrow(
      /ca_root: the CA root is not a CA certificate/,
    );
  });
});
