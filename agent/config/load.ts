/**
 * Reads the agent config the way Serf reads its own: defaults kept in code, then the main file, then
 * its `agent.d/` drop-ins in lexical order (or every YAML file of a directory), then the environment,
 * then CLI flags. Every error names the file (or variable, or flag) and the key that caused it, because
 * the operator who reads it has to know which of several files to fix.
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { SettingsError } from '../../core/validation.js';
import { DEFAULT_CONFIG, deepFreeze, findSchemaProblem, type AgentConfig, type DeepPartial } from './schema.js';
import { errorMessage } from '../../core/errors.js';
import { privateModeProblem } from '../../core/files.js';
import { findSecret } from '../../core/secrets.js';
import type { OperatorKey } from '../../core/operators.js';
import { loadOperators } from './operators.js';

/** Where the config lives unless `--config` or `MAMMATUS_CONFIG` says otherwise. */
export const DEFAULT_CONFIG_PATH = '/etc/mammatus/agent.yaml';
/** The drop-in directory read after the main file, beside it. */
export const DROP_IN_DIR = 'agent.d';
/** Source label of the CLI overrides layer in error messages. */
export const OVERRIDES_SOURCE = 'command line';

/** Environment variables that override file settings; each is its own layer so errors can name it. */
const ENV_KEYS: ReadonlyArray<readonly [name: string, section: 'serf' | 'log', key: string]> = [
  ['SERF_RPC_AUTH', 'serf', 'rpc_auth'], // the same variable the serf CLI reads
  ['MAMMATUS_RPC_ADDR', 'serf', 'rpc_addr'],
  ['MAMMATUS_LOG_LEVEL', 'log', 'level'],
];

/** Inputs of `loadConfig`, passed in rather than read from globals so tests control them. */
export interface LoadConfigOptions {
  /** `--config`: a file (then its `agent.d/` too) or a directory of YAML files. */
  path?: string;
  /** Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Values from CLI flags; `undefined` leaves a key alone, so unset flags can be passed as is. */
  overrides?: DeepPartial<AgentConfig>;
}

/** A loaded config and where it came from. */
export interface LoadedConfig {
  /** The merged, validated config, deep-frozen. */
  config: AgentConfig;
  /** The files read, in merge order. */
  files: string[];
  /** The resolved config path (file or directory), absolute; the main file need not exist. */
  path: string;
  /** The directories whose YAML files make up the config: what `watchConfig` should watch. */
  dirs: string[];
  /** The operator keys of `trust.operators` and `trust.operators_file`. */
  operators: readonly OperatorKey[];
}

/** For each dotted key path, the label of the layer that set it last. */
export type KeySources = ReadonlyMap<string, string>;

type Plain = Record<string, unknown>;

/**
 * Loads, merges and validates the config: defaults < files < environment < overrides.
 *
 * @throws SettingsError naming the file and key at fault.
 */
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = opts.env ?? process.env;
  const configPath = path.resolve(opts.path ?? (env.MAMMATUS_CONFIG || DEFAULT_CONFIG_PATH));
  const { files, dirs } = await findConfigFiles(configPath);

  const layers: Array<{ source: string; data: Plain }> = [];
  for (const file of files) layers.push({ source: file, data: await readConfigFile(file) });
  for (const [name, section, key] of ENV_KEYS) {
    // Empty counts as unset: systemd and shells often export a variable with nothing in it.
    const value = env[name];
    if (value) layers.push({ source: `env:${name}`, data: { [section]: { [key]: value } } });
  }
  if (opts.overrides) layers.push({ source: OVERRIDES_SOURCE, data: opts.overrides });

  // Each layer on its own over the defaults first: then a failure belongs to exactly that layer.
  for (const layer of layers) validateConfig(mergeConfig(DEFAULT_CONFIG, layer.data), layer.source);

  const sources = new Map<string, string>();
  let merged: unknown = DEFAULT_CONFIG;
  for (const layer of layers) merged = merge(merged, layer.data, '', layer.source, sources);
  const config = validateConfig(merged, sources);
  const operators = await loadOperators(config.trust, (key) => sourceOf(sources, key));
  return { config, files, path: configPath, dirs, operators };
}

/**
 * The files a config watcher follows: the main file (watched even while missing, so creating it is
 * noticed), the files read, and the operators file (removing a key must not wait for a SIGHUP).
 */
export function watchedFiles(loaded: Pick<LoadedConfig, 'dirs' | 'path' | 'files' | 'config'>): string[] {
  const main = loaded.dirs.includes(loaded.path) ? [] : [loaded.path];
  const operators = loaded.config.trust.operators_file ? [loaded.config.trust.operators_file] : [];
  return [...new Set([...main, ...loaded.files, ...operators])];
}

/**
 * Deep-merges `layers` over `base` without touching either: plain objects merge key by key, arrays
 * and scalars replace, `undefined` leaves the value below in place. Pure.
 */
export function mergeConfig<T extends object>(base: T, ...layers: Array<DeepPartial<T> | Readonly<Plain> | undefined>): T {
  let out: unknown = base;
  for (const layer of layers) out = merge(out, layer, '');
  return out as T;
}

/**
 * Checks `obj` against the schema and returns a deep-frozen copy typed as `AgentConfig` (a bare
 * `roles.<name>:` line, which YAML reads as null, becomes `{}`). Pure: `obj` is neither changed nor frozen.
 *
 * @param source the file the whole object came from, or which layer set each key.
 * @throws SettingsError `<source>: <key>: <reason>`.
 */
export function validateConfig(obj: unknown, source?: string | KeySources): AgentConfig {
  const problem = findSchemaProblem(obj);
  if (problem) {
    const from = typeof source === 'string' ? source : source && sourceOf(source, problem.key);
    throw from ? problem.in(from) : problem;
  }
  const copy = merge({}, obj, '') as Plain & AgentConfig;
  const roles = copy.roles as Plain;
  for (const name of Object.keys(roles)) roles[name] ??= {};
  return deepFreeze(copy);
}

/** The layer that set `key`, or failing that the nearest enclosing key (an unknown key's parent). */
function sourceOf(sources: KeySources, key: string): string | undefined {
  for (let k = key; k; k = k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '') {
    const found = sources.get(k);
    if (found) return found;
  }
  return undefined;
}

/** Merges `layer` over `base` into new objects, recording in `sources` which keys `source` set. */
function merge(base: unknown, layer: unknown, at: string, source?: string, sources?: Map<string, string>): unknown {
  if (layer === undefined) return base;
  if (Array.isArray(layer)) return layer.map((item) => merge(undefined, item, at));
  if (!isPlain(layer)) return layer;
  const out: Plain = {};
  if (isPlain(base)) for (const [k, v] of Object.entries(base)) define(out, k, v);
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue;
    const key = at ? `${at}.${k}` : k;
    if (source && sources) sources.set(key, source);
    define(out, k, merge(out[k], v, key, source, sources));
  }
  return out;
}

// A YAML key `__proto__` is an own property; plain assignment would set the prototype instead.
function define(obj: Plain, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlain(value: unknown): value is Plain {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The files to read for `configPath`, and the directories a watcher should watch. */
async function findConfigFiles(configPath: string): Promise<{ files: string[]; dirs: string[] }> {
  const info = await stat(configPath).catch((err: NodeJS.ErrnoException) => {
    // A missing main file is normal: the defaults (and any drop-ins) apply.
    if (err.code === 'ENOENT') return undefined;
    throw new SettingsError('', err.message, configPath);
  });
  if (info?.isDirectory()) return { files: await yamlFilesIn(configPath), dirs: [configPath] };
  const dropIns = path.join(path.dirname(configPath), DROP_IN_DIR);
  const files = info ? [configPath] : [];
  files.push(...(await yamlFilesIn(dropIns)));
  // The main file's own directory is not a config directory: only the main file in it counts.
  return { files, dirs: [dropIns] };
}

/** True for a name the loader reads from a directory; dot files are editor and package-manager leftovers. */
export function isConfigFileName(name: string): boolean {
  return /\.ya?ml$/.test(name) && !name.startsWith('.');
}

/** The regular `*.yaml`/`*.yml` files in `dir`, in lexical (code unit) order; none if it is missing. */
async function yamlFilesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new SettingsError('', errorMessage(err), dir);
  }
  const files: string[] = [];
  for (const name of names.filter(isConfigFileName).sort()) {
    const file = path.join(dir, name);
    // stat, not the dirent type, so a symlinked drop-in counts and a dangling one is skipped.
    if ((await stat(file).catch(() => undefined))?.isFile()) files.push(file);
  }
  return files;
}

/** Reads a file's text and its permission bits, from one open file (not a path that may change between the two). */
async function readWithMode(file: string): Promise<{ text: string; mode: number }> {
  const handle = await open(file, 'r');
  try {
    const { mode } = await handle.stat();
    return { text: await handle.readFile('utf8'), mode };
  } finally {
    await handle.close();
  }
}

/**
 * Reads one YAML file into a plain object; empty means `{}`. A file holding a secret (`serf.rpc_auth`,
 * `messaging.credentials[].secret_access_key`, … see core/secrets.ts) that group or others can read
 * is refused, as ssh refuses such a private key: the secret is no longer the node's alone. A file
 * without secrets may stay 0644.
 */
async function readConfigFile(file: string): Promise<Plain> {
  let text: string;
  let mode: number;
  try {
    ({ text, mode } = await readWithMode(file));
  } catch (err) {
    throw new SettingsError('', errorMessage(err), file);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0].line;
    // prettyErrors appends the position and a code excerpt; keep one line for the journal.
    const reason = syntax.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    // No `cause`: the parser's error quotes the offending line, which may hold a secret
    // (serf.rpc_auth) and would reach the journal through the error serializer.
    throw new SettingsError('', `invalid YAML: ${reason}`, file, line);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // e.g. an alias to an anchor that does not exist
    throw new SettingsError('', `invalid YAML: ${errorMessage(err).split('\n')[0]}`, file);
  }
  if (data === null || data === undefined) return {};
  if (!isPlain(data)) {
    const got = Array.isArray(data) ? 'a list' : `a ${typeof data}`;
    throw new SettingsError('', `the top level must be a mapping of keys, not ${got}`, file);
  }
  // A bare `gateway:` line means "this role, no settings of its own": merge it as `{}` so it does not
  // wipe settings an earlier file gave the role.
  if (isPlain(data.roles)) {
    for (const [name, value] of Object.entries(data.roles)) if (value === null) define(data.roles, name, {});
  }
  for (const section of ['metadata', 'messaging']) if (data[section] === null) define(data, section, {});
  const secret = findSecret(data);
  const problem = secret === undefined ? undefined : privateModeProblem(file, mode);
  // Names the key, never its value.
  if (secret !== undefined && problem) throw new SettingsError(secret, `is a secret, but ${problem}`, file);
  return data;
}
