/**
 * The root logger: pino JSON lines on stdout. Under systemd (JOURNAL_STREAM set) each line gets a
 * `<N>` syslog priority prefix that journald strips and records, so `journalctl -p warning` works
 * without native bindings; the journal records time, pid and host itself.
 */
import pino, { type DestinationStream } from 'pino';
import type { Logger } from './types.js';

// pino level → syslog priority: trace/debug → debug(7), info(6), warn(4), error(3), fatal → crit(2).
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** Keys whose values never reach a log line. */
export const REDACTED_PATHS = ['rpc_auth', 'authKey', 'AuthKey', '*.rpc_auth', '*.authKey', 'serf.rpc_auth', 'config.serf.rpc_auth'];

/** Builds the root logger writing to `dest` (stdout by default). */
export function buildLogger(level: string, opts: { dest?: DestinationStream; journal?: boolean } = {}): Logger {
  const journal = opts.journal ?? Boolean(process.env.JOURNAL_STREAM);
  let dest: DestinationStream = opts.dest ?? pino.destination({ fd: 1, sync: true });
  if (journal) {
    const out = dest;
    dest = {
      write(line: string) {
        const m = /"level":(\d+)/.exec(line);
        out.write(`<${PRIORITY[Number(m?.[1])] ?? 6}>${line}`);
      },
    };
  }
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      ...(journal ? { base: undefined, timestamp: false } : {}),
    },
    dest,
  );
}
