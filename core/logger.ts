/**
 * The root logger: pino JSON lines on stdout. Under systemd (JOURNAL_STREAM set) each line gets a
 * `<N>` syslog priority prefix that journald strips and records, so `journalctl -p warning` works
 * without native bindings; the journal records time, pid and host itself. Every value under a secret's
 * key (core/secrets.ts) is written as `[redacted]`, however deep it sits in the logged object.
 */
import pino, { type DestinationStream } from 'pino';
import type { Logger } from './contracts.js';
import { redactSecrets } from './secrets.js';

// pino level → syslog priority: trace/debug → debug(7), info(6), warn(4), error(3), fatal → crit(2).
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

// pino children copy their parent's level when created, so a reloaded `log.level` would not reach
// the component loggers made at start. Instead every logger of a tree shares one threshold, checked
// in the logMethod hook (before anything is serialized); pino itself lets everything through.
const thresholds = new WeakMap<Logger, { value: number }>();
const levelValue = (level: string): number => pino.levels.values[level] ?? Number.POSITIVE_INFINITY; // 'silent'

/** Changes the level of `log` and of every child logger made from it, earlier or later. */
export function setLogLevel(log: Logger, level: string): void {
  const threshold = thresholds.get(log);
  if (threshold) threshold.value = levelValue(level);
  else log.level = level;
}

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
  const threshold = { value: levelValue(level) };
  const log = pino(
    {
      level: 'trace',
      hooks: {
        logMethod(args, method, levelNumber) {
          if (levelNumber >= threshold.value) method.apply(this, args);
        },
      },
      // Secrets never reach a log line, at any depth (pino's own `redact` matches fixed paths with
      // one-level wildcards only). The logMethod hook above has already dropped lines below the
      // level, so a debug line on a hot path costs nothing here unless it is written.
      formatters: { log: redactSecrets },
      ...(journal ? { base: undefined, timestamp: false } : {}),
    },
    dest,
  );
  // Child bindings skip `formatters.log` (and pino gives children no bindings formatter), so they
  // are redacted as the child is made; children inherit this `child` from the root by prototype.
  const pinoChild = Reflect.get(log, 'child') as (this: unknown, bindings: object, options?: object) => unknown;
  Reflect.set(log, 'child', function (this: unknown, bindings: object, options?: object) {
    return pinoChild.call(this, redactSecrets(bindings), options);
  });
  thresholds.set(log, threshold);
  return log;
}
