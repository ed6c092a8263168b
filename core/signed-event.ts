/**
 * Operator-signed Serf user events and query asks: the envelope that carries an SSHSIG (sshsig.ts)
 * over the event's name, payload, a timestamp and a nonce, and its check on the receiving agent:
 * signed by an operator key, within five minutes of the receiver's clock, never seen before.
 *
 * The envelope must fit Serf's 512-byte limit on a user event's name and payload together, so the
 * signature travels as the bare SSHSIG blob in base64 (no armour): for an ed25519 key that is 240
 * characters, and the whole envelope 285 bytes plus the payload (`ENVELOPE_OVERHEAD`), which leaves
 * 227 bytes for the event's name and payload. An RSA
 * signature does not fit; `sealEvent` refuses it with that reason.
 *
 * Wire form (ASCII header line, then the payload's bytes):
 *   `mammatus-sig-v1 <unix seconds> <nonce, 16 base64url chars> <SSHSIG blob, base64>\n<payload>`
 * Signed message: `mammatus-event-v1\n<event name>\n<unix seconds>\n<nonce>\n<payload>`, namespace
 * `mammatus`, so `ssh-keygen -Y verify -n mammatus` checks it given that message.
 */
import { randomBytes } from 'node:crypto';
import { verifyOperatorSig, type OperatorKey } from './operators.js';
import { signSshSig, SshSigError, type SshSigner } from './sshsig.js';

/** The SSHSIG namespace of everything an operator signs for the cluster. */
export const SIG_NAMESPACE = 'mammatus';
/** How far a signed timestamp may be from the receiver's clock, either way. */
export const SIGNED_EVENT_WINDOW_S = 300;
/** Serf's limit on a user event's name and payload together. */
export const SERF_EVENT_LIMIT = 512;

const HEADER = 'mammatus-sig-v1';
const HEADER_RE = /^mammatus-sig-v1 (\d{1,12}) ([A-Za-z0-9_-]{16}) ([A-Za-z0-9+/]+={0,2})$/;

/**
 * User events that stay open (unsigned): they only ask agents to do again what they already do.
 * Every other `mammatus.*` user event changes desired state and must be signed by an operator.
 */
export const OPEN_EVENTS: ReadonlySet<string> = new Set(['mammatus.reconcile']);
/** Queries whose answers reveal addresses: agents answer only signed asks. */
export const SIGNED_QUERIES: ReadonlySet<string> = new Set(['mammatus.leases']);

/** Must a user event of this name carry an operator's signature? */
export function eventNeedsSignature(name: string): boolean {
  return name.startsWith('mammatus.') && !OPEN_EVENTS.has(name);
}

/** Must the payload of a query of this name carry an operator's signature? */
export function queryNeedsSignature(name: string): boolean {
  return SIGNED_QUERIES.has(name);
}

/**
 * The id of a signed envelope (`<seconds> <nonce>`), by which a sender asks agents what they made
 * of it (`mammatus.verdict`); undefined when the payload has no envelope header.
 */
export function envelopeId(envelope: Uint8Array): string | undefined {
  const buf = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  const nl = buf.indexOf(0x0a);
  const m = nl < 0 ? null : HEADER_RE.exec(buf.subarray(0, nl).toString('latin1'));
  return m ? `${m[1]} ${m[2]}` : undefined;
}
/** Bytes an ed25519-signed envelope adds to the payload (measured by test/core/sshsig.test.ts). */
export const ENVELOPE_OVERHEAD = 285;
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';

/** The message an envelope's signature covers. */
export function signedMessage(name: string, time: number, nonce: string, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`mammatus-event-v1\n${name}\n${time}\n${nonce}\n`), payload]);
}

/**
 * The signed envelope of event `name` with `payload`, by `key` (an operator's private key).
 * @throws SshSigError when name and envelope together pass Serf's 512 bytes.
 */
export async function sealEvent(
  key: SshSigner,
  name: string,
  payload: Uint8Array,
  nowMs: number,
  nonce = randomBytes(12).toString('base64url'),
): Promise<Buffer> {
  const time = Math.floor(nowMs / 1000);
  const armoured = await signSshSig(key, SIG_NAMESPACE, signedMessage(name, time, nonce, payload));
  const blob = armoured.replace(BEGIN, '').replace(END, '').replace(/\s+/g, '');
  const envelope = Buffer.concat([Buffer.from(`${HEADER} ${time} ${nonce} ${blob}\n`), payload]);
  const size = Buffer.byteLength(name) + envelope.length;
  if (size > SERF_EVENT_LIMIT) {
    throw new SshSigError(
      `the signed event is ${size} bytes, over Serf's ${SERF_EVENT_LIMIT} (${key.type === 'ssh-rsa' ? 'RSA signatures do not fit: sign with an ed25519 key' : 'shorten the payload'})`,
    );
  }
  return envelope;
}

/** Signatures an agent has accepted, remembered for twice the window (a replay is refused). */
export class SeenNonces {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 100_000) {}

  /** The signatures still within twice the window at `nowMs`, for saving across restarts. */
  snapshot(nowMs: number): Record<string, number> {
    return Object.fromEntries([...this.seen].filter(([, at]) => nowMs - at <= 2 * SIGNED_EVENT_WINDOW_S * 1000));
  }

  /** Takes back a {@link snapshot} (entries of the wrong shape or too old are skipped), oldest first. */
  restore(saved: unknown, nowMs: number): void {
    if (typeof saved !== 'object' || saved === null) return;
    const entries = Object.entries(saved as Record<string, unknown>)
      .filter((e): e is [string, number] => typeof e[1] === 'number' && nowMs - e[1] <= 2 * SIGNED_EVENT_WINDOW_S * 1000)
      .sort((a, b) => a[1] - b[1]);
    for (const [key, at] of entries.slice(-this.max)) if (!this.seen.has(key)) this.seen.set(key, at);
  }

  /** Records `key` at `nowMs`: `fresh`, `replayed` (seen within the window), or `full`. */
  admit(key: string, nowMs: number): 'fresh' | 'replayed' | 'full' {
    for (const [k, at] of this.seen) {
      if (nowMs - at <= 2 * SIGNED_EVENT_WINDOW_S * 1000) break; // insertion order: the rest are newer
      this.seen.delete(k);
    }
    if (this.seen.has(key)) return 'replayed';
    // Full: refuse rather than forget a signature that could then be replayed.
    if (this.seen.size >= this.max) return 'full';
    this.seen.set(key, nowMs);
    return 'fresh';
  }
}

/** An accepted envelope: who signed, and the payload. */
export interface OpenedEvent {
  readonly operator: OperatorKey;
  readonly payload: Buffer;
}

/**
 * Checks the envelope of event `name`: well formed, signed by one of `operators`, fresh, not
 * replayed. @throws SshSigError with the reason (for the log line that refuses it).
 */
export function openEvent(
  operators: readonly OperatorKey[],
  name: string,
  envelope: Uint8Array,
  nowMs: number,
  seen: SeenNonces,
): OpenedEvent {
  const buf = Buffer.from(envelope);
  const nl = buf.indexOf(0x0a);
  const header = (nl < 0 ? buf : buf.subarray(0, nl)).toString('latin1');
  const m = HEADER_RE.exec(header);
  if (nl < 0 || !m) throw new SshSigError('unsigned or malformed envelope (mammatus-sig-v1 expected)');
  const [, timeText, nonce, blob] = m as unknown as [string, string, string, string];
  const time = Number(timeText);
  if (Math.abs(nowMs / 1000 - time) > SIGNED_EVENT_WINDOW_S) throw new SshSigError('stale or future signature (over 5 minutes off)');
  const payload = buf.subarray(nl + 1);
  const armoured = `${BEGIN}\n${blob}\n${END}\n`;
  const operator = verifyOperatorSig(operators, armoured, SIG_NAMESPACE, signedMessage(name, time, nonce, payload));
  const verdict = seen.admit(`${time} ${nonce}`, nowMs);
  if (verdict !== 'fresh') throw new SshSigError(verdict === 'replayed' ? 'replayed signature' : 'too many signed events in 10 minutes');
  return { operator, payload };
}
