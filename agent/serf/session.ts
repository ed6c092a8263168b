/**
 * A long-lived Serf session: two connections (one for the event stream and `respond`, one for admin
 * commands, so a slow `join` never delays a query answer), reconnected with exponential backoff.
 * After every (re)connect the stream is re-subscribed and `onConnected` runs so the owner can re-read
 * members — the RPC has no way to replay what was missed while disconnected.
 */
import type { Logger } from '../../core/contracts.js';
import { SerfClient, type SerfEvent } from './client.js';
import type { ConnectionOptions } from './connection.js';
import { ConnectionClosedError } from './errors.js';

/** Options for a session. */
export interface SerfSessionOptions extends ConnectionOptions {
  readonly log: Logger;
  /** Serf stream filter, e.g. `member-join,user:mammatus.reconcile,query:mammatus.ping`. */
  readonly filter: string;
  /** Called for every record, in arrival order; must not block. */
  readonly onEvent: (event: SerfEvent) => void;
  /** Called after each successful (re)connect, before events flow to `onEvent`. */
  readonly onConnected?: (admin: SerfClient) => Promise<void> | void;
  readonly onDisconnected?: (err: Error) => void;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

/** Keeps the two connections up until `stop()`. */
export class SerfSession {
  private admin: SerfClient | undefined;
  private events: SerfClient | undefined;
  private stopped = false;
  private waiters: { resolve: (c: SerfClient) => void; reject: (e: Error) => void }[] = [];
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private stream: AsyncIterable<SerfEvent> | undefined;
  /** Number of successful connects so far (1 after the first). */
  connects = 0;

  constructor(private readonly opts: SerfSessionOptions) {}

  /** Starts the connect loop; resolves after the first successful connect. */
  start(): Promise<void> {
    const first = this.adminClient().then(() => undefined);
    this.loop = this.run();
    return first;
  }

  /** True while both connections are up. */
  get connected(): boolean {
    return this.admin !== undefined;
  }

  /** The admin client, waiting for a connection if there is none right now. */
  adminClient(): Promise<SerfClient> {
    if (this.admin) return Promise.resolve(this.admin);
    if (this.stopped) return Promise.reject(new ConnectionClosedError('serf session stopped'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Closes both connections and ends the loop; safe to call more than once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    for (const w of this.waiters.splice(0)) w.reject(new ConnectionClosedError('serf session stopped'));
    this.admin?.close();
    this.events?.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    const initial = this.opts.backoffInitialMs ?? 100;
    const max = this.opts.backoffMaxMs ?? 5000;
    let delay = initial;
    let failures = 0;
    while (!this.stopped) {
      let reason: Error | undefined;
      try {
        await this.connectOnce();
        delay = initial;
        reason = await this.pump();
      } catch (err) {
        reason = err as Error;
      }
      this.admin?.close();
      this.events?.close();
      this.admin = this.events = this.stream = undefined;
      if (this.stopped) break;
      failures = delay === initial ? 1 : failures + 1;
      // Warn when serf goes away and then about once a minute; every retry would flood the journal.
      const level = failures === 1 || failures % 12 === 0 ? 'warn' : 'debug';
      this.opts.log[level]({ err: reason, retry_ms: delay, attempts: failures }, 'serf RPC unavailable; reconnecting');
      this.opts.onDisconnected?.(reason ?? new ConnectionClosedError());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (0.8 + Math.random() * 0.4));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      delay = Math.min(delay * 2, max);
    }
  }

  private async connectOnce(): Promise<void> {
    const events = await SerfClient.connect(this.opts);
    this.events = events;
    const admin = await SerfClient.connect(this.opts);
    try {
      // Subscribe before `onConnected` re-reads members: records arriving meanwhile wait in the
      // queue instead of falling between the read and the subscription.
      this.stream = await events.stream(this.opts.filter);
      // stop() cannot close connections it has not seen yet: check before going live.
      if (this.stopped) throw new ConnectionClosedError('serf session stopped');
    } catch (err) {
      admin.close();
      throw err;
    }
    this.admin = admin;
    this.connects++;
    await this.opts.onConnected?.(admin);
    for (const w of this.waiters.splice(0)) w.resolve(admin);
  }

  /** Forwards stream records until either connection closes; resolves with the reason. */
  private async pump(): Promise<Error | undefined> {
    const admin = this.admin!;
    const stream = this.stream!;
    const adminClosed = new Promise<Error>((resolve) => admin.connection.onClose(resolve));
    const streamEnded = (async () => {
      for await (const ev of stream) this.opts.onEvent(ev);
      return new ConnectionClosedError('serf event stream ended');
    })();
    return Promise.race([adminClosed, streamEnded]);
  }
}
