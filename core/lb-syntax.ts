/**
 * The small rules every part of the load balancer code shares (core/lb-record.ts's records): the
 * error a broken rule throws, and what a host name and a path may hold. They live on the ground
 * floor so that the registry's checks (src/lb/) and the renderer (roles/gateway/lb/), which tests
 * the same patterns again before a value reaches HAProxy's config, use one copy and cannot drift.
 */

/** A record or a flag that breaks a rule; `field` names the offending field. */
export class LbRecordError extends Error {
  override readonly name = 'LbRecordError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** Throws `LbRecordError(field, reason)` unless `ok`. */
export function check(ok: boolean, field: string, reason: string): asserts ok {
  if (!ok) throw new LbRecordError(field, reason);
}

/** Code-point order: the same on every gateway, whatever its locale (names are ASCII). */
export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A DNS label: a-z, 0-9 and `-`, at most 63, not starting or ending with `-`. */
export const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Is `text` a lower-case DNS name (labels of a-z 0-9 -, at most 253 characters, no trailing dot)? */
export function isHostName(text: string): boolean {
  return text.length <= 253 && text.split('.').every((l) => LABEL.test(l));
}

/**
 * Can an ACME CA issue for `host`? It needs a registered-looking name: at least two labels, and a
 * last label that is not all digits (`10.0.0.1` is an address, and no top-level domain is numeric).
 */
export function isAcmeHostName(host: string): boolean {
  const labels = host.split('.');
  return isHostName(host) && labels.length >= 2 && !/^\d+$/.test(labels[labels.length - 1]);
}

/** Longest path prefix or health path. */
export const MAX_PATH = 256;

/**
 * A path prefix or health path: `/` then RFC 3986 path characters, less every one HAProxy's config
 * parser acts on. Out are quotes and `\` (HAProxy unquotes and unescapes a word, so `\r\n` would
 * end the health check's request line and add headers), `$` (`"${VAR}"` expands an environment
 * variable), `#` (a comment), space (ends the word), `{}` (an inline ACL), and `;` (the runtime
 * API's command separator, for a path that ever goes through it). `%` only as a percent-encoding.
 */
export const LB_SAFE_PATH = /^\/(?:[A-Za-z0-9._~!&()*+,=:@/-]|%[0-9A-Fa-f]{2})*$/;

/** Is `text` a path {@link LB_SAFE_PATH} allows, at most {@link MAX_PATH} long? */
export function isSafePath(text: string): boolean {
  return text.length <= MAX_PATH && LB_SAFE_PATH.test(text);
}
