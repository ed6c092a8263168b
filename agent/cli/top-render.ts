/**
 * One frame of `mammatus top` as text lines (pure): the model's sections as tables, each query
 * error under the section it belongs to, every line cut to the terminal's width.
 */
import { formatTable } from './common.js';
import type { TopModel, TopNode, TopSection } from './top-model.js';

/** The terminal's size; `height` absent: as many lines as the frame has (`--once`). */
export interface TopScreen {
  readonly width: number;
  readonly height?: number;
}

const KIB = 1024;

/** Bytes as `512 B`, `3.0 KiB`, `42.1 MiB`, `1.2 GiB`. */
export function formatBytes(n: number): string {
  if (n < KIB) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / KIB;
  let i = 0;
  while (v >= KIB && i < units.length - 1) {
    v /= KIB;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A line cut to `width` columns, its last one `…` when cut. */
export function fitLine(line: string, width: number): string {
  if (width <= 0) return '';
  const chars = [...line];
  return chars.length <= width ? line : `${chars.slice(0, width - 1).join('')}…`;
}

/** The state cell: `ok` when every role is ok, else `role:state` pairs (as `mammatus status` shows). */
function stateCell(n: TopNode): string {
  const entries = Object.entries(n.states).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return '-';
  if (entries.every(([, s]) => s === 'ok')) return 'ok';
  return entries.map(([r, s]) => `${r}:${s}`).join(' ');
}

const upCell = (up: boolean | null): string => (up === null ? '?' : up ? 'up' : 'DOWN');
const count = (n: number): string => String(Math.round(n));

/** A section: its title, its table (or `(none)`), then a `! …` line per failed query. */
function section<T>(title: string, s: TopSection<T>, header: string[], cells: (row: T) => string[]): string[] {
  const lines = ['', title];
  if (s.rows.length > 0) lines.push(...formatTable([header, ...s.rows.map(cells)]).map((l) => `  ${l}`));
  else if (s.errors.length === 0) lines.push('  (none)');
  for (const e of s.errors) lines.push(`  ! ${e}`);
  return lines;
}

/** The frame's lines, each at most `screen.width` columns, at most `screen.height` of them. */
export function renderTop(model: TopModel, screen: TopScreen): string[] {
  const down = model.nodes.rows.filter((n) => n.up === false).length;
  const at = `${model.at.slice(0, 19).replace('T', ' ')} UTC`;
  const lines = [
    `mammatus top  ${model.prometheus}  ${at}`,
    ...section(
      `NODES (${model.nodes.rows.length}${down ? `, ${down} down` : ''})`,
      model.nodes,
      ['NODE', 'UP', 'ROLES', 'STATE', 'CPU', 'RSS'],
      (n) => [
        n.node,
        upCell(n.up),
        n.roles.join(',') || '-',
        stateCell(n),
        n.cpu_percent === null ? '-' : `${n.cpu_percent.toFixed(1)}%`,
        n.rss_bytes === null ? '-' : formatBytes(n.rss_bytes),
      ],
    ),
    ...section(
      'ROLE ERRORS (now, and failed applies in the last 15m)',
      model.role_errors,
      ['NODE', 'ROLE', 'STATE', 'FAILED', 'ROLLED BACK'],
      (r) => [r.node, r.role, r.state, count(r.failed_applies), count(r.rolled_back)],
    ),
    ...section('INSTANCES', model.instances, ['STATUS', 'COUNT'], (r) => [r.status, count(r.count)]),
    ...section('QUEUES (deepest 10)', model.queues, ['QUEUE', 'TOTAL', 'VISIBLE', 'INFLIGHT', 'DELAYED'], (q) => [
      q.queue,
      count(q.total),
      count(q.visible),
      count(q.inflight),
      count(q.delayed),
    ]),
    ...section('ALERTS (firing)', model.alerts, ['ALERT', 'SEVERITY', 'LABELS'], (a) => [
      a.alertname,
      a.severity || '-',
      Object.entries(a.labels)
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
    ]),
  ];
  // Label values come from the scraped metrics (member names, role tags, queue names): control
  // characters in them must not reach the terminal as escape sequences.
  // eslint-disable-next-line no-control-regex -- matching them is the point
  const fitted = lines.map((l) => fitLine(l.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?'), screen.width));
  if (screen.height === undefined || fitted.length <= screen.height) return fitted;
  const keep = Math.max(screen.height - 1, 0);
  return [...fitted.slice(0, keep), fitLine(`… ${fitted.length - keep} more lines (a taller terminal shows them)`, screen.width)];
}
