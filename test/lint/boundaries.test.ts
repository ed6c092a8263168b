/**
 * The import direction is a lint rule that fails (docs/architecture.md): each back edge below is
 * linted as if it lay at that path in the tree, with the project's own ESLint config, and must be
 * refused; an import along the direction must pass; two files importing each other are a cycle.
 */
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const repo = path.join(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: repo });
const fixtures = new ESLint({ cwd: repo, ignore: false });

/** The rule ids ESLint reports for `code` placed at `file` (relative to the repository). */
async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(repo, file) });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('import boundaries', () => {
  it.each([
    [
      'core/back-edge.lint-fixture.ts',
      "import { createAgent } from '../agent/daemon.js';\nexport const x = createAgent;\n",
      'core/ is the ground floor',
    ],
    [
      'agent/serf/back-edge.lint-fixture.ts',
      "import { Dispatcher } from '../dispatch/dispatcher.js';\nexport const x = Dispatcher;\n",
      'the Serf client knows only core/',
    ],
    [
      'roles/compute/back-edge.lint-fixture.ts',
      "import { buildGatewayRole } from '../gateway/index.js';\nexport const x = buildGatewayRole;\n",
      'a role never reaches into another role',
    ],
    [
      'roles/gateway/back-edge.lint-fixture.ts',
      "import { InstanceRegistry } from '../../src/registry/registry.js';\nexport const x = InstanceRegistry;\n",
      'roles get services injected',
    ],
    [
      'src/messaging/back-edge.lint-fixture.ts',
      "import { RegistryView } from '../registry/view.js';\nexport const x = RegistryView;\n",
      'messaging knows core/ only',
    ],
    [
      'src/messaging/engine/back-edge.lint-fixture.ts',
      "import { isSqsAction } from '../protocol/sqs-types.js';\nexport const x = isSqsAction;\n",
      'never the wire layer',
    ],
    [
      'agent/dispatch/back-edge.lint-fixture.ts',
      "import { buildGatewayRole } from '../../roles/gateway/index.js';\nexport const x = buildGatewayRole;\n",
      'only the composition roots',
    ],
    [
      'handlers/back-edge.lint-fixture.ts',
      "import { runCli } from '../agent/cli/program.js';\nexport const x = runCli;\n",
      'only the composition roots',
    ],
    [
      'bench/back-edge.lint-fixture.ts',
      "import { startFakeSerf } from '../test/helpers/fake-serf.js';\nexport const x = startFakeSerf;\n",
      'benchmarks never import tests',
    ],
  ])('refuses %s', async (file, code, why) => {
    const found = await problems(file, code);
    expect(
      found.some((p) => p.startsWith('import-x/no-restricted-paths') && p.includes(why)),
      found.join('\n'),
    ).toBe(true);
  });

  it('lets an import along the direction pass', async () => {
    expect(
      await problems(
        'roles/gateway/fine.lint-fixture.ts',
        "import type { Member } from '../../core/contracts.js';\nexport type X = Member;\n",
      ),
    ).toEqual([]);
    expect(
      await problems(
        'agent/roles-fine.lint-fixture.ts',
        "import { RoleScheduler } from '../roles/scheduler.js';\nexport const x = RoleScheduler;\n",
      ),
    ).toEqual([]);
  });

  it('refuses an import cycle', async () => {
    const results = await fixtures.lintFiles(['test/lint/fixtures/cycle-a.lint-fixture.ts']);
    expect(results[0]?.messages.map((m) => m.ruleId)).toContain('import-x/no-cycle');
  });
}, 60_000);
