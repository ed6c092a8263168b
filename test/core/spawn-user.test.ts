/**
 * The spawn funnel's `user` and `onMessage` options with real children: as root, a child runs as the
 * user (or `nobody` when the user is missing, said once) without groups or capabilities and with a
 * clean environment; when the agent is not root the option changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { buildSpawn } from '../../core/exec.js';
import type { Daemon } from '../../core/contracts.js';

const isRoot = process.geteuid?.() === 0;
if (!isRoot) console.warn('spawn user tests skipped: not root (only root can switch users)');

/** Runs a shell-free probe: node printing its ids, groups and capabilities; resolves with its lines. */
async function probe(spawn: Awaited<ReturnType<typeof buildSpawn>>, user?: string): Promise<string[]> {
  const lines: string[] = [];
  const script =
    "const s=require('fs').readFileSync('/proc/self/status','utf8');" +
    "console.log(['Uid','Gid','Groups','CapEff','CapPrm'].map(k=>new RegExp('^'+k+':[ \\\\t]*(.*)$','m').exec(s)[1].trim().split(/\\s+/)[0]+'').join(' '));" +
    "console.log('canary=' + (process.env.SPAWN_TEST_CANARY ?? 'none'), 'cwd=' + process.cwd());";
  const d: Daemon = spawn(process.execPath, ['-e', script], { onLine: (l) => lines.push(l), ...(user ? { user } : {}) });
  await d.exited;
  return lines;
}

describe.skipIf(!isRoot)('buildSpawn with a user', () => {
  process.env.SPAWN_TEST_CANARY = 'agent-secret';

  it('runs the child as the user, no groups, no capabilities, with a clean environment in /', async () => {
    const spawn = await buildSpawn();
    const [ids, env] = await probe(spawn, 'nobody');
    expect(ids).toBe('65534 65534  0000000000000000 0000000000000000');
    expect(env).toBe('canary=none cwd=/');
  });

  it('falls back to nobody when the user is missing, and says so once', async () => {
    const errors: unknown[] = [];
    const passwd = () => 'nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n';
    const spawn = await buildSpawn({ passwd, log: { error: (...a: unknown[]) => void errors.push(a) } });
    expect((await probe(spawn, 'ghost'))[0]).toMatch(/^65534 65534 /);
    expect((await probe(spawn, 'ghost'))[0]).toMatch(/^65534 65534 /);
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0])).toContain('useradd --system');
  });

  it('starts nothing when neither the user nor nobody exists', async () => {
    const spawn = await buildSpawn({ passwd: () => 'root:x:0:0::/root:/bin/sh\n' });
    const lines: string[] = [];
    const d = spawn(process.execPath, ['-e', 'console.log(1)'], { user: 'ghost', onLine: (l) => lines.push(l) });
    expect(d.pid).toBeUndefined();
    expect(await d.exited).toBeNull();
    expect(lines.join()).toMatch(/neither ghost nor nobody exists/);
  });

  it('ignores the user when the agent is not root', async () => {
    const spawn = await buildSpawn({ euid: () => 1000 });
    const [ids] = await probe(spawn, 'nobody');
    expect(ids.split(' ')[0]).toBe('0');
  });
});

describe('buildSpawn with an IPC channel', () => {
  it('sends and receives JSON messages', async () => {
    const spawn = await buildSpawn();
    const got: unknown[] = [];
    const d = spawn(process.execPath, ['-e', "process.on('message',(m)=>{process.send({echo:m});process.disconnect();})"], {
      onMessage: (m) => got.push(m),
    });
    expect(d.send?.({ hello: 'child' })).toBe(true);
    expect(await d.exited).toBe(0);
    expect(got).toEqual([{ echo: { hello: 'child' } }]);
  });
});
