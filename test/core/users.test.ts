import { describe, expect, it } from 'vitest';
import { findPasswdUser } from '../../core/users.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  'mammatus:x:998:996::/nonexistent:/usr/sbin/nologin',
  'toor:x:0:0:a second root:/root:/bin/sh',
  'broken:x:abc:12::/:/bin/sh',
  '',
].join('\n');

describe('findPasswdUser', () => {
  it('finds a user with its uid and primary gid', () => {
    expect(findPasswdUser(PASSWD, 'mammatus')).toEqual({ name: 'mammatus', uid: 998, gid: 996 });
    expect(findPasswdUser(PASSWD, 'nobody')).toEqual({ name: 'nobody', uid: 65534, gid: 65534 });
  });

  it('reads getent output (one line, trailing newline) the same', () => {
    expect(findPasswdUser('mammatus:x:998:996::/nonexistent:/usr/sbin/nologin\n', 'mammatus')?.uid).toBe(998);
  });

  it('is undefined for a missing user, a prefix of a name, or ids that are not numbers', () => {
    expect(findPasswdUser(PASSWD, 'ghost')).toBeUndefined();
    expect(findPasswdUser(PASSWD, 'mamma')).toBeUndefined();
    expect(findPasswdUser(PASSWD, 'broken')).toBeUndefined();
  });

  it('never takes a uid-0 alias as a way to drop privileges', () => {
    expect(findPasswdUser(PASSWD, 'toor')).toBeUndefined();
  });
});
