/**
 * Golden-file testing for renderers, shown on a tiny role defined here. Each
 * `__fixtures__/<role>/<case>.yaml` is a DesiredState; every file the role renders for it is
 * compared with `__golden__/<role>/<case>/<absolute path>`. Regenerate with
 * `npx vitest run test/roles -u` and review the golden diff like code.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import type { Member } from '../../core/contracts.js';
import type { DesiredState, Role } from '../../roles/types.js';

interface ExampleConfig {
  readonly listen: number;
  readonly upstreams: readonly string[];
}

/** A deliberately small role: a config file from settings and a hosts file from membership. */
const exampleRole: Role<ExampleConfig> = {
  name: 'example',
  render: ({ node, config, members }) => {
    const header = '# managed by mammatus role=example\n';
    const upstreams = [...config.upstreams].sort().map((u) => `upstream ${u}\n`);
    const hosts = members
      .filter((m) => m.status === 'alive')
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((m) => `${m.addr} ${m.name}\n`);
    return [
      { path: '/etc/example/example.conf', content: `${header}node ${node}\nlisten ${config.listen}\n${upstreams.join('')}` },
      { path: '/etc/example/hosts', content: header + hosts.join(''), mode: 0o644 },
    ];
  },
};

const ROLE = exampleRole.name;
const fixturesDir = join(import.meta.dirname, '__fixtures__', ROLE);
const goldenRoot = join(import.meta.dirname, '__golden__', ROLE);
const cases = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

function loadFixture(name: string): DesiredState<ExampleConfig> {
  const raw = parse(readFileSync(join(fixturesDir, `${name}.yaml`), 'utf8')) as {
    node: string;
    config?: ExampleConfig;
    members?: Member[];
  };
  // The agent hands roles members sorted by name; do the same so fixtures can be written in any order.
  const members = [...(raw.members ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return { node: raw.node, config: raw.config ?? ({} as ExampleConfig), members };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
}

describe(`${ROLE} role goldens`, () => {
  it('has at least one fixture', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('%s renders the golden files', async (name) => {
    const desired = loadFixture(name);
    const files = exampleRole.render(desired);
    // Pure means repeatable: a second render must be identical.
    expect(exampleRole.render(desired)).toEqual(files);
    for (const file of files) {
      await expect(file.content).toMatchFileSnapshot(join(goldenRoot, name, file.path));
    }
  });

  it.each(cases)('%s has no stale golden files', async (name) => {
    // A golden the role no longer renders would otherwise linger unnoticed after a rename.
    // Missing goldens are the matcher's job (and are only written at the end of a `-u` run), so
    // this checks one direction: every golden on disk is still rendered.
    const rendered = new Set(exampleRole.render(loadFixture(name)).map((f) => f.path));
    const stale = (await listFiles(join(goldenRoot, name))).filter((p) => !rendered.has(p));
    expect(stale).toEqual([]);
  });
});
