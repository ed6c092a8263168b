/**
 * The target-change timings of bench/lb.ts: each change's registry write (or runtime API call),
 * the agent's feed and runtime API call, matched with the probe's answers, split into shares.
 */
import type { LoadResult } from '../scripts/lib/http-load.js';
import { median } from './lib.js';

/** One change as the benchmark made it (epoch ms). */
export interface ChangeTimes {
  readonly op: 'add' | 'remove';
  /** The probe's answer body of the target. */
  readonly target: string;
  /** The registry write (agent) or the runtime API call (baseline) began. */
  readonly write: number;
  /** The agent's feed reported a change (agent only). */
  readonly feed?: number;
  /** The runtime API call was done (agent: its log line). */
  readonly applied: number;
}

/** Medians in ms of one kind of change. */
export interface Shares {
  readonly n: number;
  /** Write → feed (agent only). */
  readonly feed: number;
  /** Feed → runtime call done (agent), or the call itself (baseline). */
  readonly apply: number;
  /** Write → runtime call done: the agent's share (or the call, for the baseline). */
  readonly agent: number;
  /** Runtime call done → first (add) / last (remove) request served. */
  readonly rest: number;
  /** Write → first (add) / last (remove) request served. */
  readonly total: number;
}

/** When the target first (add) or last (remove) answered after the change, before the next one. */
function served(hits: readonly number[], c: ChangeTimes, next: number): number | undefined {
  const inWindow = hits.filter((t) => t >= c.write && t < next);
  if (c.op === 'add') return inWindow[0];
  // Removal: the last answer after the write; none = it was already out (the write itself).
  return inWindow.length ? inWindow[inWindow.length - 1] : c.write;
}

/** Medians of `changes`; a change's window ends at the next change of its target in `all`. */
function shares(changes: readonly ChangeTimes[], all: readonly ChangeTimes[], hits: Record<string, number[]>): Shares {
  const rows = changes.map((c) => {
    const next = all.find((x) => x.target === c.target && x.write > c.write)?.write ?? Infinity;
    const at = served(hits[c.target] ?? [], c, next);
    return { c, at };
  });
  const ok = rows.filter((r) => r.at !== undefined);
  const med = (f: (r: (typeof ok)[number]) => number | undefined) => median(ok.map(f).filter((x): x is number => x !== undefined));
  return {
    n: ok.length,
    feed: med((r) => (r.c.feed === undefined ? undefined : r.c.feed - r.c.write)),
    apply: med((r) => r.c.applied - (r.c.feed ?? r.c.write)),
    agent: med((r) => r.c.applied - r.c.write),
    rest: med((r) => r.at! - r.c.applied),
    total: med((r) => r.at! - r.c.write),
  };
}

/** The four medians (agent and baseline, add and remove) and readable lines. */
export function changeStats(probe: LoadResult, agent: readonly ChangeTimes[], direct: readonly ChangeTimes[]) {
  const pick = (cs: readonly ChangeTimes[], op: string) => cs.filter((c) => c.op === op);
  const all = [...agent, ...direct].sort((a, b) => a.write - b.write);
  const mk = (cs: readonly ChangeTimes[]) => shares(cs, all, probe.hits);
  const ag = { add: mk(pick(agent, 'add')), remove: mk(pick(agent, 'remove')) };
  const di = { add: mk(pick(direct, 'add')), remove: mk(pick(direct, 'remove')) };
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
  const lines = [
    `agent add    (n=${ag.add.n}): write → feed ${f(ag.add.feed)} ms, feed → runtime call done ${f(ag.add.apply)} ms (agent's share ${f(ag.add.agent)} ms), → first request served ${f(ag.add.rest)} ms; total ${f(ag.add.total)} ms`,
    `agent remove (n=${ag.remove.n}): write → feed ${f(ag.remove.feed)} ms, feed → runtime call done ${f(ag.remove.apply)} ms (agent's share ${f(ag.remove.agent)} ms); write → last request served ${f(ag.remove.total)} ms`,
    `runtime API add    (n=${di.add.n}): call ${f(di.add.agent)} ms, → first request served ${f(di.add.rest)} ms; total ${f(di.add.total)} ms`,
    `runtime API remove (n=${di.remove.n}): call ${f(di.remove.agent)} ms; call start → last request served ${f(di.remove.total)} ms`,
    `probe: ${probe.sent} sent, ${probe.ok} ok, ${probe.failures.length} failed; changes ${all.length}`,
  ];
  return { agent: ag, direct: di, lines };
}
