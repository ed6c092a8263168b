/**
 * Durations written the way Go's `time.ParseDuration` reads them, because that is what the `serf`
 * CLI accepts (`serf query -timeout 3.2s`) and operators should not learn a second syntax for the
 * same kind of value in our config and flags.
 */

/** Nanoseconds per unit, the unit names Go accepts (both spellings of micro included). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  '\u00b5s': 1_000n, // MICRO SIGN, what Go prints
  '\u03bcs': 1_000n, // GREEK SMALL LETTER MU, what people type
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go stores a Duration as int64 nanoseconds; anything beyond is an error there, so here too. */
const MAX_NS = (1n << 63n) - 1n;

/** One `<number><unit>` component: digits, optional fraction, then the unit (anything but a digit or dot). */
const COMPONENT = /(\d*)(?:\.(\d*))?([^\d.]*)/y;

/**
 * Parses a Go duration string (`300ms`, `1.5s`, `2m`, `1h30m`, `500us`, `-1s`, `0`) into
 * milliseconds, which may be fractional (`500us` is 0.5).
 *
 * The arithmetic is done in integer nanoseconds, exactly as Go does, so `1.1s` is 1100 and not
 * 1100.0000000000002.
 *
 * @throws Error naming the text when it is not a valid duration.
 */
export function parseDuration(text: string): number {
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  // Go's one exception to "every number needs a unit".
  if (s === '0') return 0;
  if (s === '') throw invalid(text, 'empty');

  let total = 0n;
  let pos = 0;
  while (pos < s.length) {
    COMPONENT.lastIndex = pos;
    // Never null: every group may be empty, so the sticky regex always matches.
    const [whole, intPart = '', fracPart = '', unit = ''] = COMPONENT.exec(s) ?? [''];
    if (intPart === '' && fracPart === '') throw invalid(text, 'expected a number');
    if (unit === '') throw invalid(text, 'missing unit (use ns, us, ms, s, m or h)');
    const scale = UNIT_NS[unit];
    if (scale === undefined) {
      throw invalid(text, `unknown unit ${JSON.stringify(unit)} (use ns, us, ms, s, m or h)`);
    }
    total += BigInt(intPart === '' ? '0' : intPart) * scale;
    if (fracPart !== '') {
      // Truncate below one nanosecond, like Go.
      total += (BigInt(fracPart) * scale) / 10n ** BigInt(fracPart.length);
    }
    if (total > MAX_NS) throw invalid(text, 'out of range');
    pos += whole.length;
  }
  const ms = Number(total) / 1e6;
  return negative && total !== 0n ? -ms : ms;
}

/** The one error shape, so every message names the text the operator wrote. */
function invalid(text: string, why: string): Error {
  return new Error(`invalid duration ${JSON.stringify(text)}: ${why}`);
}

/**
 * Formats milliseconds the way Go's `Duration.String` does (`1.5s`, `1h30m0s`, `300ms`, `500µs`,
 * `0s`), so a value in a message reads like the text the operator wrote and parses back.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  // Work in whole nanoseconds to avoid float noise such as 1.0999999999999999s.
  const ns = Math.round(ms * 1e6);
  if (ns === 0) return '0s';
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trimFraction(ns, 1e3)}\u00b5s`;
  if (ns < 1e9) return `${trimFraction(ns, 1e6)}ms`;
  const h = Math.floor(ns / 3.6e12);
  const m = Math.floor((ns % 3.6e12) / 6e10);
  const s = trimFraction(ns % 6e10, 1e9);
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** `value / unit` as a decimal with trailing zeros dropped, using integer maths only. */
function trimFraction(value: number, unit: number): string {
  const whole = Math.floor(value / unit);
  const frac = value % unit;
  if (frac === 0) return String(whole);
  const digits = String(unit).length - 1;
  return `${whole}.${String(frac).padStart(digits, '0').replace(/0+$/, '')}`;
}
