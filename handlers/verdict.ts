/**
 * `mammatus.verdict`: what this agent made of a signed event, so that the sender's `mammatus
 * event` can tell accepted from refused (Serf user events have no answer of their own). Payload:
 * `<event name> <seconds> <nonce>` (the envelope's id); answer `{"verdict":"accepted","operator":…}`,
 * `{"verdict":"refused","reason":…}` or `{"verdict":"unseen"}`. Open: it tells only what the
 * sender already knows, and nothing about the event's payload.
 */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';
import type { AgentView } from '../agent/types.js';

/** Query name, as documented in docs/serf.md. */
export const VERDICT_QUERY = 'mammatus.verdict';

/** Registers the verdict query handler. */
export function registerVerdict(d: Pick<Dispatcher, 'on'>, view: AgentView): void {
  d.on(`query:${VERDICT_QUERY}`, (query) => {
    const m = /^(\S{1,128}) (\d{1,12} [A-Za-z0-9_-]{16})$/.exec(query.payload.toString('latin1').trim());
    if (!m) return { error: 'payload: <event name> <seconds> <nonce> expected' };
    const v = view.verdict?.(m[1], m[2]);
    if (!v) return { verdict: 'unseen' };
    return v.accepted ? { verdict: 'accepted', operator: v.operator } : { verdict: 'refused', reason: v.reason };
  });
}
