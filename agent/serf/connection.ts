/**
 * One RPC connection to a serf agent: the socket, the decode loop, and routing of responses and
 * stream records by Seq. It knows the wire rules of `protocol.ts` and nothing of mammatus.
 */
import net from 'node:net';
import type { Logger } from '../../core/contracts.js';
import { encodeMessage, StreamDecoder, wireInt } from './codec.js';
import { ConnectionClosedError, ProtocolError, RequestTimeoutError, fromSerfError } from './errors.js';
import { Command, HEADER_ONLY_ERRORS, IPC_VERSION, REQUEST_WITHOUT_BODY, RESPONSE_WITH_BODY, type ResponseHeader } from './protocol.js';
import { splitHostPort } from '../../core/net.js';
import { errorMessage } from '../../core/errors.js';

/** Options for opening a connection. */
export interface ConnectionOptions {
  /** `host:port` of the agent's RPC listener. */
  readonly addr: string;
  /** The agent's `rpc_auth` key; empty or absent when the agent has none. */
  readonly authKey?: string;
  readonly log?: Logger;
  readonly connectTimeoutMs?: number;
  /** Default time to wait for a reply before rejecting (streams are not limited). */
  readonly requestTimeoutMs?: number;
  /** Largest single msgpack value accepted from the agent. */
  readonly maxValueBytes?: number;
}

/** Callbacks of one stream subscription (`stream`, `monitor` or `query`). */
export interface StreamSink {
  record(body: Record<string, unknown>): void;
  /** Called once: on `stop`, on the end of a query, or with the error that closed the connection. */
  end(err?: Error): void;
}

interface PendingRequest {
  readonly command: Command;
  resolve(body: Record<string, unknown> | undefined): void;
  reject(err: Error): void;
}

interface ActiveStream {
  readonly command: Command;
  sink: StreamSink;
  acked: boolean;
  ack: PendingRequest;
}

type Expectation = { kind: 'response'; pending: PendingRequest; header: ResponseHeader } | { kind: 'record'; stream: ActiveStream };

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && Object.getPrototypeOf(v) === Object.prototype;

/** A live, handshaken (and authenticated) RPC connection. Create with {@link SerfConnection.open}. */
export class SerfConnection {
  private seq = 0;
  private readonly pending = new Map<number, PendingRequest>();
  private readonly streams = new Map<number, ActiveStream>();
  private expect: Expectation | undefined;
  private closeError: Error | undefined;
  private readonly decoder: StreamDecoder;
  private readonly closeListeners: ((err: Error) => void)[] = [];

  private constructor(
    private readonly socket: net.Socket,
    private readonly opts: ConnectionOptions,
  ) {
    this.decoder = new StreamDecoder(opts.maxValueBytes ?? 8 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new ConnectionClosedError(`serf RPC ${opts.addr}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new ConnectionClosedError(`serf RPC ${opts.addr}: connection closed by agent`)));
  }

  /** Connects, performs the handshake and, when a key is given, authenticates. */
  static async open(opts: ConnectionOptions): Promise<SerfConnection> {
    const { host, port } = splitHostPort(opts.addr);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ConnectionClosedError(`serf RPC ${opts.addr}: connect timed out`));
      }, opts.connectTimeoutMs ?? 5000);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new ConnectionClosedError(`serf RPC ${opts.addr}: ${err.message}`, { cause: err }));
      });
    });
    socket.setNoDelay(true);
    const conn = new SerfConnection(socket, opts);
    try {
      // A serf that accepts but never answers must not hold a caller (or a shutdown) for long.
      const setupTimeout = opts.connectTimeoutMs ?? 5000;
      await conn.request(Command.handshake, { Version: IPC_VERSION }, setupTimeout);
      if (opts.authKey) await conn.request(Command.auth, { AuthKey: opts.authKey }, setupTimeout);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  /** True once the connection is closed; every later call rejects. */
  get isClosed(): boolean {
    return this.closeError !== undefined;
  }

  /** Registers a listener for the close of this connection (called once, with the reason). */
  onClose(listener: (err: Error) => void): void {
    if (this.closeError) listener(this.closeError);
    else this.closeListeners.push(listener);
  }

  /**
   * Sends one command and resolves with its response body (or `undefined` for body-less commands).
   * Rejects with `SerfRpcError` on an error header, `ConnectionClosedError` if the connection goes
   * away first, and `RequestTimeoutError` when no reply came within `timeoutMs`.
   */
  request(command: Command, body?: object, timeoutMs = this.opts.requestTimeoutMs ?? 30_000): Promise<Record<string, unknown> | undefined> {
    if (this.closeError) return Promise.reject(this.closeError);
    const seq = this.nextSeq();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The late reply (and its body, which has no Seq) will be dropped as unknown.
        this.pending.delete(seq);
        reject(new RequestTimeoutError(`serf ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(seq, {
        command,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.write(command, seq, body);
    });
  }

  /**
   * Starts a streaming command and feeds its records to `sink`. Resolves with the stream's Seq once
   * the agent acknowledged it (rejects if it refused).
   */
  subscribe(command: Command, body: object, sink: StreamSink): Promise<number> {
    if (this.closeError) return Promise.reject(this.closeError);
    const seq = this.nextSeq();
    return new Promise((resolve, reject) => {
      const stream: ActiveStream = {
        command,
        sink,
        acked: false,
        ack: { command, resolve: () => resolve(seq), reject },
      };
      this.streams.set(seq, stream);
      this.write(command, seq, body);
    });
  }

  /** Stops a stream or monitor; records already in flight for it are dropped. */
  async unsubscribe(seq: number): Promise<void> {
    const stream = this.streams.get(seq);
    if (!stream) return;
    this.streams.delete(seq);
    stream.sink.end();
    if (stream.command !== Command.query && !this.closeError) {
      await this.request(Command.stop, { Stop: wireInt(seq) }).catch(() => undefined);
    }
  }

  /** Closes the socket; pending calls reject with `ConnectionClosedError`, streams end. */
  close(): void {
    this.fail(new ConnectionClosedError('serf RPC connection closed by client'), true);
  }

  private nextSeq(): number {
    this.seq = this.seq >= 2 ** 31 ? 1 : this.seq + 1;
    return this.seq;
  }

  private write(command: Command, seq: number, body: object | undefined): void {
    const frame = REQUEST_WITHOUT_BODY.has(command)
      ? encodeMessage({ Command: command, Seq: seq })
      : encodeMessage({ Command: command, Seq: seq }, body ?? {});
    this.socket.write(frame);
  }

  private onData(chunk: Buffer): void {
    try {
      for (const value of this.decoder.push(chunk)) this.route(value);
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError(`serf RPC: ${errorMessage(err)}`, { cause: err });
      this.opts.log?.error({ err: e, addr: this.opts.addr }, 'serf RPC protocol error; closing connection');
      this.fail(e);
    }
  }

  private route(value: unknown): void {
    if (!isMap(value)) throw new ProtocolError(`serf RPC: expected a map, got ${describe(value)}`);
    const hasSeq = 'Seq' in value;
    const expected = this.expect;
    this.expect = undefined;
    if (expected && !hasSeq) {
      if (expected.kind === 'record') this.deliverRecord(expected.stream, value);
      else settle(expected.pending, expected.header, value);
      return;
    }
    if (expected?.kind === 'response') {
      // The agent sent a header where a body belonged; answer the waiting call without a body.
      this.opts.log?.warn({ command: expected.pending.command }, 'serf RPC: expected a response body, got a header');
      settle(expected.pending, expected.header, undefined);
    }
    if (!hasSeq) {
      this.opts.log?.debug('serf RPC: dropped a body with no matching header');
      return;
    }
    const header = { Seq: Number(value.Seq), Error: typeof value.Error === 'string' ? value.Error : '' };
    const stream = this.streams.get(header.Seq);
    if (stream) {
      if (!stream.acked) {
        stream.acked = true;
        if (header.Error) {
          this.streams.delete(header.Seq);
          stream.ack.reject(fromSerfError(stream.command, header.Error));
        } else stream.ack.resolve(undefined);
        return;
      }
      this.expect = { kind: 'record', stream };
      return;
    }
    const pending = this.pending.get(header.Seq);
    if (!pending) {
      this.opts.log?.debug({ seq: header.Seq }, 'serf RPC: dropped a reply for an unknown sequence number');
      return;
    }
    this.pending.delete(header.Seq);
    if (RESPONSE_WITH_BODY.has(pending.command) && !HEADER_ONLY_ERRORS.has(header.Error)) {
      this.expect = { kind: 'response', pending, header };
    } else settle(pending, header, undefined);
  }

  private deliverRecord(stream: ActiveStream, body: Record<string, unknown>): void {
    if (stream.command === Command.query && body.Type === 'done') {
      for (const [seq, s] of this.streams) if (s === stream) this.streams.delete(seq);
      stream.sink.end();
      return;
    }
    try {
      stream.sink.record(body);
    } catch (err) {
      this.opts.log?.error({ err }, 'serf RPC: stream consumer threw; record dropped');
    }
  }

  /** Closes for `err`; streams end cleanly when the client itself closed (`byClient`). */
  private fail(err: Error, byClient = false): void {
    if (this.closeError) return;
    this.closeError = err;
    this.socket.destroy();
    const expected = this.expect;
    this.expect = undefined;
    if (expected?.kind === 'response') expected.pending.reject(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const s of this.streams.values()) {
      if (!s.acked) s.ack.reject(err);
      else s.sink.end(byClient ? undefined : err);
    }
    this.streams.clear();
    for (const l of this.closeListeners.splice(0)) l(err);
  }
}

function settle(p: PendingRequest, header: ResponseHeader, body: Record<string, unknown> | undefined): void {
  if (header.Error) p.reject(fromSerfError(p.command, header.Error, body));
  else p.resolve(body);
}

function describe(v: unknown): string {
  if (v === null) return 'nil';
  if (Buffer.isBuffer(v)) return `${v.length} raw bytes`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${v.slice(0, 40)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${v}`;
  return typeof v === 'object' ? 'an unknown msgpack type' : typeof v;
}
