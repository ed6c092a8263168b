/**
 * The shell templates of the vendor-data parts (`cloud-init/vendor-data/*.sh`): finding them, loading
 * them once at start-up, and filling them.
 *
 * Template syntax, kept small so that no value can ever be read as shell:
 * - `@@NAME@@` (NAME in A-Z, 0-9, _) may only stand alone as the value of an assignment, a whole line
 *   `VAR=@@NAME@@`; it is replaced by the value as one single-quoted shell word, inside which the
 *   shell expands nothing (`$()`, backquotes, newlines all stay literal). Comment lines are left
 *   alone.
 * - A line `. ./lib.sh` is replaced by the text of `lib.sh`, so each part cloud-init runs is one
 *   self-contained script.
 * Every placeholder needs a value and every value a placeholder, so a template and the renderer
 * cannot drift apart unnoticed.
 */
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../core/errors.js';

/** The texts of the templates, as loaded (LF line ends). */
export interface VendorDataTemplates {
  /** `lib.sh`: helpers inlined into every part. */
  readonly lib: string;
  readonly consul: string;
  readonly vault: string;
  readonly telegraf: string;
}

/** A template that is missing or breaks the syntax above. */
export class VendorDataTemplateError extends Error {
  override readonly name = 'VendorDataTemplateError';
}

/** Where the Debian package installs the templates. */
export const SYSTEM_TEMPLATE_DIR = '/usr/share/mammatus/cloud-init/vendor-data';

/** File of each template in the template directory. */
export const TEMPLATE_FILES: Readonly<Record<keyof VendorDataTemplates, string>> = {
  lib: 'lib.sh',
  consul: 'consul.sh',
  vault: 'vault.sh',
  telegraf: 'telegraf.sh',
};

/** The placeholders each part's template must have, exactly. */
export const TEMPLATE_PLACEHOLDERS: Readonly<Record<Exclude<keyof VendorDataTemplates, 'lib'>, readonly string[]>> = {
  consul: ['CONSUL_CONFIG'],
  vault: ['VAULT_ADDR', 'VAULT_ROLE_ID', 'VAULT_WRAPPED_SECRET_ID', 'VAULT_AGENT_CONFIG'],
  telegraf: ['TELEGRAF_CONFIG'],
};

const PLACEHOLDER = /@@[A-Z][A-Z0-9_]*@@/;
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=@@([A-Z][A-Z0-9_]*)@@$/;
const INCLUDE_LIB = '. ./lib.sh';

/** `value` as one single-quoted POSIX shell word: `'` becomes `'\''`, nothing else is special. */
export function shellQuote(value: string): string {
  // A NUL cannot be in a shell word (or a C string) at all; refuse rather than truncate.
  if (value.includes('\0')) throw new VendorDataTemplateError('a template value contains a NUL byte');
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * Fills `template`: each `VAR=@@NAME@@` line gets `values[NAME]` shell-quoted, and the `. ./lib.sh`
 * line becomes `lib`. Pure.
 *
 * @throws VendorDataTemplateError for a placeholder outside an assignment line, a placeholder
 *   without a value, or a value without a placeholder.
 */
export function fillTemplate(name: string, template: string, lib: string, values: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const lines = template.split('\n').map((line, i) => {
    if (line.trim() === INCLUDE_LIB) return lib.replace(/\n$/, '');
    // Comments may talk about placeholders; the shell never reads them.
    if (!PLACEHOLDER.test(line) || line.trimStart().startsWith('#')) return line;
    const m = ASSIGNMENT.exec(line);
    if (!m) {
      throw new VendorDataTemplateError(`${name}:${i + 1}: a placeholder must stand alone as a value (VAR=@@NAME@@)`);
    }
    const key = m[1];
    const value = values[key];
    if (value === undefined) throw new VendorDataTemplateError(`${name}:${i + 1}: no value for @@${key}@@`);
    used.add(key);
    return line.replace(`@@${key}@@`, () => shellQuote(value));
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) throw new VendorDataTemplateError(`${name}: has no placeholder for ${unused.map((k) => `@@${k}@@`).join(', ')}`);
  return lines.join('\n');
}

/** Where to look for the templates when no directory is given (tests point these elsewhere). */
export interface TemplateSearch {
  /** Default `SYSTEM_TEMPLATE_DIR`. */
  readonly systemDir?: string;
  /** Where the walk up for `cloud-init/vendor-data` starts; default this module's own location. */
  readonly from?: string;
}

/**
 * Loads and checks the templates, once at start-up. From `dir` when given; else from
 * `SYSTEM_TEMPLATE_DIR` when it exists (the installed package); else from the first
 * `cloud-init/vendor-data` found walking up from this module, which finds the repository's copy
 * both from `src/metadata/` (tsx, vitest) and from the bundle in `dist/`.
 *
 * @throws VendorDataTemplateError naming the directory and the file that is missing or wrong.
 */
export async function loadVendorDataTemplates(dir?: string, search: TemplateSearch = {}): Promise<VendorDataTemplates> {
  const where = dir ?? (await findTemplateDir(search));
  const texts: Record<string, string> = {};
  for (const [key, file] of Object.entries(TEMPLATE_FILES)) {
    const full = path.join(where, file);
    try {
      // CRLF from an editor would leave a CR on every line, which sh reads as part of each word.
      texts[key] = (await readFile(full, 'utf8')).replace(/\r\n/g, '\n');
    } catch (err) {
      throw new VendorDataTemplateError(`vendor-data template ${full} cannot be read: ${errorMessage(err)}`);
    }
  }
  const templates = texts as unknown as VendorDataTemplates;
  for (const [part, names] of Object.entries(TEMPLATE_PLACEHOLDERS)) {
    const text = templates[part as keyof typeof TEMPLATE_PLACEHOLDERS];
    const file = path.join(where, TEMPLATE_FILES[part as keyof VendorDataTemplates]);
    if (!text.startsWith('#!')) throw new VendorDataTemplateError(`${file}: must start with #! (cloud-init runs a part only with one)`);
    // A dry run with dummy values proves the placeholders match what the renderer fills.
    fillTemplate(file, text, templates.lib, Object.fromEntries(names.map((n) => [n, ''])));
  }
  return templates;
}

/** The template directory when none is configured; see `loadVendorDataTemplates`. */
export async function findTemplateDir(search: TemplateSearch = {}): Promise<string> {
  const systemDir = search.systemDir ?? SYSTEM_TEMPLATE_DIR;
  if (await exists(systemDir)) return systemDir;
  let at = search.from ?? path.dirname(fileURLToPath(import.meta.url));
  const tried = [systemDir];
  for (;;) {
    const candidate = path.join(at, 'cloud-init', 'vendor-data');
    tried.push(candidate);
    if (await exists(path.join(candidate, TEMPLATE_FILES.consul))) return candidate;
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  throw new VendorDataTemplateError(`vendor-data templates not found; looked in ${tried.join(', ')}`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
