/** Typed errors of the Serf RPC client; `fromSerfError` is the one translator from wire text. */
import { SerfErrorText } from './protocol.js';

/** Serf answered a request with a non-empty `Error` header. */
export class SerfRpcError extends Error {
  override readonly name: string = 'SerfRpcError';
  /** The command that failed. */
  readonly command: string;
  constructor(command: string, message: string, options?: ErrorOptions) {
    super(`serf ${command}: ${message}`, options);
    this.command = command;
  }
}

/** The agent rejected the RPC auth key (or one was needed and none was given). */
export class SerfAuthError extends SerfRpcError {
  override readonly name: string = 'SerfAuthError';
}

/** The connection closed (or could not be opened) before the request was answered. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  constructor(message = 'serf RPC connection closed', options?: ErrorOptions) {
    super(message, options);
  }
}

/** No reply within the request timeout; the connection stays open and a late reply is dropped. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
}

/** The peer sent something that is not valid Serf RPC; the connection is closed after this. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A request was refused before it reached the wire, e.g. a payload over Serf's size limit. */
export class RequestTooLargeError extends Error {
  override readonly name = 'RequestTooLargeError';
}

/** Turns a Serf error header into the matching typed error. */
export function fromSerfError(command: string, text: string, body?: unknown): SerfRpcError {
  const err =
    text === SerfErrorText.authRequired || text === SerfErrorText.invalidAuthToken
      ? new SerfAuthError(command, text)
      : new SerfRpcError(command, text);
  if (body !== undefined) Object.defineProperty(err, 'body', { value: body, enumerable: false });
  return err;
}
