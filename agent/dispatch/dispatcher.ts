/**
 * The dispatcher owns the handler policy, so handlers stay small: a timeout per handler, a
 * slow-handler warning, failures logged and isolated, user events deduplicated, query answers
 * kept under Serf's size limit and sent well inside the sender's timeout.
 *
 * Queries run at once and concurrently (they have a deadline). User and member events go through
 * one bounded queue, one at a time in arrival order, so a slow reconcile never delays an answer.
 */
import type { Logger } from '../../core/contracts.js';
import type { MemberEvent, QueryEvent, SerfEvent, UserEvent } from '../serf/client.js';
import { SerfLimits } from '../serf/protocol.js';
import type { EventDedupe } from './dedupe.js';
import { filterMatches, parseFilter, streamFilterFor, type EventFilter } from './filter.js';
import { countDispatch, observeHandler } from './metrics.js';
import { detach } from '../../core/errors.js';
import { eventNeedsSignature, queryNeedsSignature } from '../../core/signed-event.js';
import type { SignatureCheck, SignatureGate } from './signatures.js';

/** What every handler receives besides the event. */
export interface HandlerContext {
  readonly log: Logger;
  /** Aborted when the handler's time is up; long work should stop then. */
  readonly signal: AbortSignal;
  /** The operator who signed the event or query ask (its key's comment), for signed ones. */
  readonly signer?: string;
}

/** A query answer: bytes, a string, or a value sent as compact JSON; `undefined` = do not answer. */
export type QueryAnswer = Uint8Array | string | object | undefined;

/** Handles a user event or a member event. */
export type EventHandler<E = UserEvent | MemberEvent> = (event: E, ctx: HandlerContext) => Promise<void> | void;
/** Answers a query. */
export type QueryHandler = (query: QueryEvent, ctx: HandlerContext) => Promise<QueryAnswer> | QueryAnswer;

/** Handler timings; they may change on config reload. */
export interface DispatchTimings {
  readonly handlerTimeoutMs: number;
  readonly slowHandlerMs: number;
  /** The senders' query timeout; answers are due within 60 % of it. */
  readonly queryTimeoutMs: number;
}

/** Dispatcher settings. */
export interface DispatcherOptions extends DispatchTimings {
  readonly log: Logger;
  /** This node's name (its length counts against Serf's response limit); may be learnt later. */
  readonly node: () => string;
  readonly dedupe?: EventDedupe;
  /** Most queued events before new ones are dropped (and counted). */
  readonly queueLimit?: number;
  /**
   * Checks operator signatures: `mammatus.*` user events other than the open ones, and the asks of
   * signed queries (core/signed-event.ts). Without it, those are refused, never let through.
   */
  readonly signatures?: SignatureGate;
}

/** Counters exposed for status and tests. */
export interface DispatchStats {
  handled: number;
  failed: number;
  timedOut: number;
  duplicates: number;
  dropped: number;
  answered: number;
  answerErrors: number;
  /** Signed events and query asks refused (unsigned, bad signature, stale, replayed). */
  refused: number;
}

interface Registration {
  readonly filter: EventFilter;
  readonly text: string;
  readonly handler: EventHandler<never> | QueryHandler;
  /** Made once: a pino child per call would cost more than the dispatch itself. */
  readonly log: Logger;
}

class HandlerTimeout extends Error {
  override readonly name = 'HandlerTimeout';
}

/** Routes Serf events to registered handlers. Never throws from `dispatch`. */
export class Dispatcher {
  private readonly registrations: Registration[] = [];
  private readonly queue: { event: UserEvent | MemberEvent; signer?: string }[] = [];
  private draining: Promise<void> | undefined;
  // Set and cleared inside `drainQueue` itself: a promise callback would clear it a few
  // microtasks late, and an event dispatched in that gap would wait for the next one.
  private drainRunning = false;
  readonly stats: DispatchStats = {
    handled: 0,
    failed: 0,
    timedOut: 0,
    duplicates: 0,
    dropped: 0,
    answered: 0,
    answerErrors: 0,
    refused: 0,
  };

  private timings: DispatchTimings;

  constructor(private readonly opts: DispatcherOptions) {
    this.timings = opts;
  }

  /** Applies new timings (config reload); running handlers keep the ones they started with. */
  setTimings(timings: DispatchTimings): void {
    this.timings = timings;
  }

  /**
   * Registers a handler under a Serf filter (`user:NAME`, `query:NAME`, `member-join`, …). Throws on
   * an invalid filter, and on a second handler for the same query (a node answers a query once).
   */
  on(filter: 'user' | `user:${string}`, handler: EventHandler<UserEvent>): void;
  on(filter: `query:${string}`, handler: QueryHandler): void;
  on(filter: string, handler: EventHandler): void;
  on(text: string, handler: EventHandler<never> | QueryHandler): void {
    const filter = parseFilter(text);
    if (filter.type === 'query') {
      if (!('name' in filter) || !filter.name) throw new RangeError('a query handler needs a query name (query:NAME)');
      if (this.registrations.some((r) => r.filter.type === 'query' && filterMatches(r.filter, 'query', filter.name))) {
        throw new RangeError(`a handler for ${text} is already registered; Serf takes one answer per node`);
      }
    }
    this.registrations.push({ filter, text, handler, log: this.opts.log.child({ handler: text }) });
  }

  /**
   * Removes the handler of a query (`query:NAME`): a role that leaves the node stops answering. A
   * query already running keeps its handler.
   */
  off(text: `query:${string}`): void {
    const filter = parseFilter(text);
    const i = this.registrations.findIndex(
      (r) => r.filter.type === 'query' && 'name' in filter && filterMatches(r.filter, 'query', filter.name),
    );
    if (i >= 0) this.registrations.splice(i, 1);
  }

  /**
   * The Serf stream filter that covers every registration. Every query is streamed, named or not:
   * roles register their queries while they run, long after the stream started, and a query no
   * handler takes is dropped here without an answer. With signatures checked, every user event is
   * streamed too: each agent checks a signed event (and logs a forged one) even where no handler
   * takes it, so the sender hears a verdict from every agent (`mammatus.verdict`).
   */
  streamFilter(): string {
    const filters = this.registrations.map((r) => r.filter);
    const wide: EventFilter[] = [{ type: 'query' }, ...(this.opts.signatures ? [{ type: 'user' } as const] : [])];
    return streamFilterFor([...filters.filter((f) => f.type !== 'query'), ...wide]);
  }

  /** Takes one record from the Serf stream; returns at once. */
  dispatch(event: SerfEvent): void {
    if (event.type === 'query') {
      const query = event;
      // answer() reports its own failures; nothing is left to reject.
      detach(this.answer(query), (err) => this.opts.log.error({ err, query: query.name }, 'answering a query failed'));
      return;
    }
    // Full queue first: a dropped event must stay unseen, so a later replay of it is handled.
    if (this.queue.length >= (this.opts.queueLimit ?? 10_000)) {
      this.stats.dropped++;
      countDispatch('event', this.handlerName(event), 'dropped');
      this.opts.log.warn({ event: event.type === 'user' ? event.name : event.type }, 'event queue full; event dropped');
      return;
    }
    if (event.type === 'user' && this.opts.dedupe?.isDuplicate(event.name, event.ltime, event.payload)) {
      this.stats.duplicates++;
      countDispatch('event', this.handlerName(event), 'duplicate');
      this.opts.log.debug({ event: event.name, ltime: event.ltime }, 'duplicate user event skipped');
      return;
    }
    let signer: string | undefined;
    let queued: UserEvent | MemberEvent = event;
    if (event.type === 'user' && eventNeedsSignature(event.name)) {
      const checked = this.checkSignature('event', event.name, event.payload);
      // Refused: nothing to run and nothing to remember (a replay is refused again).
      if (!checked.ok) return;
      queued = { ...event, payload: checked.payload };
      signer = checked.operator;
    }
    // Every user event is streamed (see streamFilter); one no handler takes leaves no trace, so
    // a flood of made-up names costs no memory and no watermark.
    if (
      event.type === 'user' &&
      !this.registrations.some((r) => r.filter.type !== 'query' && filterMatches(r.filter, 'user', event.name))
    ) {
      return;
    }
    this.queue.push({ event: queued, signer });
    if (!this.drainRunning) this.draining = this.drainQueue();
  }

  /** Resolves once every queued event has been handled. */
  async idle(): Promise<void> {
    while (this.drainRunning) await this.draining;
  }

  private async drainQueue(): Promise<void> {
    this.drainRunning = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        const { event, signer } = item;
        const name = event.type === 'user' ? event.name : undefined;
        for (const r of this.registrations) {
          if (r.filter.type === 'query' || !filterMatches(r.filter, event.type, name)) continue;
          await this.runHandler(r, this.timings.handlerTimeoutMs, (ctx) => (r.handler as EventHandler)(event, ctx), signer).catch(
            () => undefined,
          );
        }
        if (event.type === 'user') this.opts.dedupe?.markHandled(event.name, event.ltime);
      }
    } finally {
      this.drainRunning = false;
    }
  }

  private async answer(query: QueryEvent): Promise<void> {
    const r = this.registrations.find((x) => x.filter.type === 'query' && filterMatches(x.filter, 'query', query.name));
    if (!r) return;
    let signer: string | undefined;
    if (queryNeedsSignature(query.name)) {
      const checked = this.checkSignature('query', query.name, query.payload);
      if (!checked.ok) {
        await this.respond(query, Buffer.from(JSON.stringify({ error: `refused: ${checked.reason}` })));
        return;
      }
      const asked = query;
      query = { ...asked, payload: checked.payload, respond: (p) => asked.respond(p) };
      signer = checked.operator;
    }
    const budget = Math.max(100, Math.floor(this.timings.queryTimeoutMs * 0.6));
    let bytes: Buffer;
    try {
      const result = await this.runHandler(
        r,
        Math.min(budget, this.timings.handlerTimeoutMs),
        (ctx) => (r.handler as QueryHandler)(query, ctx),
        signer,
      );
      // A node the query does not concern (e.g. mammatus.leases on a non-gateway) stays silent.
      if (result === undefined) return;
      bytes = encodeAnswer(result);
    } catch (err) {
      bytes = Buffer.from(JSON.stringify({ error: err instanceof HandlerTimeout ? 'timeout' : 'handler failed' }));
    }
    const limit = SerfLimits.queryResponseBytes - SerfLimits.queryResponseOverhead - Buffer.byteLength(this.opts.node());
    if (bytes.length > limit) {
      this.stats.answerErrors++;
      this.opts.log.error(
        { query: query.name, bytes: bytes.length, limit },
        'query answer over Serf response limit; sent an error instead',
      );
      bytes = Buffer.from(JSON.stringify({ error: `answer too large: ${bytes.length} bytes > ${limit}` }));
    }
    await this.respond(query, bytes);
  }

  private async respond(query: QueryEvent, bytes: Buffer): Promise<void> {
    try {
      await query.respond(bytes);
      this.stats.answered++;
    } catch (err) {
      this.stats.answerErrors++;
      this.opts.log.warn({ err, query: query.name }, 'could not answer query');
    }
  }

  /** The filter text of the first handler taking `event`, or `other`: a metrics label senders cannot choose. */
  private handlerName(event: { type: string; name?: string }): string {
    const type = event.type as SerfEvent['type'];
    return this.registrations.find((r) => filterMatches(r.filter, type, event.name))?.text ?? 'other';
  }

  /** Checks an operator's signature; a refusal is counted and logged with its reason. */
  private checkSignature(kind: 'event' | 'query', name: string, payload: Buffer): SignatureCheck {
    const checked: SignatureCheck = this.opts.signatures?.check(name, payload) ?? {
      ok: false,
      reason: 'this agent checks no signatures',
    };
    if (!checked.ok) {
      this.stats.refused++;
      countDispatch(kind, this.handlerName({ type: kind === 'event' ? 'user' : 'query', name }), 'refused');
      this.opts.log.warn({ [kind]: name, reason: checked.reason }, `signed ${kind} refused`);
    } else this.opts.log.info({ [kind]: name, operator: checked.operator }, `signed ${kind} accepted`);
    return checked;
  }

  /** Runs one handler with the timeout and slow-warning policy; logs and rethrows its failure. */
  private async runHandler<T>(
    r: Registration,
    timeoutMs: number,
    call: (ctx: HandlerContext) => Promise<T> | T,
    signer?: string,
  ): Promise<T> {
    const log = r.log;
    const kind = r.filter.type === 'query' ? 'query' : 'event';
    const abort = new AbortController();
    const started = Date.now();
    const slow = setTimeout(() => log.warn({ elapsed_ms: Date.now() - started }, 'handler is slow'), this.timings.slowHandlerMs);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new HandlerTimeout(`handler ${r.text} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      const result = await Promise.race([
        Promise.resolve().then(() => call({ log, signal: abort.signal, ...(signer ? { signer } : {}) })),
        timeout,
      ]);
      this.stats.handled++;
      countDispatch(kind, r.text, 'ok');
      return result;
    } catch (err) {
      if (err instanceof HandlerTimeout) {
        this.stats.timedOut++;
        countDispatch(kind, r.text, 'timeout');
        log.error({ timeout_ms: timeoutMs }, 'handler timed out; moving on');
      } else {
        this.stats.failed++;
        countDispatch(kind, r.text, 'failed');
        log.error({ err }, 'handler failed');
      }
      throw err;
    } finally {
      observeHandler(kind, started);
      clearTimeout(slow);
      clearTimeout(timer);
    }
  }
}

/** Encodes an answer: bytes as they are, strings as UTF-8, anything else as compact JSON. */
export function encodeAnswer(answer: Exclude<QueryAnswer, undefined>): Buffer {
  if (answer instanceof Uint8Array) return Buffer.from(answer);
  if (typeof answer === 'string') return Buffer.from(answer);
  return Buffer.from(JSON.stringify(answer));
}
