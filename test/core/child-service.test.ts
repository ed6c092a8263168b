/**
 * ChildService with real child processes speaking the protocol (core/child-service.ts): settings as
 * the first IPC message, `ready`/`error` back, restarts after a crash with the settings sent again.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildSpawn } from '../../core/exec.js';
import { ChildService, relogChildLine, type ChildInit } from '../../core/child-service.js';

// A child that answers its init: `fail` → error and exit 1; else ready with a URL naming what it got,
// echoes later messages as log lines, and exits 0 on SIGTERM.
const CHILD = `
process.once('message', (init) => {
  if (init.fail) { process.send({ type: 'error', message: 'bad setting: ' + init.fail }, () => process.exit(1)); return; }
  process.send({ type: 'ready', url: 'http://child/' + init.service + '/' + init.n });
  process.on('message', (m) => console.log(JSON.stringify({ level: 30, msg: 'got', m, pid: process.pid })));
});
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`;

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

const init =
  (extra: Record<string, unknown> = {}) =>
  (): ChildInit => ({ type: 'init', service: 'demo', level: 'info', ...extra });

describe('ChildService', () => {
  it('resolves when the child is ready, passes later messages, stops it', async () => {
    const { log, lines } = logSink();
    const child = new ChildService({ spawn: await buildSpawn(), log, name: 'demo', argv: [process.execPath, ['-e', CHILD]] });
    expect(await child.start(init({ n: 1 }))).toBe('http://child/demo/1');
    const pid = child.pid!;
    expect(child.send({ type: 'members', controllers: ['10.0.0.1'] })).toBe(true);
    await expect.poll(() => lines.find((l) => l.msg === 'got')).toMatchObject({ m: { controllers: ['10.0.0.1'] }, child_pid: pid });
    await child.stop();
    expect(child.running).toBe(false);
  });

  it("rejects with the child's error and leaves nothing running", async () => {
    const { log } = logSink();
    const child = new ChildService({ spawn: await buildSpawn(), log, name: 'demo', argv: [process.execPath, ['-e', CHILD]] });
    await expect(child.start(init({ fail: 'metadata.tokens' }))).rejects.toThrow('bad setting: metadata.tokens');
    expect(child.running).toBe(false);
  });

  it('names the error of a child that cannot load its program, and what to do', async () => {
    const { log } = logSink();
    const argv = [process.execPath, ['/nonexistent/mammatus.mjs']] as const;
    const child = new ChildService({ spawn: await buildSpawn(), log, name: 'demo', argv });
    await expect(child.start(init())).rejects.toThrow(
      /Error: Cannot find module '\/nonexistent\/mammatus.mjs'.*must be able to read \/nonexistent\/mammatus.mjs/,
    );
  });

  it('rejects when the settings cannot be built (a secret file gone), without running half-configured', async () => {
    const { log } = logSink();
    const child = new ChildService({
      spawn: await buildSpawn(),
      log,
      name: 'demo',
      argv: [process.execPath, ['-e', CHILD]],
      readyTimeoutMs: 5000,
    });
    const broken = () => {
      throw new Error('ENOENT: /etc/mammatus/metadata.secret');
    };
    await expect(child.start(broken)).rejects.toThrow('ENOENT: /etc/mammatus/metadata.secret');
    expect(child.running).toBe(false);
  });

  it('restarts a child that died and sends it the settings of that moment', async () => {
    const { log, lines } = logSink();
    const child = new ChildService({
      spawn: await buildSpawn(),
      log,
      name: 'demo',
      argv: [process.execPath, ['-e', CHILD]],
      minRestartMs: 50,
    });
    let n = 1;
    await child.start(() => ({ type: 'init', service: 'demo', level: 'info', n }));
    const first = child.pid!;
    n = 2;
    process.kill(first, 'SIGKILL');
    await expect
      .poll(() => lines.filter((l) => l.msg === 'demo ready').map((l) => l.url), { timeout: 10_000 })
      .toEqual(['http://child/demo/1', 'http://child/demo/2']);
    expect(child.pid).not.toBe(first);
    expect(child.crashes).toBe(1);
    await child.stop();
  });
});

describe('relogChildLine', () => {
  it("keeps a pino line's level, message and fields; anything else is a warning", () => {
    const { log, lines } = logSink();
    relogChildLine(log, JSON.stringify({ level: 50, time: 1, pid: 42, hostname: 'h', msg: 'could not mint', instance: 'i-1' }));
    relogChildLine(log, '<4>' + JSON.stringify({ level: 40, msg: 'slow' }));
    relogChildLine(log, 'TypeError: boom');
    expect(lines.map((l) => [l.level, l.msg, l.instance ?? l.output ?? null, l.child_pid ?? null])).toEqual([
      [50, 'could not mint', 'i-1', 42],
      [40, 'slow', null, null],
      [40, 'child output', 'TypeError: boom', null],
    ]);
  });
});
