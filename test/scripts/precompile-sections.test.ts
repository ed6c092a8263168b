// The bundle checks settings with code Ajv generated at build time (scripts/precompile-sections.ts)
// instead of compiling at run time (core/section-compiler.ts). Both must say the same thing about
// every input: here each declared section meets inputs derived from its own schema (a wrong type and
// a bad string at every key, an unknown key, nothing at all) through both, and the answers, errors
// and filled defaults are compared.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSection, type CompileInput } from '../../core/section-compiler.js';
import { declaredSections, type SectionSpec } from '../../core/validation.js';
import { generateSections, REGISTRY_SOURCE, SECTION_MODULES } from '../../scripts/precompile-sections.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

type Generated = (input: CompileInput) => ValidateFunction;
let generated: Generated;
let generatedDir: string;

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
    string: [42, '', 'not a valid value!', 'x'.repeat(300)],
    integer: ['1', 1.5, -1, 1e12],
    number: ['1', -1, 1e12],
    boolean: ['yes'],
    object: ['x', [], { unknown_key: 1 }],
    array: ['x', [], [null]],
    any: [null, 'x', 42],
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
  writeFileSync(path.join(generatedDir, 'registry.mjs'), REGISTRY_SOURCE);
  const sections = await generateSections(pathToFileURL(`${ROOT}/`), './registry.mjs');
  for (const s of sections) {
    const file = path.join(generatedDir, `${s.name}.mjs`);
    writeFileSync(file, s.source);
    await import(pathToFileURL(file).href);
  }
  ({ compileSection: generated } = (await import(pathToFileURL(path.join(generatedDir, 'registry.mjs')).href)) as {
    compileSection: Generated;
  });
});
afterAll(() => rmSync(generatedDir, { recursive: true, force: true }));

describe('precompiled settings sections', () => {
  it('lists every module that declares a section', () => {
    const declaring = execFileSync('git', ['grep', '-l', 'sectionChecker<', '--', 'agent', 'core', 'roles', 'src', 'handlers'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .filter((f) => f !== 'core/validation.ts');
    expect([...SECTION_MODULES].sort()).toEqual(declaring.sort());
    expect(declaredSections().map((s) => s.name)).toHaveLength(SECTION_MODULES.length);
  });

  it('judges every input as Ajv compiling at run time does: same answer, same first error, same defaults', () => {
    let compared = 0;
    for (const spec of declaredSections()) {
      const atRunTime = compileSection(inputOf(spec));
      const atBuildTime = generated(inputOf(spec));
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
    expect(() => generated({ name: 'nowhere', schema: {}, formats: {}, useDefaults: false })).toThrow(/settings section nowhere/);
  });
});
