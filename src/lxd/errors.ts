/**
 * Typed errors of the LXD client, and the one place that maps what LXD answers to them
 * ({@link fromLxdError}). Callers branch on the class (`instanceof LxdNotFoundError`), never on
 * LXD's message text, which changes between releases.
 */
import type { LxdOperation } from './types.js';

/** Options of every LXD error: the transport error as `cause`, the failed operation when there was one. */
export interface LxdErrorOptions extends ErrorOptions {
  readonly operation?: LxdOperation;
}

/** Anything the LXD client reports; `status` is the HTTP status when LXD answered. */
export class LxdError extends Error {
  override readonly name: string = 'LxdError';
  /** The background operation that failed or timed out, when the error comes from one. */
  readonly operation: LxdOperation | undefined;
  constructor(
    message: string,
    /** The HTTP status (or the operation's status code), 0 when LXD never answered. */
    readonly status = 0,
    options?: LxdErrorOptions,
  ) {
    super(message, options);
    this.operation = options?.operation;
  }
}

/** The object does not exist (404). */
export class LxdNotFoundError extends LxdError {
  override readonly name = 'LxdNotFoundError';
}

/** The object already exists, or is in a state that forbids the request (409). */
export class LxdConflictError extends LxdError {
  override readonly name = 'LxdConflictError';
}

/** The ETag sent with `If-Match` is stale: someone changed the object since it was read (412). */
export class LxdPreconditionFailedError extends LxdError {
  override readonly name = 'LxdPreconditionFailedError';
}

/** LXD refused the request as malformed or invalid (400). */
export class LxdBadRequestError extends LxdError {
  override readonly name = 'LxdBadRequestError';
}

/** The caller is not allowed (403): not trusted, or a restricted project. */
export class LxdForbiddenError extends LxdError {
  override readonly name = 'LxdForbiddenError';
}

/** LXD could not be reached: no socket, nobody listening, or no permission on the socket. */
export class LxdConnectionError extends LxdError {
  override readonly name = 'LxdConnectionError';
}

/** LXD answered with something that is not an LXD envelope. */
export class LxdProtocolError extends LxdError {
  override readonly name = 'LxdProtocolError';
}

/**
 * A request or an operation did not finish in time. For an operation, `operation` is its last
 * known state: it may still be running in LXD (cancel it, or look at the object later).
 */
export class LxdTimeoutError extends LxdError {
  override readonly name = 'LxdTimeoutError';
}

/**
 * A background operation ended in Failure or Cancelled and LXD's reason (`operation.err`) fits no
 * narrower class.
 */
export class LxdOperationError extends LxdError {
  override readonly name = 'LxdOperationError';
}

/** The server lacks API extensions this client needs (see `api_extensions` in `GET /1.0`). */
export class LxdMissingExtensionError extends LxdError {
  override readonly name = 'LxdMissingExtensionError';
  constructor(readonly missing: readonly string[]) {
    super(`LXD lacks the API extension${missing.length === 1 ? '' : 's'} ${missing.join(', ')}`);
  }
}

// LXD 5.0 reports some conflicts and misses as 500s or as failed operations; these are the
// messages it uses for them ("The profile already exists", "This \"instances\" entry already
// exists", "The instance is already running", "Requested profile \"x\" doesn't exist"). Kept
// here so no caller matches text.
const ALREADY_EXISTS = /\balready (?:exists|running|stopped|frozen)\b/i;
const DOES_NOT_EXIST = /\b(?:doesn't|does not) exist\b|\bnot found\b/i;

/** The HTTP status an LXD message really means, for the 500s and failures LXD 5.0 gives unclassified. */
function classify(status: number, message: string): number {
  if (status !== 500 && status !== 400) return status;
  if (ALREADY_EXISTS.test(message)) return 409;
  if (status === 500 && DOES_NOT_EXIST.test(message)) return 404;
  return status;
}

/**
 * Maps an LXD error answer (`type: error`, or any status ≥ 400) to a typed error. `what` says
 * which request failed (`GET /1.0/instances/c1`), so the message stands on its own in a log.
 */
export function fromLxdError(status: number, message: string, what: string, options?: LxdErrorOptions): LxdError {
  const text = `${what}: ${message || `HTTP ${status}`}`;
  switch (classify(status, message)) {
    case 400:
      return new LxdBadRequestError(text, status, options);
    case 403:
      return new LxdForbiddenError(text, status, options);
    case 404:
      return new LxdNotFoundError(text, status, options);
    case 409:
      return new LxdConflictError(text, status, options);
    case 412:
      return new LxdPreconditionFailedError(text, status, options);
    default:
      return new LxdError(text, status, options);
  }
}

/**
 * Maps a background operation that ended in Failure (400) or Cancelled (401): a conflict or a
 * miss when LXD's reason says so, else {@link LxdOperationError}; the operation rides along.
 */
export function fromOperationFailure(op: LxdOperation, what: string): LxdError {
  const reason = op.err || op.status;
  // Only conflicts: a "doesn't exist" in a failed operation is usually about something else (a
  // parent device, a file), not the object the request named.
  if (ALREADY_EXISTS.test(reason)) return new LxdConflictError(`${what}: ${reason}`, op.status_code, { operation: op });
  return new LxdOperationError(`${what}: ${reason}`, op.status_code, { operation: op });
}

/** Node's socket error codes that mean "LXD is not there (for us)". */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM', 'ENOTSOCK', 'ECONNRESET', 'EPIPE']);

/** Wraps a transport error (no answer from LXD) into a typed error, keeping it as `cause`. */
export function fromTransportError(err: unknown, socketPath: string, what: string): LxdError {
  if (err instanceof LxdError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason = err instanceof Error ? err.message : String(err);
  if (code !== undefined && UNREACHABLE.has(code)) {
    return new LxdConnectionError(`${what}: cannot reach LXD at ${socketPath}: ${reason}`, 0, { cause: err });
  }
  return new LxdError(`${what}: ${reason}`, 0, { cause: err });
}
