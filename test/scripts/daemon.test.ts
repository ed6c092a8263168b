// The harness's daemon handling: programs found on PATH, a daemon that dies or cannot start before
// it is ready reported as such, and a daemon that ignores its stop signal killed.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { findOnPath, trackDaemon, untilReady } from '../../scripts/lib/daemon.js';

const node = (code: string) => spawn(process.execPath, ['-e', code], { stdio: 'ignore' });

describe('findOnPath', () => {
  it('finds an executable on PATH or in the extra dirs, and nothing for a name that is nowhere', () => {
    expect(findOnPath('sh')).toMatch(/\/sh$/);
    expect(findOnPath('node', [process.execPath.replace(/\/node$/, '')])).toBeDefined();
    expect(findOnPath('no-such-program-anywhere')).toBeUndefined();
  });
});

describe('trackDaemon and untilReady', () => {
  it('reports a daemon that exits before it is ready, with its exit code and log', async () => {
    const daemon = trackDaemon(node('process.exit(3)'));
    await expect(untilReady(daemon, new Promise(() => undefined), 'thing', '/tmp/thing.log')).rejects.toThrow(
      'thing exited (3) at start; see /tmp/thing.log',
    );
  });

  it('reports a program that cannot be started instead of waiting forever', async () => {
    const daemon = trackDaemon(spawn('/nonexistent/program', [], { stdio: 'ignore' }));
    await expect(untilReady(daemon, new Promise(() => undefined), 'thing', '/tmp/thing.log')).rejects.toThrow(
      /thing could not be started: .*ENOENT/,
    );
    expect(await daemon.stop('SIGTERM')).toBeNull();
  });

  it('kills a daemon that is not ready when the readiness check fails', async () => {
    const child = node('setInterval(() => {}, 1000)');
    const daemon = trackDaemon(child);
    await expect(untilReady(daemon, Promise.reject(new Error('port never opened')), 'thing', '/tmp/x')).rejects.toThrow(
      'port never opened',
    );
    expect(child.signalCode).toBe('SIGKILL');
  });

  it('escalates to SIGKILL when the daemon ignores its stop signal', async () => {
    // Ready once it says so: its handler is in place (on a busy machine node starts slower than any fixed wait).
    const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const daemon = trackDaemon(child);
    await untilReady(daemon, new Promise((r) => child.stdout.once('data', r)), 'thing', '/tmp/x');
    const started = Date.now();
    await daemon.stop('SIGTERM', 200);
    expect(child.signalCode).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
