/**
 * Serf's msgpack RPC ("IPC") protocol, as spoken by `serf agent` 0.9.4 (Debian 12) through 0.10.x.
 *
 * There is no framing: each message is one self-delimiting msgpack value, written back to back on a
 * TCP connection. A request is a header `{Command, Seq}` optionally followed by a body map; a
 * response is a header `{Seq, Error}` optionally followed by a body. Which commands carry a body is
 * fixed per command (tables below) — sending a body to a body-less command, or leaving a response
 * body unread, desynchronises the connection. Streams (`stream`, `monitor`, `query`) first answer
 * with a body-less header, then send records: a header with the same Seq followed by a record body.
 * Bodies never have a top-level `Seq` key and headers always do, which is how the decoder tells them
 * apart and recovers when its expectation was wrong.
 *
 * The Go side decodes into typed structs: string fields must be msgpack `str`, payloads `bin`,
 * integers must never be floats (msgpackr writes numbers ≥ 2^32 as float64, so those go as BigInt).
 * Each rule is pinned by a test against a real `serf agent` (test/agent/serf, test/integration).
 */

/** Every RPC command name, as Serf spells it. */
export const Command = {
  handshake: 'handshake',
  auth: 'auth',
  event: 'event',
  forceLeave: 'force-leave',
  join: 'join',
  members: 'members',
  membersFiltered: 'members-filtered',
  tags: 'tags',
  stream: 'stream',
  monitor: 'monitor',
  stop: 'stop',
  leave: 'leave',
  query: 'query',
  respond: 'respond',
  installKey: 'install-key',
  useKey: 'use-key',
  removeKey: 'remove-key',
  listKeys: 'list-keys',
  stats: 'stats',
  getCoordinate: 'get-coordinate',
} as const;
/** One RPC command name. */
export type Command = (typeof Command)[keyof typeof Command];

/** Commands whose request has no body: sending one makes Serf run the command twice. */
export const REQUEST_WITHOUT_BODY: ReadonlySet<Command> = new Set([Command.members, Command.listKeys, Command.stats, Command.leave]);

/** Commands whose successful (and, for most, failed) response header is followed by a body. */
export const RESPONSE_WITH_BODY: ReadonlySet<Command> = new Set([
  Command.join,
  Command.members,
  Command.membersFiltered,
  Command.installKey,
  Command.useKey,
  Command.removeKey,
  Command.listKeys,
  Command.stats,
  Command.getCoordinate,
]);

/** Commands that, once acknowledged, keep sending records under their Seq. */
export const STREAMING: ReadonlySet<Command> = new Set([Command.stream, Command.monitor, Command.query]);

/** Only IPC version Serf has ever supported. */
export const IPC_VERSION = 1;

/** Error strings Serf sends in response headers (ipc.go constants). */
export const SerfErrorText = {
  handshakeRequired: 'Handshake required',
  authRequired: 'Authentication required',
  unsupportedCommand: 'Unsupported command',
  unsupportedVersion: 'Unsupported IPC version',
  duplicateHandshake: 'Handshake already performed',
  invalidAuthToken: 'Invalid authentication token',
  streamExists: 'Stream with given sequence exists',
  invalidFilter: 'Invalid event filter',
  monitorExists: 'Monitor already exists',
  noPendingQuery: 'No pending queries matching ID',
} as const;

/**
 * Errors answered by Serf's request loop before the command runs: these headers never carry a
 * body, whatever the command, so the decoder must not wait for one.
 */
export const HEADER_ONLY_ERRORS: ReadonlySet<string> = new Set([
  SerfErrorText.handshakeRequired,
  SerfErrorText.authRequired,
  SerfErrorText.unsupportedCommand,
]);

/** Request header as written on the wire. */
export interface RequestHeader {
  Command: Command;
  Seq: number | bigint;
}

/** Response header as read from the wire. `Error` is `""` on success. */
export interface ResponseHeader {
  Seq: number;
  Error: string;
}

/** A member as Serf encodes it (Go field names). */
export interface WireMember {
  Name: string;
  Addr: Uint8Array | null;
  Port: number;
  Tags: Record<string, string> | null;
  Status: string;
  ProtocolMin?: number;
  ProtocolMax?: number;
  ProtocolCur?: number;
  DelegateMin?: number;
  DelegateMax?: number;
  DelegateCur?: number;
}

/** Stream record bodies as Serf encodes them. */
export type WireStreamRecord =
  | { Event: 'user'; LTime: number | bigint; Name: string; Payload: Uint8Array | null; Coalesce: boolean }
  | { Event: 'query'; ID: number | bigint; LTime: number | bigint; Name: string; Payload: Uint8Array | null }
  | { Event: string; Members: WireMember[] };

/** Records of the `query` command. */
export interface WireQueryRecord {
  Type: 'ack' | 'response' | 'done';
  From: string;
  Payload: Uint8Array | null;
}

/** Body of the four key commands. */
export interface WireKeyResponse {
  Messages: Record<string, string> | null;
  Keys: Record<string, number> | null;
  NumNodes: number;
  NumErr: number;
  NumResp: number;
}

/** Serf's default limits (serf/config.go); answers and payloads must stay below them. */
export const SerfLimits = {
  /** `user_event_size_limit`: name + payload before encoding. */
  userEventBytes: 512,
  /** `query_size_limit`: the whole encoded query message. */
  queryBytes: 1024,
  /** `query_response_size_limit`: the whole encoded response message. */
  queryResponseBytes: 1024,
  /** Encoding overhead of a query response besides the responder's node name (measured: 42). */
  queryResponseOverhead: 42,
  /** Encoded tags (memberlist MetaMaxSize). */
  tagsBytes: 512,
} as const;
