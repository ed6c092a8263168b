/** Choosing nats-server's user: the pure search check, and what is refused before anything is handed over. */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ancestors, maySearch, prepareNatsUser } from '../../../roles/controller/nats-user.js';
import { recordingRun } from '../../helpers/recording-run.js';

const NATS = { name: 'nats', uid: 104, gid: 107 };
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nnats:x:104:107:NATS:/nonexistent:/usr/sbin/nologin\n';

describe('maySearch', () => {
  it.each([
    [{ uid: 0, gid: 0, mode: 0o755 }, true],
    [{ uid: 0, gid: 0, mode: 0o750 }, false],
    [{ uid: 0, gid: 107, mode: 0o750 }, true],
    [{ uid: 0, gid: 107, mode: 0o705 }, false], // the group's bits count for a member, not the others'
    [{ uid: 104, gid: 0, mode: 0o700 }, true],
    [{ uid: 104, gid: 0, mode: 0o077 }, false],
    [{ uid: 0, gid: 0, mode: 0o1777 }, true],
  ])('%j -> %s', (dir, ok) => expect(maySearch(NATS, dir)).toBe(ok));
});

describe('ancestors', () => {
  it('lists every directory from / down to the parent', () => {
    expect(ancestors('/var/lib/mammatus/nats')).toEqual(['/', '/var', '/var/lib', '/var/lib/mammatus']);
    expect(ancestors('/x')).toEqual(['/']);
  });
});

describe('prepareNatsUser', () => {
  const log = pino({ level: 'silent' });
  const stat = async () => ({ uid: 0, gid: 0, mode: 0o755 });

  it('switches nothing and touches nothing when the agent is not root, or the user is ""', async () => {
    const run = recordingRun();
    expect(await prepareNatsUser({ run, log, euid: () => 1000, passwd: async () => PASSWD, stat }, 'nats', '/s', '/c')).toBeUndefined();
    expect(await prepareNatsUser({ run, log, euid: () => 0, passwd: async () => PASSWD, stat }, '', '/s', '/c')).toBeUndefined();
    expect(run.calls).toEqual([]);
  });

  it("keeps the agent's user, touching nothing, when the user does not exist", async () => {
    const run = recordingRun();
    const user = await prepareNatsUser(
      { run, log, euid: () => 0, passwd: async () => 'root:x:0:0::/root:/bin/sh\n', stat },
      'nats',
      '/s',
      '/c',
    );
    expect(user).toBeUndefined();
    expect(run.calls).toEqual([]);
  });

  it('hands over nothing when a directory on the way to the config file is closed to the user', async () => {
    const run = recordingRun();
    const closed = async (p: string) => ({ uid: 0, gid: 0, mode: p === '/etc/secret' ? 0o700 : 0o755 });
    const user = await prepareNatsUser(
      { run, log, euid: () => 0, passwd: async () => PASSWD, stat: closed },
      'nats',
      '/var/lib/n',
      '/etc/secret/nats.conf',
    );
    expect(user).toBeUndefined();
    expect(run.calls.filter((c) => c[0] === 'chown')).toEqual([]);
  });

  it("hands the store over again when a root-run server left files in a store that is already the user's", async () => {
    const owned = async (p: string) => (p === '/var/lib/n' ? { uid: 104, gid: 107, mode: 0o750 } : { uid: 0, gid: 0, mode: 0o755 });
    const withForeign = recordingRun((argv) =>
      argv[0] === 'find' ? { stdout: '/var/lib/n/jetstream/$G/streams/S/msgs/1.blk\n', stderr: '', exitCode: 0 } : undefined,
    );
    const deps = { log, euid: () => 0, passwd: async () => PASSWD, stat: owned };
    expect(await prepareNatsUser({ ...deps, run: withForeign }, 'nats', '/var/lib/n', '/etc/n.conf')).toBe('nats');
    expect(withForeign.calls).toContainEqual(['chown', '-R', '104:107', '/var/lib/n']);
    const clean = recordingRun((argv) => (argv[0] === 'find' ? { stdout: '', stderr: '', exitCode: 0 } : undefined));
    await prepareNatsUser({ ...deps, run: clean }, 'nats', '/var/lib/n', '/etc/n.conf');
    expect(clean.calls.filter((c) => c[0] === 'chown' && c[1] === '-R')).toEqual([]);
  });
});
