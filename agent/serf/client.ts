/**
 * Typed Serf RPC client over one connection: every command an agent or operator needs, with wire
 * records decoded into plain values. Mirrors hashicorp/serf's own `client` package.
 */
import net from 'node:net';
import { MEMBER_EVENT_TYPES, type Member, type MemberEventType, type MemberStatus } from '../../core/contracts.js';
import { wireInt } from './codec.js';
import { SerfConnection, type ConnectionOptions } from './connection.js';
import { Command, type WireKeyResponse, type WireMember } from './protocol.js';
import { RecordQueue } from './queue.js';
import { detach } from '../../core/errors.js';

/** A user event record from a stream. */
export interface UserEvent {
  readonly type: 'user';
  readonly ltime: number;
  readonly name: string;
  readonly payload: Buffer;
  readonly coalesce: boolean;
}

/** A query record from a stream; `respond` answers it on the connection that received it. */
export interface QueryEvent {
  readonly type: 'query';
  readonly id: number;
  readonly ltime: number;
  readonly name: string;
  readonly payload: Buffer;
  respond(payload: Uint8Array): Promise<void>;
}

/** A (coalesced) member event record from a stream. */
export interface MemberEvent {
  readonly type: MemberEventType;
  readonly members: readonly Member[];
}

/** Anything a `stream` subscription delivers. */
export type SerfEvent = UserEvent | QueryEvent | MemberEvent;

/** One record of a running query: an ack or a response from a node. */
export type QueryRecord =
  { readonly type: 'ack'; readonly from: string } | { readonly type: 'response'; readonly from: string; readonly payload: Buffer };

/** Parameters of a query. */
export interface QueryParams {
  readonly name: string;
  readonly payload?: Uint8Array;
  readonly filterNodes?: readonly string[];
  /** Tag name to Go regular expression (unanchored, as Serf matches it). */
  readonly filterTags?: Readonly<Record<string, string>>;
  readonly requestAck?: boolean;
  readonly relayFactor?: number;
  /** 0 or absent = Serf's default (3.2 s for small LAN clusters). */
  readonly timeoutMs?: number;
}

/** Result of the four key commands. */
export interface KeyResponse {
  readonly messages: Readonly<Record<string, string>>;
  readonly keys: Readonly<Record<string, number>>;
  readonly numNodes: number;
  readonly numErr: number;
  readonly numResp: number;
}

/** A network coordinate (Vivaldi) of one node. */
export interface Coordinate {
  readonly adjustment: number;
  readonly error: number;
  readonly height: number;
  readonly vec: readonly number[];
}

/** The typed client. Owns one connection; open a second one for a second role (stream vs admin). */
export class SerfClient {
  private constructor(readonly connection: SerfConnection) {}

  /** Opens a connection, handshakes and authenticates. */
  static async connect(opts: ConnectionOptions): Promise<SerfClient> {
    return new SerfClient(await SerfConnection.open(opts));
  }

  /** Closes the connection (pending calls reject with `ConnectionClosedError`). */
  close(): void {
    this.connection.close();
  }

  /** Every member Serf knows, including failed and left ones. */
  async members(): Promise<Member[]> {
    const body = await this.connection.request(Command.members);
    return decodeMembers(body?.Members);
  }

  /** Members matching anchored Go regular expressions on tags, status and name. */
  async membersFiltered(filter: { tags?: Record<string, string>; status?: string; name?: string }): Promise<Member[]> {
    const body = await this.connection.request(Command.membersFiltered, {
      Tags: filter.tags ?? {},
      Status: filter.status ?? '',
      Name: filter.name ?? '',
    });
    return decodeMembers(body?.Members);
  }

  /** Sets and deletes this node's tags (deletions first); gossips a `member-update`. */
  async tags(set: Record<string, string>, del: readonly string[] = []): Promise<void> {
    await this.connection.request(Command.tags, { Tags: set, DeleteTags: [...del] });
  }

  /** Fires a user event. RPC's default is not to coalesce (the serf CLI's default is to). */
  async event(name: string, payload: Uint8Array = Buffer.alloc(0), coalesce = false): Promise<void> {
    await this.connection.request(Command.event, { Name: name, Payload: Buffer.from(payload), Coalesce: coalesce });
  }

  /** Joins the given addresses; resolves with how many were joined. */
  async join(existing: readonly string[], replay = false): Promise<number> {
    const body = await this.connection.request(Command.join, { Existing: [...existing], Replay: replay }, 60_000);
    return Number(body?.Num ?? 0);
  }

  /** Gracefully leaves the cluster; the agent shuts down afterwards. */
  async leave(): Promise<void> {
    await this.connection.request(Command.leave).catch((err: Error) => {
      // The agent may close the connection as it exits instead of replying.
      if (err.name !== 'ConnectionClosedError') throw err;
    });
  }

  /** Marks a failed node as left; with `prune`, removes it entirely. */
  async forceLeave(node: string, prune = false): Promise<void> {
    await this.connection.request(Command.forceLeave, { Node: node, Prune: prune });
  }

  /** The agent's stats: sections of string values. */
  async stats(): Promise<Record<string, Record<string, string>>> {
    return ((await this.connection.request(Command.stats)) ?? {}) as Record<string, Record<string, string>>;
  }

  /** Installs a gossip key on every node. */
  installKey(key: string): Promise<KeyResponse> {
    return this.keyCommand(Command.installKey, { Key: key });
  }
  /** Makes an installed key the primary one. */
  useKey(key: string): Promise<KeyResponse> {
    return this.keyCommand(Command.useKey, { Key: key });
  }
  /** Removes a (non-primary) key from every node. */
  removeKey(key: string): Promise<KeyResponse> {
    return this.keyCommand(Command.removeKey, { Key: key });
  }
  /** Lists installed keys and how many nodes have each. */
  listKeys(): Promise<KeyResponse> {
    return this.keyCommand(Command.listKeys);
  }

  /** A node's network coordinate, or `undefined` when Serf has none. */
  async getCoordinate(node: string): Promise<Coordinate | undefined> {
    const body = await this.connection.request(Command.getCoordinate, { Node: node });
    if (!body?.Ok) return undefined;
    const c = (body.Coord ?? {}) as Record<string, unknown>;
    return {
      adjustment: Number(c.Adjustment ?? 0),
      error: Number(c.Error ?? 0),
      height: Number(c.Height ?? 0),
      vec: Array.isArray(c.Vec) ? c.Vec.map(Number) : [],
    };
  }

  /** Answers a query received on this connection. */
  async respond(id: number, payload: Uint8Array): Promise<void> {
    await this.connection.request(Command.respond, { ID: wireInt(id), Payload: Buffer.from(payload) });
  }

  /**
   * Subscribes to events matching a Serf filter (`*`, `user:NAME`, `query:NAME`, `member-join`, …,
   * comma-separated, no spaces). Iterate the result; `stop()` ends the subscription.
   */
  async stream(filter: string): Promise<RecordQueue<SerfEvent>> {
    let seq = 0;
    const queue = new RecordQueue<SerfEvent>(10_000, () => detach(this.connection.unsubscribe(seq), () => undefined));
    seq = await this.connection.subscribe(
      Command.stream,
      { Type: filter },
      {
        record: (body) => {
          const event = this.decodeEvent(body);
          if (event) queue.push(event);
        },
        end: (err) => queue.end(err),
      },
    );
    return queue;
  }

  /** Streams the agent's log lines at `level` and above (first its recent backlog). */
  async monitor(level = 'INFO'): Promise<RecordQueue<string>> {
    let seq = 0;
    const queue = new RecordQueue<string>(10_000, () => detach(this.connection.unsubscribe(seq), () => undefined));
    seq = await this.connection.subscribe(
      Command.monitor,
      { LogLevel: level },
      {
        record: (body) => queue.push(typeof body.Log === 'string' ? body.Log : ''),
        end: (err) => queue.end(err),
      },
    );
    return queue;
  }

  /** Sends a query; iterate the acks and responses, which end when Serf reports `done`. */
  async query(params: QueryParams): Promise<RecordQueue<QueryRecord>> {
    let seq = 0;
    const queue = new RecordQueue<QueryRecord>(100_000, () => detach(this.connection.unsubscribe(seq), () => undefined));
    seq = await this.connection.subscribe(
      Command.query,
      {
        FilterNodes: [...(params.filterNodes ?? [])],
        FilterTags: { ...params.filterTags },
        RequestAck: params.requestAck ?? false,
        RelayFactor: params.relayFactor ?? 0,
        // Nanoseconds as int64: a plain number over 2^32 would go out as a float Go refuses.
        Timeout: BigInt(Math.round(params.timeoutMs ?? 0)) * 1_000_000n,
        Name: params.name,
        Payload: Buffer.from(params.payload ?? Buffer.alloc(0)),
      },
      {
        record: (body) => {
          const from = typeof body.From === 'string' ? body.From : '';
          // Serf emits zero-value records (empty From) before `done` (hashicorp/serf#408).
          if (!from) return;
          if (body.Type === 'ack') queue.push({ type: 'ack', from });
          else if (body.Type === 'response') queue.push({ type: 'response', from, payload: toBuffer(body.Payload) });
        },
        end: (err) => queue.end(err),
      },
    );
    return queue;
  }

  private async keyCommand(command: Command, body?: object): Promise<KeyResponse> {
    const r = (await this.connection.request(command, body)) as Partial<WireKeyResponse> | undefined;
    return {
      messages: r?.Messages ?? {},
      keys: r?.Keys ?? {},
      numNodes: Number(r?.NumNodes ?? 0),
      numErr: Number(r?.NumErr ?? 0),
      numResp: Number(r?.NumResp ?? 0),
    };
  }

  private decodeEvent(body: Record<string, unknown>): SerfEvent | undefined {
    if (body.Event === 'user') {
      return {
        type: 'user',
        ltime: Number(body.LTime),
        name: String(body.Name),
        payload: toBuffer(body.Payload),
        coalesce: Boolean(body.Coalesce),
      };
    }
    if (body.Event === 'query') {
      const id = Number(body.ID);
      return {
        type: 'query',
        id,
        ltime: Number(body.LTime),
        name: String(body.Name),
        payload: toBuffer(body.Payload),
        respond: (payload) => this.respond(id, payload),
      };
    }
    if ((MEMBER_EVENT_TYPES as readonly unknown[]).includes(body.Event)) {
      return { type: body.Event as MemberEventType, members: decodeMembers(body.Members) };
    }
    return undefined;
  }
}

function toBuffer(v: unknown): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return Buffer.from(v);
  return Buffer.alloc(0);
}

const STATUSES: readonly MemberStatus[] = ['alive', 'leaving', 'left', 'failed', 'none'];

/** Decodes Serf member records; tolerant of nil tags and 4- or 16-byte addresses. */
export function decodeMembers(raw: unknown): Member[] {
  if (!Array.isArray(raw)) return [];
  return (raw as WireMember[]).map((m) => ({
    name: String(m.Name),
    addr: formatAddr(m.Addr),
    port: Number(m.Port ?? 0),
    tags: { ...(m.Tags ?? {}) },
    status: (STATUSES as readonly string[]).includes(m.Status) ? (m.Status as MemberStatus) : 'none',
  }));
}

/** Formats Go's `net.IP` bytes; IPv4-mapped IPv6 addresses print as IPv4. */
export function formatAddr(raw: Uint8Array | null | undefined): string {
  if (!raw || raw.length === 0) return '';
  const b = Buffer.from(raw);
  if (b.length === 4) return [...b].join('.');
  if (b.length === 16) {
    const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
    if (mapped) return [...b.subarray(12)].join('.');
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    const text = groups.join(':');
    return net.isIPv6(text) ? text : b.toString('hex');
  }
  return b.toString('hex');
}
