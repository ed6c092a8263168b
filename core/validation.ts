/**
 * The one way settings are checked. Each section (the agent config file, `roles.gateway`,
 * `messaging`, …) has a JSON schema compiled once with Ajv, custom string formats that carry the
 * sentence shown when they fail, and cross-field checks written after it; every failure, from the
 * schema or a check, is a {@link SettingsError} that names the file when known, the full key path
 * (`roles.gateway.dhcp.reservations[0].ip`) and what to write instead. The first problem only: one
 * precise message beats a cascade of follow-on errors.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { compileSection } from './section-compiler.js';
import { isDnsLabel, isDnsName, isHostPort, isIPv4, parseCidr } from './net.js';

/** A setting that cannot be used. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';

  constructor(
    /** Full dotted key path (`roles.compute.parent`, `messaging.credentials[1].secret_access_key`); empty = the whole file. */
    readonly key: string,
    /** What is wrong, as a sentence an operator can act on (`must be an IPv4 address like 10.88.0.1`). */
    readonly reason: string,
    /** The file (or `env:NAME`, `command line`) that set the value, when known. */
    readonly file?: string,
    /** 1-based line of a YAML syntax error. */
    readonly line?: number,
  ) {
    super(`${file ? `${file}${line ? `:${line}` : ''}: ` : ''}${key ? `${key}: ` : ''}${reason}`);
  }

  /** The same problem, attributed to `file`. */
  in(file: string): SettingsError {
    return new SettingsError(this.key, this.reason, file, this.line);
  }
}

/** A custom string format: its check, and the sentence shown when a value fails it. */
export interface Format {
  readonly check: (value: string) => boolean;
  readonly why: string | ((value: string) => string);
}

/** How to check one section. */
export interface SectionSpec {
  /**
   * Unique name of the check (`agent`, `roles.gateway`, `messaging.wire`): the bundle looks up the
   * code generated for it at build time by this name.
   */
  readonly name: string;
  /** Where the section sits (`roles.gateway`, `messaging`; empty for a whole file). */
  readonly at: string;
  /** Its JSON schema (typed by the caller as `JSONSchemaType<…>`). */
  readonly schema: object;
  readonly formats?: Readonly<Record<string, Format>>;
  /**
   * Sentences for keys whose failure Ajv cannot word (a pattern, a range), by key path below `at`
   * with list indices written `[]` (`consul.servers[]`): `key` words every failure of the key but
   * a wrong type, `key#keyword` one kind only (`account_id#type`), and `path.*` the unknown keys
   * of a mapping.
   */
  readonly hints?: Readonly<Record<string, string>>;
  /** Fill `default`s from the schema (the checker then works on a copy). */
  readonly useDefaults?: boolean;
}

const declared = new Map<string, SectionSpec>();

/** Every section declared so far with {@link sectionChecker}, for the build to generate their code. */
export function declaredSections(): readonly SectionSpec[] {
  return [...declared.values()];
}

/**
 * Builds the checker of a section: it compiles on first use (a command that never reads the
 * section never pays for it; in the bundle the compiled code is generated at build time), checks
 * a value, and returns it typed, or throws a {@link SettingsError}.
 */
export function sectionChecker<T>(spec: SectionSpec): (raw: unknown) => T {
  if (declared.has(spec.name) && declared.get(spec.name) !== spec) throw new Error(`two settings sections named ${spec.name}`);
  declared.set(spec.name, spec);
  let validate: ValidateFunction | undefined;
  return (raw) => {
    validate ??= compileSection({
      name: spec.name,
      schema: spec.schema,
      formats: Object.fromEntries(Object.entries(spec.formats ?? {}).map(([name, f]) => [name, f.check])),
      useDefaults: spec.useDefaults ?? false,
    });
    const value = spec.useDefaults && raw !== null && typeof raw === 'object' ? structuredClone(raw) : raw;
    if (validate(value)) return value as T;
    throw explain(spec, validate.errors?.[0], value);
  };
}

/** `at` and `key` joined into one key path (`roles.gateway` + `lan.address`). */
export function keyPath(at: string, key: string): string {
  if (!key) return at;
  if (!at || key.startsWith('[')) return `${at}${key}`;
  return `${at}.${key}`;
}

/** Throws a {@link SettingsError} for `key` below `at`: for the checks written after the schema. */
export function invalid(at: string, key: string, reason: string): never {
  throw new SettingsError(keyPath(at, key), reason);
}

/** Turns an Ajv error into a SettingsError with the full key path and a sentence. */
function explain(spec: SectionSpec, error: ErrorObject | undefined, value: unknown): SettingsError {
  if (!error) return new SettingsError(spec.at, 'is invalid');
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const sub = parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
  const hintKey = parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[]` : acc ? `${acc}.${p}` : p), '');
  const at = keyPath(spec.at, sub);
  const params = error.params as Record<string, unknown>;
  // A hint for `key#keyword` wins; a plain `key` hint words every failure of the key but its type.
  const hintOf = (key: string, keyword: string) =>
    spec.hints?.[`${key}#${keyword}`] ?? (keyword === 'type' ? undefined : spec.hints?.[key]);
  const hint = hintOf(hintKey, error.keyword);
  switch (error.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      return new SettingsError(keyPath(at, name), spec.hints?.[hintKey ? `${hintKey}.*` : '*'] ?? 'unknown key');
    }
    case 'required': {
      const name = String(params.missingProperty);
      return new SettingsError(keyPath(at, name), hintOf(hintKey ? `${hintKey}.${name}` : name, 'required') ?? 'is required');
    }
    case 'enum':
      return new SettingsError(at, hint ?? `must be one of ${(params.allowedValues as unknown[]).join(', ')}`);
    case 'format': {
      const why = spec.formats?.[String(params.format)]?.why;
      return new SettingsError(at, typeof why === 'function' ? why(String(valueAt(value, parts))) : (why ?? 'is invalid'));
    }
    case 'type':
      return new SettingsError(at, hint ?? `must be ${typeWords(String(params.type))}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return new SettingsError(at, hint ?? `must be ${error.keyword.includes('inimum') ? 'at least' : 'at most'} ${String(params.limit)}`);
    case 'minLength':
      return new SettingsError(
        at,
        hint ?? (params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`),
      );
    case 'maxLength':
      return new SettingsError(at, hint ?? `must be at most ${String(params.limit)} characters`);
    case 'minItems':
      return new SettingsError(
        at,
        hint ?? (params.limit === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} entries`),
      );
    case 'maxItems':
      return new SettingsError(at, hint ?? `must have at most ${String(params.limit)} entries`);
    case 'uniqueItems':
      return new SettingsError(at, 'must not repeat an entry');
    case 'pattern':
      return new SettingsError(at, hint ?? 'has a character that is not allowed');
    default:
      return new SettingsError(at, hint ?? error.message ?? 'is invalid');
  }
}

/** The value at `parts` (an error's instance path) inside `value`. */
function valueAt(value: unknown, parts: readonly string[]): unknown {
  return parts.reduce<unknown>((v, p) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined), value);
}

function typeWords(type: string): string {
  const words: Record<string, string> = {
    object: 'a mapping',
    array: 'a list',
    boolean: 'true or false',
    integer: 'an integer',
    number: 'a number',
    string: 'a string',
  };
  return type
    .split(',')
    .filter((t) => t !== 'null')
    .map((t) => words[t] ?? t)
    .join(' or ');
}

/**
 * Absolute and normalised, without what config files and tools read specially (space, comma,
 * quotes, backslash, `#`) and without `.` or `..` parts.
 */
export function isSafeAbsolutePath(v: string): boolean {
  return /^(?:\/[A-Za-z0-9._+@-]+)+$/.test(v) && !/\/\.\.?(?:\/|$)/.test(v);
}

/** The string formats several sections use, each with its sentence. */
export const COMMON_FORMATS = {
  ipv4: { check: isIPv4, why: 'must be an IPv4 address like 10.88.0.1' },
  cidr: { check: (v: string) => parseCidr(v) !== undefined, why: 'must be an IPv4 address with a prefix length, like 10.88.0.1/24' },
  mac: { check: (v: string) => /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i.test(v), why: 'must be a MAC address like 02:00:00:00:00:10' },
  // IFNAMSIZ is 16 with the NUL; '+' is left out because iptables reads it as a wildcard.
  ifname: {
    check: (v: string) => /^[A-Za-z0-9_.-]{1,15}$/.test(v) && v !== '.' && v !== '..',
    why: 'must be a network interface name (1-15 of A-Z a-z 0-9 _ . -)',
  },
  path: { check: isSafeAbsolutePath, why: 'must be an absolute path without spaces, commas, quotes, "." or ".." parts' },
  'nats-url': {
    check: (v: string) => /^(nats|tls):\/\/[A-Za-z0-9.:[\]-]+$/.test(v),
    why: 'must be a NATS URL like nats://10.88.0.10:4222',
  },
  domain: { check: isDnsName, why: 'must be a DNS name like mammatus or lab.example' },
  label: { check: isDnsLabel, why: 'must be a DNS label (letters, digits, inner hyphens, at most 63 characters)' },
  'host-port': {
    check: isHostPort,
    why: 'must be HOST:PORT with an IPv4 address, a host name or [IPv6] and a port 1-65535, like 0.0.0.0:4222',
  },
} as const satisfies Record<string, Format>;

/**
 * `settings` over `defaults`, key by key: a null or absent value keeps the default (a bare `key:`
 * line in YAML is null), mappings merge, lists and scalars replace. Returns new objects only.
 */
export function withDefaults<T>(defaults: T, settings: unknown): T {
  return merge(defaults, settings) as T;
}

function merge(base: unknown, over: unknown): unknown {
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (over === null || over === undefined) return structuredClone(base);
  if (!isMap(base) || !isMap(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [key, value] of Object.entries(over)) {
    if (value !== null && value !== undefined) out[key] = merge(base[key], value);
  }
  return out;
}
