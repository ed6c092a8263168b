/**
 * The agent's check of operator-signed events and query asks (core/signed-event.ts): each one is
 * verified once against `trust.operators`, its nonce remembered so a replay is refused, and the
 * verdict kept for a while so the sender can ask what became of it (`mammatus.verdict`). Refusals
 * are logged by the dispatcher with the reason returned here.
 */
import type { OperatorKey } from '../../core/operators.js';
import { envelopeId, openEvent, SeenNonces, SIGNED_EVENT_WINDOW_S } from '../../core/signed-event.js';
import { errorMessage } from '../../core/errors.js';

/** What became of a signed envelope on this node. */
export type Verdict = { readonly accepted: true; readonly operator: string } | { readonly accepted: false; readonly reason: string };

/** The outcome of one check: the payload inside and who signed it, or why not. */
export type SignatureCheck =
  { readonly ok: true; readonly payload: Buffer; readonly operator: string } | { readonly ok: false; readonly reason: string };

/** Most verdicts kept; older ones are forgotten first (a sender asks within seconds). */
const MAX_VERDICTS = 1024;

/** Verifies signed envelopes against the operators of the current config. */
export class SignatureGate {
  private readonly seen = new SeenNonces();
  private readonly verdicts = new Map<string, { verdict: Verdict; at: number }>();

  /** Set when a signature was accepted since the last {@link snapshot}. */
  dirty = false;

  constructor(
    private readonly operators: () => readonly OperatorKey[],
    private readonly now: () => number = Date.now,
    /** Called when a signature is accepted: its nonce must be saved before a restart could forget it. */
    private readonly onAccept: () => void = () => undefined,
  ) {}

  /** The accepted signatures to save (`state_dir/signatures.json`); clears `dirty`. */
  snapshot(): Record<string, number> {
    this.dirty = false;
    return this.seen.snapshot(this.now());
  }

  /** Takes back a saved snapshot: a replay across an agent restart is still refused. */
  restore(saved: unknown): void {
    this.seen.restore(saved, this.now());
  }

  /** Checks the envelope of event or query `name`; records the verdict under the envelope's id. */
  check(name: string, envelope: Buffer): SignatureCheck {
    const operators = this.operators();
    const nowMs = this.now();
    let result: SignatureCheck;
    if (operators.length === 0) {
      result = { ok: false, reason: 'this node trusts no operator key (trust.operators is empty)' };
    } else {
      try {
        const opened = openEvent(operators, name, envelope, nowMs, this.seen);
        result = { ok: true, payload: opened.payload, operator: opened.operator.name };
        this.dirty = true;
        this.onAccept();
      } catch (err) {
        result = { ok: false, reason: errorMessage(err) };
      }
    }
    const id = envelopeId(envelope);
    // A refusal never replaces a verdict: a replay, or a forged copy under the same header (which
    // anyone who saw the event can make), must not turn the sender's "accepted" into "refused".
    if (id && (result.ok || !this.verdicts.has(`${name} ${id}`))) this.remember(`${name} ${id}`, result, nowMs);
    return result;
  }

  /** The verdict on envelope `id` (`<seconds> <nonce>`) of event `name`, if this node saw it lately. */
  verdict(name: string, id: string): Verdict | undefined {
    return this.verdicts.get(`${name} ${id}`)?.verdict;
  }

  private remember(key: string, result: SignatureCheck, nowMs: number): void {
    const verdict: Verdict = result.ok ? { accepted: true, operator: result.operator } : { accepted: false, reason: result.reason };
    this.verdicts.delete(key);
    this.verdicts.set(key, { verdict, at: nowMs });
    for (const [k, v] of this.verdicts) {
      if (this.verdicts.size <= MAX_VERDICTS && nowMs - v.at <= 2 * SIGNED_EVENT_WINDOW_S * 1000) break;
      this.verdicts.delete(k);
    }
  }
}
