/** The CLI's exit codes and usage handling, without a serf agent. */
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../agent/cli/program.js';
import { VERSION } from '../../../agent/version.js';

const run = async (...argv: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (l) => void out.push(l), err: (l) => void err.push(l) }, {});
  return { code, out: out.join('\n'), err: err.join('\n') };
};

describe('mammatus CLI', () => {
  it('prints its version with `version` and `--version`', async () => {
    expect(await run('version')).toMatchObject({ code: 0, out: `mammatus ${VERSION}` });
    expect(await run('--version')).toMatchObject({ code: 0, out: VERSION });
  });

  it('exits 2 on usage errors: unknown command, missing argument, bad flag value, unknown role', async () => {
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('query')).code).toBe(2);
    expect((await run('query', 'x', '--tag', 'novalue')).code).toBe(2);
    expect((await run('query', 'x', '--timeout', 'soon')).code).toBe(2);
    const r = await run('render', 'nope', '--config', 'examples/cluster/gateway.yaml');
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown role "nope"');
  });

  it('exits 1 with a clear message when serf cannot be reached', async () => {
    const r = await run('--rpc-addr', '127.0.0.1:1', 'members');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/serf RPC 127\.0\.0\.1:1: connect ECONNREFUSED/);
  });

  it('has --help on every command (exit 0)', async () => {
    for (const cmd of ['agent', 'status', 'members', 'event', 'query', 'render', 'version']) {
      const r = await run(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.out, cmd).toContain(`Usage: mammatus ${cmd}`);
    }
  });

  it('renders every example config as it is', async () => {
    for (const role of ['gateway', 'compute', 'storage', 'controller']) {
      expect((await run('render', role, '--config', `examples/cluster/${role}.yaml`)).code, role).toBe(0);
    }
  });
});
