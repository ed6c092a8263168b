/**
 * Request/reply for hot paths: many requests share one inbox subscription and one sweep timer.
 *
 * nats.js's `nc.request` (and so `js.publish` and every `jsm` call) builds per request a request
 * object, a deferred, a timer (setTimeout + clearTimeout) and, when it tidies up after the answer,
 * an `Error` with a stack trace, even with `noAsyncTraces`: together about a tenth of the messaging
 * API's CPU per SQS message (docs/benchmarks.md §6). Here a request is one map entry and one
 * publish; timeouts are found by a sweep that runs only while requests are pending (an idle process
 * has no timer).
 *
 * `JetStreamRequests` puts the two JetStream operations of the SQS hot path on it (publish with ack,
 * delete by sequence) and answers exactly what nats.js would: the same ack fields, and JetStream's
 * errors as `JetStreamApiError` with the server's code and description.
 */
import { JetStreamApiError, type JetStreamClient, type JetStreamManager, type PubAck } from '@nats-io/jetstream';
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { performance } from 'node:perf_hooks';

interface Pending {
  readonly resolve: (m: Msg) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
  readonly subject: string;
}

/** How often pending requests are checked for their deadline. */
const SWEEP_MS = 250;

/** Requests on one connection that share an inbox subscription. */
export class SharedInboxRequester {
  private readonly pending = new Map<string, Pending>();
  private sub?: Subscription;
  private inbox = '';
  private next = 0;
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly nc: NatsConnection) {}

  /** Sends `data` to `subject` and answers the first reply; rejects after `timeoutMs` or when nobody listens. */
  request(subject: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Msg> {
    if (this.nc.isClosed()) return Promise.reject(new Error(`NATS connection closed: ${subject}`));
    this.subscribe();
    const token = (this.next = (this.next + 1) % Number.MAX_SAFE_INTEGER).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: performance.now() + timeoutMs, subject });
      this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
      try {
        this.nc.publish(subject, data, headers ? { reply: this.inbox + token, headers } : { reply: this.inbox + token });
      } catch (err) {
        this.pending.delete(token);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  // One subscription for every reply: `<inbox>.<token>`, the inbox under the connection's prefix
  // (the only replies a node's NATS permissions let it read).
  private subscribe(): void {
    if (this.sub) return;
    const prefix = (this.nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.inbox = `${createInbox(prefix)}.`;
    this.sub = this.nc.subscribe(`${this.inbox}*`, {
      callback: (err, msg) => {
        if (err) return this.failAll(err);
        const token = msg.subject.slice(this.inbox.length);
        const p = this.pending.get(token);
        if (!p) return; // answered after its deadline
        this.pending.delete(token);
        if (msg.data.length === 0 && msg.headers?.code === 503) p.reject(new Error(`no responders: ${p.subject}`));
        else p.resolve(msg);
      },
    });
    const closed = () => {
      this.sub = undefined;
      this.failAll(new Error('NATS reply subscription closed'));
    };
    this.sub.closed.then(closed, closed);
  }

  private sweep(): void {
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = performance.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(token);
      p.reject(new Error(`timeout: no answer from ${p.subject}`));
    }
  }

  private failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }
}

/** The JetStream error in a reply (`{"error": {...}}`), as nats.js throws it. */
function parseReply<T>(m: Msg): T {
  const v = JSON.parse(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length).toString('utf8')) as T & {
    error?: { code: number; err_code?: number; description: string };
  };
  if (v.error) throw new JetStreamApiError({ err_code: 0, ...v.error });
  return v;
}

const requesters = new WeakMap<NatsConnection, SharedInboxRequester>();

/** The two JetStream requests of the SQS hot path, on a `SharedInboxRequester`. */
export class JetStreamRequests {
  private readonly requester: SharedInboxRequester;

  private constructor(
    nc: NatsConnection,
    /** `$JS.API`, or the domain's or `apiPrefix`'s equivalent, as the manager uses it. */
    private readonly apiPrefix: string,
  ) {
    let r = requesters.get(nc);
    if (!r) requesters.set(nc, (r = new SharedInboxRequester(nc)));
    this.requester = r;
  }

  /**
   * The requests of `js`/`jsm` on their connection and API prefix; undefined when they are not
   * nats.js's own clients (test doubles), whose callers then keep using them.
   */
  static of(js: JetStreamClient, jsm: JetStreamManager): JetStreamRequests | undefined {
    const client = js as unknown as { nc?: NatsConnection };
    const manager = jsm as unknown as { nc?: NatsConnection; prefix?: string };
    if (!client.nc || client.nc !== manager.nc || typeof manager.prefix !== 'string') return undefined;
    return new JetStreamRequests(client.nc, manager.prefix);
  }

  /** `js.publish(subject, data, { headers, timeout })`: answers once JetStream stored it. */
  async publish(subject: string, data: Uint8Array, headers: MsgHdrs | undefined, timeoutMs: number): Promise<PubAck> {
    const ack = parseReply<{ -readonly [K in keyof PubAck]: PubAck[K] }>(await this.requester.request(subject, data, timeoutMs, headers));
    if (!ack.stream) throw new Error('invalid JetStream ack');
    ack.duplicate ??= false;
    return ack;
  }

  /** `jsm.streams.deleteMessage(stream, seq, false)`: the message is gone (not overwritten). */
  async deleteMessage(stream: string, seq: number, timeoutMs: number): Promise<boolean> {
    const body = Buffer.from(`{"seq":${seq},"no_erase":true}`);
    const m = await this.requester.request(`${this.apiPrefix}.STREAM.MSG.DELETE.${stream}`, body, timeoutMs);
    return parseReply<{ success?: boolean }>(m).success === true;
  }
}
