/**
 * Typed readers for request members, for both wire forms: Query parameters (all strings) and JSON
 * 1.0 bodies (typed values). Missing and malformed members fail with the service's own errors
 * (`FieldErrors`): SQS says `MissingParameter`/`InvalidParameterValue`, SNS says
 * `ValidationError`/`InvalidParameter`.
 */
import { commonError, snsError, sqsError, type MessagingError } from '../errors.js';
import type { Params } from './form.js';

/** How one service reports a missing or malformed member. */
export interface FieldErrors {
  missing(name: string): MessagingError;
  invalid(name: string, value: string, reason: string): MessagingError;
}

/** SQS wording (as AWS sends it). */
export const sqsFieldErrors: FieldErrors = {
  missing: (name) => sqsError('MissingParameter', `The request must contain the parameter ${name}.`),
  invalid: (name, value, reason) =>
    sqsError('InvalidParameterValue', `Value ${clip(value)} for parameter ${name} is invalid. Reason: ${reason}`),
};

/** SNS wording: AWS's request validator names the member in lower camel case. */
export const snsFieldErrors: FieldErrors = {
  missing: (name) =>
    snsError(
      'ValidationError',
      `1 validation error detected: Value null at '${name.charAt(0).toLowerCase()}${name.slice(1)}' failed to satisfy constraint: Member must not be null`,
    ),
  invalid: (name, _value, reason) => snsError('InvalidParameter', `Invalid parameter: ${name} Reason: ${reason}`),
};

function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}

const INTEGER = /^-?\d{1,15}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The scalar readers both wire formats offer, so a request made of scalars is parsed once for both. */
export interface ScalarFields {
  readonly errors: FieldErrors;
  /** The member, or undefined when absent. */
  str(name: string): string | undefined;
  /** The member; absent or empty fails with `missing`. */
  req(name: string): string;
  /** An integer member (Query: decimal digits only; JSON: a whole number). */
  int(name: string): number | undefined;
  /** A boolean member (Query: `true` or `false` in any case; JSON: a boolean). */
  bool(name: string): boolean | undefined;
  /** A base64 member, decoded. */
  binary(name: string): Uint8Array | undefined;
}

/** Typed access to Query parameters, failing with one service's errors. */
export interface QueryFields extends ScalarFields {
  readonly params: Params;
  /** The same readers over a subset of the parameters (a batch entry, a map entry). */
  sub(params: Params): QueryFields;
}

/** Readers over `params`. */
export function queryFields(params: Params, errors: FieldErrors): QueryFields {
  return {
    params,
    errors,
    str: (name) => params.get(name),
    req(name) {
      const value = params.get(name);
      if (value === undefined || value === '') throw errors.missing(name);
      return value;
    },
    int(name) {
      const value = params.get(name);
      if (value === undefined) return undefined;
      if (!INTEGER.test(value.trim())) throw errors.invalid(name, value, 'Must be an integer.');
      return Number(value.trim());
    },
    bool(name) {
      const value = params.get(name);
      if (value === undefined) return undefined;
      const lower = value.toLowerCase();
      if (lower !== 'true' && lower !== 'false') throw errors.invalid(name, value, 'Must be true or false.');
      return lower === 'true';
    },
    binary(name) {
      const value = params.get(name);
      return value === undefined ? undefined : decodeBase64(value, name, errors);
    },
    sub: (subset) => queryFields(subset, errors),
  };
}

/** A decoded JSON 1.0 request body. */
export type JsonObject = Readonly<Record<string, unknown>>;

/** Parses a JSON 1.0 body (empty means `{}`); anything but an object is a serialization error. */
export function parseJsonBody(text: string): JsonObject {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw commonError('SerializationException', 'The request body is not valid JSON.');
  }
  if (!isObject(value)) throw commonError('SerializationException', 'The request body must be a JSON object.');
  return value;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function wrongType(name: string, expected: string): MessagingError {
  return commonError('SerializationException', `${name} must be ${expected}.`);
}

/** Typed access to a JSON 1.0 body; a wrong JSON type is a `SerializationException`. */
export interface JsonFields extends ScalarFields {
  readonly body: JsonObject;
  /** A list of strings; absent is empty. */
  strings(name: string): string[];
  /** A map of strings to strings; absent is empty. */
  stringMap(name: string): Record<string, string>;
  /** A map of structures (message attributes), each with its own readers. */
  objectMap(name: string): [string, JsonFields][];
  /** A list of structures (batch entries); absent is empty. */
  objects(name: string): JsonFields[];
  /** A list of base64 strings, decoded. */
  binaries(name: string): Uint8Array[];
}

/** Readers over `body`. */
export function jsonFields(body: JsonObject, errors: FieldErrors): JsonFields {
  const present = (name: string): unknown => {
    const value = body[name];
    return value === null ? undefined : value;
  };
  const str = (name: string): string | undefined => {
    const value = present(name);
    if (value !== undefined && typeof value !== 'string') throw wrongType(name, 'a string');
    return value;
  };
  const strings = (name: string): string[] => {
    const value = present(name);
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw wrongType(name, 'a list of strings');
    return value;
  };
  return {
    body,
    errors,
    str,
    req(name) {
      const value = str(name);
      if (value === undefined || value === '') throw errors.missing(name);
      return value;
    },
    int(name) {
      const value = present(name);
      if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value))) throw wrongType(name, 'an integer');
      return value;
    },
    bool(name) {
      const value = present(name);
      if (value !== undefined && typeof value !== 'boolean') throw wrongType(name, 'a boolean');
      return value;
    },
    binary(name) {
      const value = str(name);
      return value === undefined ? undefined : decodeBase64(value, name, errors);
    },
    strings,
    stringMap(name) {
      const value = present(name);
      if (value === undefined) return {};
      if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        throw wrongType(name, 'a map of strings');
      }
      return { ...(value as Record<string, string>) };
    },
    objectMap(name) {
      const value = present(name);
      if (value === undefined) return [];
      if (!isObject(value) || !Object.values(value).every(isObject)) throw wrongType(name, 'a map of structures');
      return Object.entries(value).map(([k, v]) => [k, jsonFields(v as JsonObject, errors)]);
    },
    objects(name) {
      const value = present(name);
      if (value === undefined) return [];
      if (!Array.isArray(value) || !value.every(isObject)) throw wrongType(name, 'a list of structures');
      return value.map((v) => jsonFields(v, errors));
    },
    binaries: (name) => strings(name).map((v) => decodeBase64(v, name, errors)),
  };
}

function decodeBase64(value: string, name: string, errors: FieldErrors): Uint8Array {
  const compact = value.replace(/\s+/g, '');
  if (!BASE64.test(compact)) throw errors.invalid(name, value, 'Must be base64-encoded.');
  return Buffer.from(compact, 'base64');
}
