/**
 * PromQL pieces the dashboards share: the agents' job, the node variable's filter, Grafana's rate
 * window, quantiles of histograms, and rates of counter families. Pure.
 */

/** Every agent series as the controllers' Prometheus labels it. */
export const JOB = 'job="mammatus"';
/** The agent series of the nodes the dashboard's `node` variable selects. */
export const NODE = `${JOB}, node=~"$node"`;
/** Grafana's rate window: at least four scrape intervals. */
export const RATE = '$__rate_interval';

/** `histogram_quantile` of a histogram's rate, summed by `by` (with `le`). */
export function quantile(q: number, metric: string, by = '', filter = ''): string {
  const labels = by ? `le, ${by}` : 'le';
  return `histogram_quantile(${q}, sum by (${labels}) (rate(${metric}_bucket{${filter || JOB}}[${RATE}])))`;
}

/**
 * Per-second rates of every counter whose name matches `mammatus_<prefix>_(.+)_total`, the name's
 * middle kept as label `counter` (rate drops `__name__`; label_replace before a subquery keeps it).
 * For counter families whose members the source decides (dnsmasq's statistics, nats-server's /varz).
 */
export function familyRate(prefix: string, filter: string, by: string): string {
  const re = `mammatus_${prefix}_(.+)_total`;
  return `sum by (${by}) (rate(label_replace({__name__=~"${re}", ${filter}}, "counter", "$1", "__name__", "${re}")[${RATE}:]))`;
}

/** A `node` template variable listing the nodes that have `metric`. */
export const nodeVariable = (metric: string) => [{ name: 'node', label: 'Node', metric }];
