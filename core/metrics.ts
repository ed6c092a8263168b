/**
 * The process's metrics (issue 22), in Prometheus' text format through prom-client. One registry
 * per process: the agent's own metrics, its roles', and in a service child the service's. Code that
 * counts something defines its metric once with {@link counter}, {@link gauge} or {@link histogram}
 * (the same name twice returns the first one, so a module loaded by two roles or tests shares it)
 * and updates it where the thing happens. Values read from elsewhere (a daemon's counters, a
 * bucket's size) are set by a collector ({@link onCollect}) just before each exposition.
 *
 * prom-client is loaded part by part: its index also loads the default collectors, the summary's
 * t-digest and OpenTelemetry (about 5 MB resident). The process collectors this agent exports are
 * added only when metrics are on ({@link processMetrics}).
 */
import type { Counter as CounterT, Gauge as GaugeT, Histogram as HistogramT, Registry as RegistryT } from 'prom-client';
import Registry from 'prom-client/lib/registry.js';
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import nodeVersion from 'prom-client/lib/metrics/version.js';

export type { CounterT as Counter, GaugeT as Gauge, HistogramT as Histogram };

/** The content type of the text format (version 0.0.4), for the HTTP answer. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Latency buckets, in seconds, for requests that should take milliseconds (API calls, handlers). */
export const REQUEST_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Duration buckets, in seconds, for work that takes seconds to minutes (role applies, launches). */
export const WORK_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** The process's registry. */
export const metricsRegistry: RegistryT = new Registry();

interface Definition<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

function existing<T>(name: string): T | undefined {
  return metricsRegistry.getSingleMetric(name) as T | undefined;
}

/** A counter (`…_total`); the same name again returns the first definition. */
export function counter<L extends string = string>(def: Definition<L>): CounterT<L> {
  return existing<CounterT<L>>(def.name) ?? new Counter<L>({ ...def, labelNames: def.labelNames ?? [], registers: [metricsRegistry] });
}

/**
 * A gauge; the same name again returns the first definition. One without labels is absent until
 * first set (prom-client would export 0: a false reading, e.g. "no JetStream leader" or "the
 * certificate expired in 1970", before anything was read); `remove()` makes it absent again.
 */
export function gauge<L extends string = string>(def: Definition<L>): GaugeT<L> {
  const found = existing<GaugeT<L>>(def.name);
  if (found) return found;
  const made = new Gauge<L>({ ...def, labelNames: def.labelNames ?? [], registers: [metricsRegistry] });
  if (!def.labelNames?.length) made.remove();
  return made;
}

/** A histogram with these buckets (seconds: {@link REQUEST_SECONDS}, {@link WORK_SECONDS}). */
export function histogram<L extends string = string>(def: Definition<L> & { readonly buckets: readonly number[] }): HistogramT<L> {
  return (
    existing<HistogramT<L>>(def.name) ??
    new Histogram<L>({ ...def, buckets: [...def.buckets], labelNames: def.labelNames ?? [], registers: [metricsRegistry] })
  );
}

/**
 * A counter that follows a count kept elsewhere (a daemon's statistics, the kernel's byte
 * counters, iptables' rule counters): {@link CounterFrom.set} gives the source's current value and
 * the counter grows by what it grew since the last read. A value below the last one means the
 * source restarted from zero (dnsmasq restarted, rules reloaded): the counter grows by the new
 * value, as Prometheus' `rate()` would assume. prom-client counters cannot be set, and a gauge
 * named `…_total` would be typed wrongly for Prometheus.
 */
export interface CounterFrom<L extends string> {
  readonly counter: CounterT<L>;
  /** The source's current value for these labels. */
  set(labels: Partial<Record<L, string | number>>, value: number): void;
  /** Drops every label set not among `keep` (a rule or server that is gone). */
  retain(keep: readonly Partial<Record<L, string | number>>[]): void;
}

/** The last read per counter and label set, shared like the counters themselves. */
const lastReads = new Map<string, Map<string, number>>();

/** The identity of a label set: its pairs sorted by name. */
const labelKey = (labels: Readonly<Record<string, string | number | undefined>>): string =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** A {@link counter} set from a source's running count; the same name again shares the last reads. */
export function counterFrom<L extends string = string>(def: Definition<L>): CounterFrom<L> {
  const c = counter(def);
  const reads = lastReads.get(def.name) ?? new Map<string, number>();
  lastReads.set(def.name, reads);
  return {
    counter: c,
    set(labels, value) {
      if (!Number.isFinite(value) || value < 0) return;
      const key = labelKey(labels);
      const before = reads.get(key);
      reads.set(key, value);
      const delta = before === undefined || value < before ? value : value - before;
      // inc(0) still creates the series, so a quiet source shows 0 rather than nothing.
      c.inc(labels, delta);
    },
    retain(keep) {
      const wanted = new Set(keep.map(labelKey));
      for (const key of [...reads.keys()]) {
        if (wanted.has(key)) continue;
        reads.delete(key);
        c.remove(Object.fromEntries(JSON.parse(key) as [string, string][]) as Partial<Record<L, string | number>>);
      }
    },
  };
}

let processAdded = false;

/**
 * Adds the process's own metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * start time, heap, open and maximum file descriptors, `nodejs_version_info`), once.
 */
export function processMetrics(): void {
  if (processAdded) return;
  processAdded = true;
  for (const add of [
    processCpuTotal,
    processStartTime,
    osMemoryHeap,
    heapSizeAndUsed,
    processOpenFileDescriptors,
    processMaxFileDescriptors,
    nodeVersion,
  ])
    add(metricsRegistry);
}

type Collector = () => void | Promise<void>;
const collectors = new Map<string, Collector>();
const texts = new Map<string, () => Promise<string>>();

const collectorErrors = counter<'collector'>({
  name: 'mammatus_metrics_collector_errors_total',
  help: 'Collectors that failed or ran out of time while metrics were read, by collector.',
  labelNames: ['collector'],
});

/**
 * Runs `collect` before each exposition (it sets gauges from state read elsewhere). A collector
 * that throws or takes longer than the exposition allows leaves its gauges as they were and is
 * counted in `mammatus_metrics_collector_errors_total`. Returns how to remove it; the same name
 * again replaces it.
 */
export function onCollect(name: string, collect: Collector): () => void {
  collectors.set(name, collect);
  return () => {
    if (collectors.get(name) === collect) collectors.delete(name);
  };
}

/**
 * Adds `source`'s text (another process's exposition: a service child's) after this registry's.
 * Its metric names must differ from this process's. Returns how to remove it.
 */
export function addTextSource(name: string, source: () => Promise<string>): () => void {
  texts.set(name, source);
  return () => {
    if (texts.get(name) === source) texts.delete(name);
  };
}

/** `work`, or a rejection after `ms`. */
function bounded<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * The exposition: collectors and text sources all at once, each bounded by `timeoutMs` (so the
 * whole stays within it: a controller gathering over NATS waits 5 s), then this registry's text
 * and each source's (a failing collector keeps its last values, a failing source is left out; both
 * are counted).
 */
export async function exposition(timeoutMs = 3000): Promise<string> {
  const collecting = Promise.all(
    [...collectors].map(([name, collect]) =>
      bounded(Promise.resolve().then(collect), timeoutMs, name).catch(() => collectorErrors.inc({ collector: name })),
    ),
  );
  const others = await Promise.all(
    [...texts].map(([name, source]) =>
      bounded(source(), timeoutMs, name).catch(() => {
        collectorErrors.inc({ collector: name });
        return '';
      }),
    ),
  );
  await collecting;
  const own = await metricsRegistry.metrics();
  const more = others.filter((t) => t.length > 0);
  return more.length === 0 ? own : mergeExpositions([own, ...more]);
}

/**
 * Texts in the exposition format joined so that each family (its HELP, TYPE and samples) appears
 * once: a service child's registry has families the agent's has too (this module's
 * `mammatus_metrics_collector_errors_total`), and a second HELP or TYPE of a name fails the scrape.
 * A later text's samples of a family seen before join that family, without its HELP and TYPE.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, string[]>();
  for (const text of texts) {
    const opened = new Set<string>();
    let current: string[] | undefined;
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      const meta = /^# (?:HELP|TYPE) (\S+)/.exec(line);
      const name = meta ? meta[1] : line.startsWith('#') ? undefined : /^[^{\s]+/.exec(line)?.[0];
      if (name === undefined) continue;
      if (meta || !current) {
        const had = families.get(name);
        current = had ?? [];
        if (!had) families.set(name, current);
        else if (meta && !opened.has(name)) continue;
        opened.add(name);
      }
      current.push(line);
    }
  }
  return `${[...families.values()].map((lines) => lines.join('\n')).join('\n')}\n`;
}
