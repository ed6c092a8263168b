import { describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { applyRole, type ApplyDeps } from '../../roles/apply.js';
import type { ApplyContext, DesiredState, RenderedFile, Role } from '../../roles/types.js';
import { memoryFiles, type MemoryFiles } from '../helpers/memory-files.js';
import { commandFailed, recordingRun, type RunScript } from '../helpers/recording-run.js';

interface ExampleConfig {
  readonly files: readonly RenderedFile[];
}

const VALIDATE = ['example', '--test'];
const RELOAD = ['systemctl', 'reload', 'example'];
const HEALTH = ['curl', '-fsS', 'http://127.0.0.1:8080/health'];

/** A role whose output is its config, with hooks that each issue one recognisable command. */
function exampleRole(overrides: Partial<Role<ExampleConfig>> = {}): Role<ExampleConfig> {
  return {
    name: 'example',
    render: (desired) => desired.config.files.map((f) => ({ ...f })),
    validate: async (ctx) => void (await ctx.run(VALIDATE[0], VALIDATE.slice(1))),
    reload: async (ctx) => void (await ctx.run(RELOAD[0], RELOAD.slice(1))),
    health: async (ctx) => void (await ctx.run(HEALTH[0], HEALTH.slice(1))),
    ...overrides,
  };
}

function desired(files: Record<string, string>): DesiredState<ExampleConfig> {
  return {
    node: 'n1',
    config: { files: Object.entries(files).map(([path, content]) => ({ path, content })) },
    members: [],
  };
}

/** A pino logger writing JSON lines into an array, so tests can assert on what was logged. */
function memoryLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

function setup(opts: { files?: MemoryFiles; script?: RunScript; previous?: readonly string[] } = {}) {
  const files = opts.files ?? memoryFiles();
  const run = recordingRun(opts.script);
  const { log, lines } = memoryLog();
  const deps: ApplyDeps = { run, files, log, previous: opts.previous };
  return { files, run, lines, deps };
}

const failOn =
  (cmd: readonly string[]): RunScript =>
  (argv) =>
    argv.join(' ') === cmd.join(' ') ? commandFailed(argv, 1, 'bad config') : undefined;

const A = '/etc/example/a.conf';
const B = '/etc/example/b.conf';
const C = '/etc/example/c.conf';

describe('applyRole', () => {
  it('first apply writes every file and runs validate, reload, health in order', async () => {
    const { files, run, deps } = setup();
    const report = await applyRole(exampleRole(), desired({ [A]: 'a1\n', [B]: 'b1\n' }), deps);

    expect(report).toEqual({
      role: 'example',
      changed: [A, B],
      removed: [],
      rolledBack: false,
      ok: true,
      owned: [A, B],
    });
    expect(files.contents()).toEqual({ [A]: 'a1\n', [B]: 'b1\n' });
    expect(files.entries.get(A)?.mode).toBe(0o644);
    expect(run.calls).toEqual([VALIDATE, RELOAD, HEALTH]);
  });

  it('passes the changed paths to the hooks', async () => {
    const seen: (readonly string[])[] = [];
    const role = exampleRole({ validate: async (ctx: ApplyContext<ExampleConfig>) => void seen.push(ctx.changed) });
    const { deps } = setup({ files: memoryFiles({ [A]: 'a1\n' }) });
    await applyRole(role, desired({ [A]: 'a1\n', [B]: 'b1\n' }), deps);
    expect(seen).toEqual([[B]]);
  });

  it('second apply with the same input writes nothing and runs no hooks', async () => {
    const { files, run, deps } = setup();
    const input = desired({ [A]: 'a1\n', [B]: 'b1\n' });
    await applyRole(exampleRole(), input, deps);
    files.ops.length = 0;
    run.calls.length = 0;

    const report = await applyRole(exampleRole(), input, { ...deps, previous: [A, B] });

    expect(report).toEqual({ role: 'example', changed: [], removed: [], rolledBack: false, ok: true, owned: [A, B] });
    expect(files.ops).toEqual([]);
    expect(run.calls).toEqual([]);
  });

  it('rewrites a file whose mode changed even if its content did not', async () => {
    const files = memoryFiles({ [A]: 'secret\n' });
    const { deps } = setup({ files });
    const role = exampleRole({ render: () => [{ path: A, content: 'secret\n', mode: 0o600 }] });
    const report = await applyRole(role, desired({}), deps);
    expect(report.changed).toEqual([A]);
    expect(files.entries.get(A)).toEqual({ content: 'secret\n', mode: 0o600 });
  });

  it('validation failure restores old content, removes new files and does not reload', async () => {
    const files = memoryFiles({ [A]: 'a-old\n' });
    const { run, lines, deps } = setup({ files, script: failOn(VALIDATE), previous: [A] });

    const report = await applyRole(exampleRole(), desired({ [A]: 'a-new\n', [B]: 'b-new\n' }), deps);

    expect(report.ok).toBe(false);
    expect(report.rolledBack).toBe(true);
    expect(report.error).toMatch(/^validate: example --test: /);
    expect(report.owned).toEqual([A]);
    expect(files.contents()).toEqual({ [A]: 'a-old\n' });
    expect(run.calls).toEqual([VALIDATE]);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, component: 'role.example', stage: 'validate', msg: 'apply failed; rolling back' }),
    );
  });

  it('restores the old mode on rollback', async () => {
    const files = memoryFiles({ [A]: { content: 'old\n', mode: 0o600 } });
    const { deps } = setup({ files, script: failOn(VALIDATE) });
    const role = exampleRole({ render: () => [{ path: A, content: 'new\n', mode: 0o640 }] });
    await applyRole(role, desired({}), deps);
    expect(files.entries.get(A)).toEqual({ content: 'old\n', mode: 0o600 });
  });

  it('health failure rolls back, then reloads the old files', async () => {
    const files = memoryFiles({ [A]: 'a-old\n' });
    // Capture what reload saw on disk each time it ran.
    const reloadSaw: Record<string, string>[] = [];
    const script: RunScript = (argv) => {
      if (argv.join(' ') === RELOAD.join(' ')) reloadSaw.push(files.contents());
      return failOn(HEALTH)(argv);
    };
    const { run, deps } = setup({ files, script, previous: [A] });

    const report = await applyRole(exampleRole(), desired({ [A]: 'a-new\n', [B]: 'b-new\n' }), deps);

    expect(report).toMatchObject({ ok: false, rolledBack: true, changed: [A, B] });
    expect(report.error).toMatch(/^health: /);
    expect(run.calls).toEqual([VALIDATE, RELOAD, HEALTH, RELOAD]);
    expect(reloadSaw).toEqual([{ [A]: 'a-new\n', [B]: 'b-new\n' }, { [A]: 'a-old\n' }]);
    expect(files.contents()).toEqual({ [A]: 'a-old\n' });
  });

  it('reload failure rolls back and reloads again; a failing second reload is only logged', async () => {
    const files = memoryFiles({ [A]: 'a-old\n' });
    const { run, lines, deps } = setup({ files, script: failOn(RELOAD) });
    const report = await applyRole(exampleRole(), desired({ [A]: 'a-new\n' }), deps);
    expect(report).toMatchObject({ ok: false, rolledBack: true });
    expect(report.error).toMatch(/^reload: /);
    expect(run.calls).toEqual([VALIDATE, RELOAD, RELOAD]);
    expect(files.contents()).toEqual({ [A]: 'a-old\n' });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'reload after rollback failed' }));
  });

  it('a render throw is reported and nothing is written', async () => {
    const { files, run, deps } = setup({ previous: [A] });
    const role = exampleRole({
      render: () => {
        throw new Error('missing roles.example.listen');
      },
    });
    const report = await applyRole(role, desired({}), deps);
    expect(report).toEqual({
      role: 'example',
      changed: [],
      removed: [],
      rolledBack: false,
      ok: false,
      error: 'render: missing roles.example.listen',
      owned: [A],
    });
    expect(files.ops).toEqual([]);
    expect(run.calls).toEqual([]);
  });

  it('removes a previously owned file the role no longer renders', async () => {
    const files = memoryFiles({ [A]: 'a\n', [B]: 'b\n', [C]: 'not ours\n' });
    const seen: (readonly string[])[] = [];
    const role = exampleRole({ validate: async (ctx: ApplyContext<ExampleConfig>) => void seen.push(ctx.changed) });
    const { deps } = setup({ files, previous: [A, B] });

    const report = await applyRole(role, desired({ [A]: 'a\n' }), deps);

    expect(report).toMatchObject({ ok: true, changed: [], removed: [B], owned: [A] });
    expect(files.contents()).toEqual({ [A]: 'a\n', [C]: 'not ours\n' });
    expect(seen).toEqual([[B]]);
  });

  it('a previously owned file that is already gone is not a change', async () => {
    const { run, deps } = setup({ files: memoryFiles({ [A]: 'a\n' }), previous: [A, B] });
    const report = await applyRole(exampleRole(), desired({ [A]: 'a\n' }), deps);
    expect(report).toMatchObject({ ok: true, changed: [], removed: [] });
    expect(run.calls).toEqual([]);
  });

  it('rolling back restores removed files too', async () => {
    const files = memoryFiles({ [A]: 'a\n', [B]: 'b\n' });
    const { deps } = setup({ files, script: failOn(VALIDATE), previous: [A, B] });
    const report = await applyRole(exampleRole(), desired({ [A]: 'a2\n' }), deps);
    expect(report).toMatchObject({ ok: false, rolledBack: true, removed: [B], owned: [A, B] });
    expect(files.contents()).toEqual({ [A]: 'a\n', [B]: 'b\n' });
  });

  it.each([
    [
      'duplicate paths',
      [
        { path: A, content: '1' },
        { path: A, content: '2' },
      ],
      /^render: duplicate path/,
    ],
    ['a relative path', [{ path: 'etc/example/a.conf', content: '' }], /^render: path is not absolute/],
    ['a path with ..', [{ path: '/etc/example/../passwd', content: '' }], /^render: path is not normalized/],
  ])('rejects render output with %s', async (_label, output, error) => {
    const { files, run, deps } = setup();
    const report = await applyRole(exampleRole({ render: () => output }), desired({}), deps);
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(error);
    expect(files.ops).toEqual([]);
    expect(run.calls).toEqual([]);
  });

  it('a write failure midway rolls back what was written and runs no hooks', async () => {
    const files = memoryFiles({ [A]: 'a-old\n' });
    files.failWrite(B, new Error('ENOSPC: no space left on device'));
    const { run, deps } = setup({ files, previous: [A] });

    const report = await applyRole(exampleRole(), desired({ [A]: 'a-new\n', [B]: 'b\n', [C]: 'c\n' }), deps);

    expect(report).toMatchObject({ ok: false, rolledBack: true, error: 'write: ENOSPC: no space left on device' });
    expect(files.contents()).toEqual({ [A]: 'a-old\n' });
    // The batch's other writes (C) settle before the rollback, which then undoes them too.
    expect(files.ops).toEqual([`write ${A}`, `write ${B}`, `write ${C}`, `remove ${C}`, `remove ${B}`, `write ${A}`]);
    expect(run.calls).toEqual([]);
  });

  it('reports a rollback that could not restore a file and keeps owning it', async () => {
    const files = memoryFiles({ [A]: 'a-old\n' });
    files.failWrite(A);
    const { deps } = setup({ files });
    const report = await applyRole(exampleRole(), desired({ [A]: 'a-new\n' }), deps);
    expect(report).toMatchObject({ ok: false, rolledBack: false, owned: [A] });
    expect(report.error).toBe(`write: EIO: write failed: ${A}; rollback left ${A}`);
  });

  it('reports a non-Error throw from a hook', async () => {
    const role = exampleRole({
      validate: async () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a careless hook might throw
        throw 'plain string';
      },
    });
    const { deps } = setup();
    const report = await applyRole(role, desired({ [A]: 'a\n' }), deps);
    expect(report).toMatchObject({ ok: false, rolledBack: true, error: 'validate: plain string' });
  });
});
