/**
 * Compiles a settings section's JSON schema into a check function with Ajv, at run time. The
 * bundle does not ship this module: scripts/build.mjs puts in its place one with the same export
 * over code Ajv generated at build time for every declared section (scripts/precompile-sections.ts),
 * so the agent and the CLI check settings without loading or running Ajv's compiler.
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';

/** What the compiler needs of a section: its name, schema, format checks and whether to fill defaults. */
export interface CompileInput {
  /** Unique among sections; the bundle finds a section's generated check by it. */
  readonly name: string;
  readonly schema: object;
  readonly formats: Readonly<Record<string, (value: string) => boolean>>;
  readonly useDefaults: boolean;
}

/**
 * Ajv's options for every section: the first error only (one precise message beats a cascade),
 * not `verbose` (a sentence finds the value it quotes by the error's path; verbose errors would
 * double the generated code), defaults filled when asked.
 */
export function compileOptions(input: Pick<CompileInput, 'useDefaults'>): Options {
  return { allErrors: false, verbose: false, useDefaults: input.useDefaults };
}

/** The section's check function, compiled now. */
export function compileSection(input: CompileInput): ValidateFunction {
  const ajv = new Ajv(compileOptions(input));
  for (const [name, check] of Object.entries(input.formats)) ajv.addFormat(name, check);
  return ajv.compile(input.schema);
}
