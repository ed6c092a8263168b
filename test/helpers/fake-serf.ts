/**
 * A small fake Serf RPC server for the protocol edge cases a real `serf agent` cannot produce on
 * demand: truncated frames, garbage, unknown Seqs, replies delayed or withheld. It listens on
 * 127.0.0.1:0, decodes each client's requests from one continuous msgpack stream, answers
 * handshake and auth like Serf does by default, and lets a test script any other reply.
 *
 * The server keeps its own table of body-less requests instead of importing the
 * client's, so a client that sends a body to `members` shows up as a stray value, not as a request.
 */
import net from 'node:net';
import { Unpackr } from 'msgpackr';
import { encodeValue } from '../../agent/serf/codec.js';

// Serf's request loop reads no body for these commands.
const NO_REQUEST_BODY = new Set(['members', 'list-keys', 'stats', 'leave']);

/** A decoded request header. */
export interface FakeRequest {
  readonly Command: string;
  readonly Seq: number;
}

/** One request as the server saw it, with the exact bytes of its body. */
export interface ReceivedRequest {
  readonly req: FakeRequest;
  readonly body: Record<string, unknown> | undefined;
  /** The body's msgpack bytes as they came off the wire (undefined for body-less commands). */
  readonly rawBody: Buffer | undefined;
  /** Which connection (1-based, in accept order) sent it. */
  readonly client: number;
}

/** Answers one request; it replaces the server's default behaviour for that command. */
export type CommandHandler = (req: FakeRequest, body: Record<string, unknown> | undefined, client: FakeClient) => void;

/** One accepted client connection. */
export class FakeClient {
  /** Requests received on this connection, in order. */
  readonly requests: ReceivedRequest[] = [];
  /** Values that arrived where a request header belonged (e.g. a body sent to `members`). */
  readonly strays: unknown[] = [];
  private tail: Buffer | undefined;
  private awaitingBody: FakeRequest | undefined;

  constructor(
    readonly socket: net.Socket,
    /** 1-based accept order. */
    readonly id: number,
    private readonly dispatch: (
      req: FakeRequest,
      body: Record<string, unknown> | undefined,
      raw: Buffer | undefined,
      c: FakeClient,
    ) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
  }

  /** Writes each value as one msgpack value, all in one write. */
  send(values: readonly unknown[]): void {
    this.sendRaw(Buffer.concat(values.map((v) => encodeValue(v))));
  }

  /** Writes bytes as they are. */
  sendRaw(buf: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(buf);
  }

  /** Sends a response header (and a body, when given) in one write, like Serf does. */
  reply(seq: number, error = '', body?: object): void {
    this.send(body === undefined ? [{ Seq: seq, Error: error }] : [{ Seq: seq, Error: error }, body]);
  }

  /** Closes this connection from the server side. */
  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const buf = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    this.tail = undefined;
    let consumed = 0;
    try {
      unpackr.unpackMultiple(buf, (value: unknown, start?: number, end?: number) => {
        consumed = end ?? buf.length;
        this.onValue(value, buf.subarray(start ?? 0, end));
      });
    } catch (err) {
      if (!(err as { incomplete?: boolean }).incomplete) {
        // Like Serf on an undecodable request: give up on the connection without a reply.
        this.strays.push(err);
        this.socket.destroy();
        return;
      }
      this.tail = Buffer.from(buf.subarray((err as { lastPosition?: number }).lastPosition ?? consumed));
    }
  }

  private onValue(value: unknown, raw: Buffer): void {
    const pending = this.awaitingBody;
    if (pending) {
      this.awaitingBody = undefined;
      this.deliver(pending, value as Record<string, unknown>, Buffer.from(raw));
      return;
    }
    const v = value as Partial<FakeRequest> | null;
    if (typeof v !== 'object' || v === null || typeof v.Command !== 'string' || v.Seq === undefined) {
      this.strays.push(value);
      return;
    }
    const req: FakeRequest = { Command: v.Command, Seq: Number(v.Seq) };
    if (NO_REQUEST_BODY.has(req.Command)) this.deliver(req, undefined, undefined);
    else this.awaitingBody = req;
  }

  private deliver(req: FakeRequest, body: Record<string, unknown> | undefined, raw: Buffer | undefined): void {
    this.requests.push({ req, body, rawBody: raw, client: this.id });
    this.dispatch(req, body, raw, this);
  }
}

// The same decoding the task brief prescribes; int64 values arrive as BigInt.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Options of the fake. */
export interface FakeSerfOptions {
  /** When set, `auth` must carry this key (Serf's `rpc_auth`). */
  readonly authKey?: string;
  /** Port to listen on; 0 (default) picks a free one. */
  readonly port?: number;
}

/** The fake server. Create with {@link startFakeSerf}. */
export class FakeSerf {
  /** Every client ever accepted, in accept order. */
  readonly clients: FakeClient[] = [];
  private readonly handlers = new Map<string, CommandHandler>();
  private readonly connectionWaiters: { n: number; resolve: (c: FakeClient) => void }[] = [];

  constructor(
    private readonly server: net.Server,
    private readonly opts: FakeSerfOptions,
  ) {
    server.on('connection', (socket) => {
      const client = new FakeClient(socket, this.clients.length + 1, (req, body, _raw, c) => this.handle(req, body, c));
      this.clients.push(client);
      for (const w of this.connectionWaiters.filter((x) => x.n <= this.clients.length)) {
        this.connectionWaiters.splice(this.connectionWaiters.indexOf(w), 1);
        w.resolve(this.clients[w.n - 1]);
      }
    });
  }

  /** `127.0.0.1:<port>`, for `ConnectionOptions.addr`. */
  get addr(): string {
    const a = this.server.address() as net.AddressInfo;
    return `127.0.0.1:${a.port}`;
  }

  /** How many connections were accepted so far. */
  get connectionCount(): number {
    return this.clients.length;
  }

  /** How many client connections are open right now. */
  get openConnections(): number {
    return this.clients.filter((c) => !c.socket.destroyed).length;
  }

  /** Every request on every connection, in arrival order per connection, connections in order. */
  get requests(): ReceivedRequest[] {
    return this.clients.flatMap((c) => c.requests);
  }

  /** Requests for one command, across connections. */
  requestsFor(command: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.req.Command === command);
  }

  /** The most recently accepted client. */
  get last(): FakeClient {
    const c = this.clients.at(-1);
    if (!c) throw new Error('fake serf: no client connected yet');
    return c;
  }

  /** Replaces the behaviour for `command` (handshake and auth included). */
  onCommand(command: string, handler: CommandHandler): void {
    this.handlers.set(command, handler);
  }

  /** Sends values to the most recent client. */
  send(values: readonly unknown[]): void {
    this.last.send(values);
  }

  /** Sends raw bytes to the most recent client. */
  sendRaw(buf: Buffer): void {
    this.last.sendRaw(buf);
  }

  /** Closes every client connection from the server side. */
  closeClients(): void {
    for (const c of this.clients) c.close();
  }

  /** Resolves with the n-th (1-based) accepted client, once it has connected. */
  waitForConnection(n: number): Promise<FakeClient> {
    if (this.clients.length >= n) return Promise.resolve(this.clients[n - 1]);
    return new Promise((resolve) => this.connectionWaiters.push({ n, resolve }));
  }

  /** Stops listening and drops every client. */
  async close(): Promise<void> {
    this.closeClients();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: FakeRequest, body: Record<string, unknown> | undefined, c: FakeClient): void {
    const custom = this.handlers.get(req.Command);
    if (custom) {
      custom(req, body, c);
      return;
    }
    switch (req.Command) {
      case 'auth': {
        const ok = this.opts.authKey === undefined || body?.AuthKey === this.opts.authKey;
        c.reply(req.Seq, ok ? '' : 'Invalid authentication token');
        return;
      }
      case 'members':
      case 'members-filtered':
        c.reply(req.Seq, '', { Members: [] });
        return;
      case 'stats':
        c.reply(req.Seq, '', {});
        return;
      case 'join':
        c.reply(req.Seq, '', { Num: 1 });
        return;
      default:
        // handshake, stream, stop, query, respond, event, tags, …: a header-only success.
        c.reply(req.Seq);
    }
  }
}

/** Starts a fake Serf RPC server on 127.0.0.1 and an ephemeral port. */
export async function startFakeSerf(opts: FakeSerfOptions = {}): Promise<FakeSerf> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  return new FakeSerf(server, opts);
}
