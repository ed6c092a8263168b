/**
 * The data of `mammatus top` (docs/cli.md): the PromQL instant queries it asks the controllers'
 * Prometheus, and the pure step from their answers to a plain model the renderer and `--json` use.
 * Metric names are the contract of docs/monitoring.md; Prometheus adds `node` and `job="mammatus"`
 * to every agent series, so every row is keyed by `node`.
 */

/** The queries, by the name the model is built from. */
export const TOP_QUERIES = {
  up: 'up{job="mammatus"}',
  // A node that is down has no current series: its roles are those it last reported (in the last hour).
  info:
    'mammatus_agent_info{job="mammatus"}' +
    ' or (last_over_time(mammatus_agent_info{job="mammatus"}[1h]) unless on (node) mammatus_agent_info{job="mammatus"})',
  roleState: 'mammatus_role_state{job="mammatus"} == 1',
  cpu: 'rate(process_cpu_seconds_total{job="mammatus"}[1m])',
  rss: 'process_resident_memory_bytes{job="mammatus"}',
  // Applies that failed lately: a role that flaps between error and ok shows here, not in its state.
  failedApplies: 'sum by (node, role, outcome) (increase(mammatus_role_applies_total{job="mammatus",outcome!="ok"}[15m])) > 0',
  instances: 'sum by (status) (mammatus_compute_instances{job="mammatus"})',
  // Every controller may report the same queue: the deepest report counts, once per queue and state.
  queues:
    'max by (queue, state) (mammatus_sqs_queue_messages{job="mammatus"})' +
    ' and on (queue) topk(10, sum by (queue) (max by (queue, state) (mammatus_sqs_queue_messages{job="mammatus"})))',
  alerts: 'ALERTS{alertstate="firing"}',
} as const;

/** A query's name. */
export type TopQuery = keyof typeof TOP_QUERIES;

/** One sample of an instant vector, as `/api/v1/query` answers it. */
export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

/** A query's outcome: its samples, or why there are none (Prometheus' error, a timeout). */
export type PromAnswer = { readonly samples: readonly PromSample[] } | { readonly error: string };

/** A section's rows, and the errors of the queries it is built from (shown in the section). */
export interface TopSection<T> {
  rows: T[];
  errors: string[];
}

/** One node's row. */
export interface TopNode {
  node: string;
  /** Prometheus' last scrape of its agent succeeded; null when it has no `up` series. */
  up: boolean | null;
  roles: string[];
  /** Each role's current state (`ok`, `error`, `pending`). */
  states: Record<string, string>;
  /** CPU of the agent process over the last minute, in % of one core; null when unknown. */
  cpu_percent: number | null;
  rss_bytes: number | null;
}

/** A role in error now, or with failed applies in the last 15 minutes. */
export interface TopRoleError {
  node: string;
  role: string;
  /** Its current state (`error` when in error now, else what it recovered to). */
  state: string;
  /** Applies that ended in error in the last 15 minutes (rounded; 0 when none). */
  failed_applies: number;
  /** Applies rolled back in the last 15 minutes. */
  rolled_back: number;
}

/** Instances on the compute nodes with one status. */
export interface TopInstances {
  status: string;
  count: number;
}

/** One queue's depth, summed over its states. */
export interface TopQueue {
  queue: string;
  visible: number;
  inflight: number;
  delayed: number;
  total: number;
}

/** A firing alert. */
export interface TopAlert {
  alertname: string;
  severity: string;
  /** Its other labels, `alertstate` and `job` left out. */
  labels: Record<string, string>;
}

/** What one frame shows (also the `--json` answer). */
export interface TopModel {
  prometheus: string;
  /** When the data was gathered (ISO 8601). */
  at: string;
  nodes: TopSection<TopNode>;
  role_errors: TopSection<TopRoleError>;
  instances: TopSection<TopInstances>;
  queues: TopSection<TopQueue>;
  alerts: TopSection<TopAlert>;
}

/** The answer of every query by name. */
export type TopAnswers = Readonly<Record<TopQuery, PromAnswer>>;

/** At most this many queues are shown (the query asks for as many). */
export const TOP_QUEUES = 10;

/** Reads one `/api/v1/query` answer body: its vector, or Prometheus' error. */
export function parsePromAnswer(body: unknown): PromAnswer {
  const b = body as { status?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } } | null;
  if (typeof b !== 'object' || b === null) return { error: 'not a Prometheus answer' };
  if (b.status !== 'success') return { error: typeof b.error === 'string' ? b.error : 'not a Prometheus answer' };
  if (b.data?.resultType !== 'vector' || !Array.isArray(b.data.result)) return { error: 'not an instant vector' };
  const samples = (b.data.result as PromSample[]).filter(
    (s) => typeof s?.metric === 'object' && s.metric !== null && Array.isArray(s.value) && typeof s.value[1] === 'string',
  );
  return { samples };
}

const samplesOf = (a: PromAnswer): readonly PromSample[] => ('samples' in a ? a.samples : []);
const errorsOf = (a: PromAnswer, q: TopQuery): string[] => ('error' in a ? [`${q}: ${a.error}`] : []);
const num = (s: PromSample): number => Number(s.value[1]);
/** The node a series belongs to: Prometheus' `node` label, else its target address. */
const nodeOf = (s: PromSample): string => s.metric.node ?? s.metric.instance ?? '?';

/** Builds the model from the queries' answers (pure: the time comes in). */
export function buildTopModel(prometheus: string, at: Date, answers: TopAnswers): TopModel {
  const nodes = buildNodes(answers);
  return {
    prometheus,
    at: at.toISOString(),
    nodes,
    role_errors: buildRoleErrors(answers, nodes.rows),
    instances: {
      rows: samplesOf(answers.instances)
        .map((s) => ({ status: s.metric.status ?? '?', count: num(s) }))
        .sort((a, b) => b.count - a.count || a.status.localeCompare(b.status)),
      errors: errorsOf(answers.instances, 'instances'),
    },
    queues: { rows: buildQueues(samplesOf(answers.queues)), errors: errorsOf(answers.queues, 'queues') },
    alerts: {
      rows: samplesOf(answers.alerts)
        .map((s) => {
          const { alertname = '?', severity = '', alertstate: _state, job: _job, __name__: _name, ...labels } = s.metric;
          return { alertname, severity, labels };
        })
        .sort((a, b) => a.alertname.localeCompare(b.alertname) || JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels))),
      errors: errorsOf(answers.alerts, 'alerts'),
    },
  };
}

function buildNodes(answers: TopAnswers): TopSection<TopNode> {
  const byNode = new Map<string, TopNode>();
  const row = (node: string): TopNode => {
    let r = byNode.get(node);
    if (!r) byNode.set(node, (r = { node, up: null, roles: [], states: {}, cpu_percent: null, rss_bytes: null }));
    return r;
  };
  for (const s of samplesOf(answers.up)) row(nodeOf(s)).up = num(s) === 1;
  for (const s of samplesOf(answers.info)) row(nodeOf(s)).roles = (s.metric.roles ?? '').split(',').filter(Boolean);
  for (const s of samplesOf(answers.roleState)) if (s.metric.role) row(nodeOf(s)).states[s.metric.role] = s.metric.state ?? '?';
  for (const s of samplesOf(answers.cpu)) row(nodeOf(s)).cpu_percent = Math.round(num(s) * 1000) / 10;
  for (const s of samplesOf(answers.rss)) row(nodeOf(s)).rss_bytes = num(s);
  for (const r of byNode.values()) {
    // A rate over the last minute outlives the scrapes: a node that is down has no CPU now.
    if (r.up === false) r.cpu_percent = null;
    // A role that has a state but is missing from the info (an older agent) still shows.
    for (const role of Object.keys(r.states)) if (!r.roles.includes(role)) r.roles.push(role);
    r.roles.sort();
  }
  const errors = (['up', 'info', 'roleState', 'cpu', 'rss'] as const).flatMap((q) => errorsOf(answers[q], q));
  return { rows: [...byNode.values()].sort((a, b) => a.node.localeCompare(b.node)), errors };
}

function buildRoleErrors(answers: TopAnswers, nodes: readonly TopNode[]): TopSection<TopRoleError> {
  const byKey = new Map<string, TopRoleError>();
  const row = (node: string, role: string): TopRoleError => {
    const key = `${node}\0${role}`;
    let r = byKey.get(key);
    const state = nodes.find((n) => n.node === node)?.states[role] ?? '?';
    if (!r) byKey.set(key, (r = { node, role, state, failed_applies: 0, rolled_back: 0 }));
    return r;
  };
  for (const n of nodes) for (const [role, state] of Object.entries(n.states)) if (state === 'error') row(n.node, role);
  for (const s of samplesOf(answers.failedApplies)) {
    if (!s.metric.role) continue;
    const r = row(nodeOf(s), s.metric.role);
    const n = Math.round(num(s));
    if (s.metric.outcome === 'rolled_back') r.rolled_back += n;
    else r.failed_applies += n;
  }
  return {
    rows: [...byKey.values()].sort((a, b) => a.node.localeCompare(b.node) || a.role.localeCompare(b.role)),
    errors: errorsOf(answers.failedApplies, 'failedApplies'),
  };
}

function buildQueues(samples: readonly PromSample[]): TopQueue[] {
  const byQueue = new Map<string, TopQueue>();
  for (const s of samples) {
    const queue = s.metric.queue ?? '?';
    let q = byQueue.get(queue);
    if (!q) byQueue.set(queue, (q = { queue, visible: 0, inflight: 0, delayed: 0, total: 0 }));
    const state = s.metric.state;
    if (state === 'visible' || state === 'inflight' || state === 'delayed') q[state] += num(s);
    q.total += num(s);
  }
  return [...byQueue.values()].sort((a, b) => b.total - a.total || a.queue.localeCompare(b.queue)).slice(0, TOP_QUEUES);
}
