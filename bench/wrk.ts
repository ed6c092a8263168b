/** wrk's report, parsed (wrk 4 with `--latency`); shared by the benchmarks that drive wrk. */

/** What wrk reported. Latencies in ms. */
export interface WrkResult {
  rps: number;
  requests: number;
  seconds: number;
  bytesRead: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  socketErrors: string;
  raw: string;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 'ms' ? v : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : NaN;
}
const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** Parses wrk 4's `--latency` report. */
export function parseWrk(out: string): WrkResult {
  const lat = (pct: string) => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read/m.exec(out);
  const max = /^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)/m.exec(out);
  if (!rps || !total) throw new Error(`cannot parse wrk output:\n${out}`);
  return {
    rps: Number(rps[1]),
    requests: Number(total[1]),
    seconds: toMs(total[2], total[3]) / 1000,
    bytesRead: Number(total[4]) * (UNIT_BYTES[total[5]] ?? NaN),
    p50: lat('50'),
    p75: lat('75'),
    p90: lat('90'),
    p99: lat('99'),
    max: max ? toMs(max[1], max[2]) : NaN,
    non2xx: Number(/Non-2xx or 3xx responses:\s*(\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: /Socket errors:\s*(.*)/.exec(out)?.[1]?.trim() ?? 'none',
    raw: out,
  };
}
