// The bundle checks settings with code Ajv generated at build time (scripts/precompile-sections.ts)
// instead of compiling at run time (core/section-compiler.ts). Both must say the same thing about
// every input: here each declared section meets inputs derived from its own schema (a wrong type and
// a bad string at every key, an unknown key, nothing at all) through both, and the answers, errors
// and filled defaults are compared, with the generated code loaded both as node loads it and as
// bundled by esbuild (the two expose Ajv's CommonJS helpers differently). A fixture section needs
// the helpers no real section uses yet (deep equality for uniqueItems and enum of objects).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSection, type CompileInput } from '../../core/section-compiler.js';
import { declaredSections, type SectionSpec } from '../../core/validation.js';
import { generateSections, REGISTRY_SOURCE, SECTION_MODULES, sectionSource } from '../../scripts/precompile-sections.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

type Generated = (input: CompileInput) => ValidateFunction;
/** The generated checks as node loads them, and as bundled by esbuild. */
const loaded: { node?: Generated; esbuild?: Generated } = {};
let generatedDir: string;
/** Which module each generated section was attributed to. */
let attributed: { module: string; name: string }[] = [];

/** Needs Ajv's deep-equality helper and a custom format; declared here only, never in the product. */
const FIXTURE: SectionSpec = {
  name: 'test.fixture',
  at: 'fixture',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      hosts: { type: 'array', uniqueItems: true, items: { type: 'object', properties: { name: { type: 'string', minLength: 2 } } } },
      mode: { enum: [{ a: 1 }, 'plain'] },
      id: { type: 'string', format: 'even-length' },
    },
  },
  formats: { 'even-length': { check: (v: string) => v.length % 2 === 0, why: 'must have an even length' } },
};

function inputOf(spec: SectionSpec): CompileInput {
  return {
    name: spec.name,
    schema: spec.schema,
    formats: Object.fromEntries(Object.entries(spec.formats ?? {}).map(([n, f]) => [n, f.check])),
    useDefaults: spec.useDefaults ?? false,
  };
}

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: boolean | Schema;
}

/** Key paths of a schema (list items as index 0), each with the JSON type the schema wants there. */
function keyPaths(schema: Schema, at: (string | number)[] = []): { at: (string | number)[]; type: string }[] {
  const type = Array.isArray(schema.type) ? schema.type[0] : (schema.type ?? 'any');
  const here = at.length ? [{ at, type }] : [];
  const below = [
    ...Object.entries(schema.properties ?? {}).flatMap(([k, s]) => keyPaths(s, [...at, k])),
    ...(schema.items ? keyPaths(schema.items, [...at, 0]) : []),
    ...(typeof schema.additionalProperties === 'object' ? keyPaths(schema.additionalProperties, [...at, 'extra']) : []),
  ];
  return [...here, ...below];
}

/** `value` placed at `at` inside fresh containers. */
function placed(at: (string | number)[], value: unknown): unknown {
  return at.reduceRight<unknown>((inner, key) => (typeof key === 'number' ? [inner] : { [key]: inner }), value);
}

/** Inputs that exercise every key of the schema: wrong types, bad strings, unknown keys. */
function inputsFor(schema: Schema): unknown[] {
  const wrongFor: Record<string, unknown[]> = {
    string: [42, '', 'odd', 'not a valid value!', 'x'.repeat(300)],
    integer: ['1', 1.5, -1, 1e12],
    number: ['1', -1, 1e12],
    boolean: ['yes'],
    object: ['x', [], { unknown_key: 1 }],
    array: ['x', [], [null], [{ a: 1 }, { a: 1 }], [{ name: 'ab' }, { name: 'ab' }]],
    any: [null, 'x', 42, { a: 1 }, { a: 2 }],
  };
  return [
    undefined,
    null,
    {},
    [],
    'x',
    { unknown_key: 1 },
    ...keyPaths(schema).flatMap(({ at, type }) => (wrongFor[type] ?? wrongFor.any).map((v) => placed(at, v))),
  ];
}

beforeAll(async () => {
  // Inside the repository, so the generated imports of Ajv's runtime helpers resolve. The sections
  // import the registry as the bundle's do, by the specifier they were generated with.
  generatedDir = path.join(ROOT, 'node_modules', '.cache', `mammatus-test-${process.pid}`);
  mkdirSync(generatedDir, { recursive: true });
  const real = await generateSections(pathToFileURL(`${ROOT}/`), './registry.mjs');
  attributed = real.map(({ module, name }) => ({ module, name }));
  const sections = [...real, { name: FIXTURE.name, source: sectionSource(FIXTURE, './registry.mjs') }];
  writeFileSync(path.join(generatedDir, 'registry.mjs'), REGISTRY_SOURCE);
  for (const s of sections) writeFileSync(path.join(generatedDir, `${s.name}.mjs`), s.source);
  const entry = path.join(generatedDir, 'entry.mjs');
  writeFileSync(
    entry,
    [...sections.map((s) => `import './${s.name}.mjs';`), "export { compileSection } from './registry.mjs';"].join('\n'),
  );
  const bundled = path.join(generatedDir, 'bundled.mjs');
  await build({ entryPoints: [entry], outfile: bundled, bundle: true, format: 'esm', platform: 'node', logLevel: 'silent' });
  type Loaded = { compileSection: Generated };
  loaded.node = ((await import(pathToFileURL(entry).href)) as Loaded).compileSection;
  loaded.esbuild = ((await import(pathToFileURL(bundled).href)) as Loaded).compileSection;
});
afterAll(() => rmSync(generatedDir, { recursive: true, force: true }));

describe('precompiled settings sections', () => {
  it('lists every module that declares a section', () => {
    const declaring = execFileSync('git', ['grep', '-lE', 'sectionChecker(<|\\()', '--', 'agent', 'core', 'roles', 'src', 'handlers'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .filter((f) => f !== 'core/validation.ts');
    expect([...SECTION_MODULES].sort()).toEqual(declaring.sort());
    // Each module's own section is bundled beside it: every module is credited with a section.
    expect(new Set(attributed.map((a) => a.module))).toEqual(new Set(SECTION_MODULES));
    expect(attributed.map((a) => a.name).sort()).toEqual(
      declaredSections()
        .map((s) => s.name)
        .sort(),
    );
  });

  it.each(['node', 'esbuild'] as const)('judges every input as Ajv compiling at run time does, loaded by %s', (by) => {
    let compared = 0;
    for (const spec of [...declaredSections(), FIXTURE]) {
      const atRunTime = compileSection(inputOf(spec));
      const atBuildTime = loaded[by]!(inputOf(spec));
      for (const input of inputsFor(spec.schema)) {
        const a = structuredClone(input);
        const b = structuredClone(input);
        const ok = atRunTime(a);
        expect({ section: spec.name, input, ok: atBuildTime(b), errors: atBuildTime.errors ?? null, value: b }).toEqual({
          section: spec.name,
          input,
          ok,
          errors: atRunTime.errors ?? null,
          value: a,
        });
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(400);
  });

  it('refuses a section it has no code for, naming it', () => {
    expect(() => loaded.esbuild!({ name: 'nowhere', schema: {}, formats: {}, useDefaults: false })).toThrow(/settings section nowhere/);
  });
});
