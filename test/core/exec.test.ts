import { describe, it, expect } from 'vitest';
import { buildRun, CommandFailedError } from '../../core/exec.js';

const run = buildRun();

/** Runs and returns the rejection, failing the test if the command succeeded. */
async function failure(promise: Promise<unknown>): Promise<CommandFailedError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CommandFailedError);
  return err as CommandFailedError;
}

describe('buildRun', () => {
  it('resolves with output and exit code 0', async () => {
    expect(await run('true', [])).toEqual({ stdout: '', stderr: '', exitCode: 0 });
    expect(await run('echo', ['a b', '$HOME'])).toMatchObject({ stdout: 'a b $HOME' });
  });

  it('passes input, env and cwd', async () => {
    expect((await run('cat', [], { input: 'piped' })).stdout).toBe('piped');
    expect((await run('sh', ['-c', 'echo "$MAMMATUS_X"'], { env: { MAMMATUS_X: 'y' } })).stdout).toBe('y');
    expect((await run('pwd', [], { cwd: '/' })).stdout).toBe('/');
  });

  it('rejects a non-zero exit with exit code and stderr', async () => {
    const err = await failure(run('sh', ['-c', 'echo x >&2; exit 3']));
    expect(err).toMatchObject({
      name: 'CommandFailedError',
      cmd: ['sh', '-c', 'echo x >&2; exit 3'],
      exitCode: 3,
      stderr: 'x',
      timedOut: false,
    });
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('rejects `false` with exit code 1', async () => {
    expect(await failure(run('false', []))).toMatchObject({ cmd: ['false'], exitCode: 1, timedOut: false });
  });

  it('rejects a timeout', async () => {
    const started = Date.now();
    const err = await failure(run('sleep', ['5'], { timeoutMs: 100 }));
    expect(err).toMatchObject({ cmd: ['sleep', '5'], exitCode: undefined, timedOut: true });
    expect(err.message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('applies the factory default timeout', async () => {
    const err = await failure(buildRun({ defaultTimeoutMs: 100 })('sleep', ['5']));
    expect(err.timedOut).toBe(true);
  });

  it('rejects a missing binary', async () => {
    const err = await failure(run('mammatus-no-such-binary', ['--x']));
    expect(err).toMatchObject({ cmd: ['mammatus-no-such-binary', '--x'], exitCode: undefined, timedOut: false });
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('never goes through a shell', async () => {
    const { stdout } = await run('echo', ['$(id -u);', '`true`', '&&', 'x']);
    expect(stdout).toBe('$(id -u); `true` && x');
  });
});
