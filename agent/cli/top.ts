/**
 * `mammatus top [--prometheus URL] [--interval D] [--once] [--json]`: a live view of the cluster
 * in the terminal, from the metrics the controllers' Prometheus keeps (docs/monitoring.md), for
 * people without Grafana. Each refresh asks the instant queries of top-model.ts in parallel (2 s
 * each), builds the model and redraws the screen (top-render.ts). A failed query shows in its
 * section; no Prometheus at all is exit 1.
 */
import { parseDuration } from '../../core/duration.js';
import { errorMessage } from '../../core/errors.js';
import { UsageError, type CliIo } from './common.js';
import { buildTopModel, parsePromAnswer, TOP_QUERIES, type PromAnswer, type TopModel, type TopQuery } from './top-model.js';
import { fitLine, renderTop } from './top-render.js';

/**
 * Where `top` finds Prometheus unless told: this controller's, from the agent config's
 * `roles.controller.monitoring.prometheus.listen` ({@link configuredPrometheus}), else this.
 */
export const DEFAULT_PROMETHEUS_URL = 'http://127.0.0.1:9090';

/**
 * The Prometheus of this node's monitoring stack, when its agent config (`path`, default
 * /etc/mammatus/agent.yaml) sets `roles.controller.monitoring.store`; undefined otherwise (no
 * store, no config, or one this user cannot read: the default is tried then).
 */
export async function configuredPrometheus(path: string | undefined): Promise<string | undefined> {
  try {
    const { loadConfig } = await import('../config/load.js');
    const controller = (await loadConfig({ ...(path ? { path } : {}) })).config.roles.controller as {
      monitoring?: { store?: unknown; prometheus?: { listen?: unknown } };
    };
    if (!controller?.monitoring?.store) return undefined;
    const listen = controller.monitoring.prometheus?.listen;
    const addr = typeof listen === 'string' ? listen : '127.0.0.1:9090';
    return `http://${addr.replace(/^(0\.0\.0\.0|\[::\]|):/, '127.0.0.1:')}`;
  } catch {
    return undefined;
  }
}

/** How long one query may take before its section shows a timeout. */
export const TOP_QUERY_TIMEOUT_MS = 2000;

/** The refresh interval unless `--interval` says otherwise. */
export const TOP_DEFAULT_INTERVAL = '2s';

/** Shorter refreshes would only load Prometheus: nothing it scrapes changes that fast. */
const MIN_INTERVAL_MS = 250;

/** Flags of the top command. */
export interface TopOptions {
  prometheus?: string;
  /** The agent config whose monitoring stack to ask when `prometheus` is not given. */
  config?: string;
  interval?: string;
  once?: boolean;
  json?: boolean;
}

/** The terminal a live view draws on (tests give their own). */
export interface TopTerminal {
  /** Its size; undefined when output is not a terminal (no cutting then). */
  columns(): number | undefined;
  rows(): number | undefined;
  write(text: string): void;
  /** Calls `stop` on SIGINT, SIGTERM or SIGHUP; returns what removes the handlers. */
  onStop(stop: () => void): () => void;
}

/** The effects of the command. */
export interface TopDeps {
  fetch: typeof fetch;
  now(): Date;
  terminal: TopTerminal;
}

/** The process's terminal and signals. */
export function processTerminal(): TopTerminal {
  return {
    columns: () => (process.stdout.isTTY ? process.stdout.columns : undefined),
    rows: () => (process.stdout.isTTY ? process.stdout.rows : undefined),
    write: (text) => void process.stdout.write(text),
    onStop(stop) {
      const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
      for (const s of signals) process.on(s, stop);
      return () => signals.forEach((s) => process.off(s, stop));
    },
  };
}

const defaultDeps = (): TopDeps => ({ fetch: globalThis.fetch, now: () => new Date(), terminal: processTerminal() });

/** The Prometheus base URL of `--prometheus`, checked (a usage error otherwise). */
export function prometheusUrl(flag: string | undefined): string {
  const text = flag ?? DEFAULT_PROMETHEUS_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--prometheus: not a URL: "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--prometheus: not an http(s) URL: "${text}"`);
  return text.replace(/\/+$/, '');
}

/** What a query failure says: a timeout, a refused connection, or the error's message. */
function failureReason(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer in ${TOP_QUERY_TIMEOUT_MS / 1000} s`;
  return e?.cause?.code ?? e?.cause?.message ?? errorMessage(err);
}

/** A query's answer; `down` when nothing answered like Prometheus (no connection, timeout, not JSON). */
async function ask(deps: TopDeps, base: string, query: string): Promise<PromAnswer & { down?: boolean }> {
  try {
    const res = await deps.fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}`, {
      signal: AbortSignal.timeout(TOP_QUERY_TIMEOUT_MS),
      redirect: 'error',
    });
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return { error: `HTTP ${res.status}: not a Prometheus answer`, down: true };
    }
    return parsePromAnswer(body);
  } catch (err) {
    return { error: failureReason(err), down: true };
  }
}

/** One refresh's outcome. */
export type TopFrame = { model: TopModel } | { unreachable: string };

/** The model, or why Prometheus could not be reached (every query failed without its answer). */
export async function gatherTop(base: string, deps: TopDeps): Promise<TopFrame> {
  const names = Object.keys(TOP_QUERIES) as TopQuery[];
  const answers = await Promise.all(names.map((q) => ask(deps, base, TOP_QUERIES[q])));
  if (answers.every((a) => a.down)) {
    const first = answers[0] as { error: string };
    return { unreachable: `no Prometheus at ${base}: ${first.error} — is roles.controller.monitoring.store set on this controller?` };
  }
  const byName = Object.fromEntries(names.map((q, i) => [q, answers[i]])) as Record<TopQuery, PromAnswer>;
  return { model: buildTopModel(base, deps.now(), byName) };
}

/** Interval flag in milliseconds (a usage error when bad or too short). */
function intervalMs(flag: string | undefined): number {
  let ms: number;
  try {
    ms = parseDuration(flag ?? TOP_DEFAULT_INTERVAL);
  } catch (err) {
    throw new UsageError(`--interval: ${errorMessage(err)}`);
  }
  if (ms < MIN_INTERVAL_MS) throw new UsageError(`--interval: at least ${MIN_INTERVAL_MS}ms`);
  return ms;
}

// The alternate screen keeps the operator's scrollback; the cursor is hidden while drawing.
const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const CLEAR_HOME = '\x1b[H\x1b[2J';

/** Runs the command: one frame (`--once`), the JSON (`--json`), or the live view until a signal. */
export async function topCommand(opts: TopOptions, io: CliIo, deps: TopDeps = defaultDeps()): Promise<number> {
  const base = prometheusUrl(opts.prometheus ?? (await configuredPrometheus(opts.config)));
  const every = intervalMs(opts.interval);
  const first = await gatherTop(base, deps);
  if ('unreachable' in first) {
    io.err(`error: ${first.unreachable}`);
    return 1;
  }
  if (opts.json) {
    io.out(JSON.stringify(first.model, null, 2));
    return 0;
  }
  const { terminal } = deps;
  if (opts.once) {
    for (const line of renderTop(first.model, { width: terminal.columns() ?? Infinity })) io.out(line);
    return 0;
  }
  let stopped = false;
  let wake = () => {};
  const unsubscribe = terminal.onStop(() => {
    stopped = true;
    wake();
  });
  terminal.write(ENTER);
  try {
    let frame: TopFrame = first;
    for (;;) {
      const width = terminal.columns() ?? Infinity;
      // One line fewer than the screen: the last newline would scroll the first line away.
      const height = Math.max((terminal.rows() ?? Infinity) - 1, 1);
      const lines =
        'model' in frame
          ? renderTop(frame.model, { width, height })
          : [`mammatus top  ${base}  ${deps.now().toISOString().slice(0, 19).replace('T', ' ')} UTC`, '', `! ${frame.unreachable}`].map(
              (l) => fitLine(l, width),
            );
      terminal.write(`${CLEAR_HOME}${lines.join('\n')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, every);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (stopped) wake();
      });
      if (stopped) break;
      frame = await gatherTop(base, deps);
      if (stopped) break;
    }
  } finally {
    terminal.write(LEAVE);
    unsubscribe();
  }
  return 0;
}
