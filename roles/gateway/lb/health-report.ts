/**
 * The gateway's side of target health (core/lb-health.ts): asks its HAProxy's runtime API for the
 * servers' state (`show stat`, servers only) every {@link POLL_MS}, and publishes each balancer's
 * report when it changed (a server went down, came up, was added) and at least every
 * `LB_HEALTH_REFRESH_MS`, so the bucket's TTL keeps the reports of a live gateway and drops those
 * of a dead one. Reports of balancers the gateway stopped serving are deleted. HAProxy not
 * answering (stopped, reloading) publishes nothing: the last reports age, then expire, which is
 * what the operator should see. Failures to publish are logged once per outage, never fatal.
 *
 * `show stat` rather than `show servers state`: it carries the last check's code and text
 * (`L4CON`, "Connection refused") and the time since the last change, which the operator needs to
 * tell "down since a minute" from "flapping".
 */
import type { Logger } from '../../../core/contracts.js';
import { detach, errorMessage } from '../../../core/errors.js';
import {
  LB_HEALTH_MAX_BYTES,
  LB_HEALTH_MAX_SERVERS,
  LB_HEALTH_REFRESH_MS,
  type LbHealthReport,
  type LbHealthSink,
  type LbServerHealth,
  type LbServerStatus,
} from '../../../core/lb-health.js';
import type { LbSelector, ResolvedBalancer } from '../../../core/lb-record.js';
import { HaproxyRuntime } from './haproxy-runtime.js';
import { backendName, serverName } from './names.js';

/** How often HAProxy is asked (a local socket, one short answer). */
export const POLL_MS = 2000;

/** One server line of `show stat`. */
export interface ServerStat {
  readonly backend: string;
  readonly server: string;
  /** HAProxy's `status`: `UP`, `DOWN`, `MAINT`, `UP 1/3` (going down), `no check`, … */
  readonly status: string;
  readonly lastchg?: number;
  readonly checkStatus?: string;
  readonly lastCheck?: string;
}

/** Splits one CSV line (HAProxy quotes a field holding a comma or quote, doubling quotes). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (line[i] === '"') break;
        else v += line[i++];
      }
      out.push(v);
      i += 2; // the closing quote and the comma
    } else {
      const end = line.indexOf(',', i);
      out.push(line.slice(i, end < 0 ? line.length : end));
      if (end < 0) break;
      i = end + 1;
    }
  }
  return out;
}

/** Parses `show stat -1 4 -1` (its `# ` header names the columns); frontends and backends are skipped. */
export function parseServerStats(text: string): ServerStat[] {
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return [];
  const cols = csvFields(header.slice(2));
  const at = (f: string[], name: string): string => f[cols.indexOf(name)] ?? '';
  const out: ServerStat[] = [];
  for (const line of lines) {
    if (!line.trim() || line.startsWith('#')) continue;
    const f = csvFields(line);
    const server = at(f, 'svname');
    if (!server || server === 'FRONTEND' || server === 'BACKEND') continue;
    const lastchg = Number(at(f, 'lastchg'));
    out.push({
      backend: at(f, 'pxname'),
      server,
      status: at(f, 'status'),
      ...(at(f, 'lastchg') !== '' && Number.isFinite(lastchg) ? { lastchg } : {}),
      // `* ` marks a check in progress: the same result, which must not read as a change.
      ...(at(f, 'check_status') ? { checkStatus: at(f, 'check_status').replace(/^\* /, '') } : {}),
      ...(at(f, 'last_chk') ? { lastCheck: at(f, 'last_chk') } : {}),
    });
  }
  return out;
}

/** HAProxy's status word as ours: `UP 1/3` is still up (going down), `DOWN 1/2` still down. */
export function serverStatus(status: string): LbServerStatus {
  const s = status.toUpperCase();
  if (s.startsWith('MAINT')) return 'maint';
  if (s.startsWith('DRAIN') || s.startsWith('NOLB')) return 'drain';
  if (s.startsWith('UP') || s === 'NO CHECK') return 'up';
  return 'down';
}

const formatSelector = (s: LbSelector): string => (s.kind === 'tag' ? `tag:${s.key}=${s.value}` : `${s.kind}:${s.name}`);

/**
 * The target that selected a server, from its name (`i-<instance>-<port>`, `m-<member>-<port>`):
 * `instance:NAME`/`member:NAME` at that port when the balancer names it, else its tag targets at that
 * port (an instance's tags are not known here: one tag target is that one, several are listed).
 */
export function targetOf(b: ResolvedBalancer, name: string): { target: string; machine: string } {
  const m = /^([im])-(.+)-(\d+)$/.exec(name);
  if (!m) return { target: '?', machine: name };
  const [kind, machine, port] = [m[1] === 'i' ? 'instance' : 'member', m[2], Number(m[3])];
  const atPort = b.record.targets.filter((t) => t.port === port);
  const named = atPort.find((t) => t.selector.kind === kind && t.selector.kind !== 'tag' && t.selector.name === machine);
  if (named) return { target: `${formatSelector(named.selector)}:${port}`, machine };
  const tags = kind === 'instance' ? atPort.filter((t) => t.selector.kind === 'tag') : [];
  // Readers take at most 300 characters of it: many tag targets on one port are cut (rare; still readable).
  const target = tags.length
    ? tags
        .map((t) => `${formatSelector(t.selector)}:${port}`)
        .join('|')
        .slice(0, 300)
    : '?';
  return { target, machine };
}

/**
 * Each balancer's report from one `show stat` answer: its resolved servers as HAProxy has them
 * (a server the answer lacks — not added yet — is down). At most `LB_HEALTH_MAX_SERVERS` servers.
 */
export function buildReports(
  balancers: readonly ResolvedBalancer[],
  stats: readonly ServerStat[],
  at: Date,
): Omit<LbHealthReport, 'gateway'>[] {
  const byKey = new Map(stats.map((s) => [`${s.backend}/${s.server}`, s]));
  return balancers.map((b) => {
    const servers: LbServerHealth[] = b.servers.slice(0, LB_HEALTH_MAX_SERVERS).map((srv) => {
      const stat = byKey.get(`${backendName(b.record)}/${serverName(srv)}`);
      const check = [stat?.checkStatus, stat?.lastCheck].filter(Boolean).join(' ').slice(0, 200);
      return {
        server: srv.name,
        ...targetOf(b, srv.name),
        addr: srv.addr,
        port: srv.port,
        status: stat ? serverStatus(stat.status) : 'down',
        ...(check ? { check } : stat ? {} : { check: 'not in haproxy' }),
        ...(stat?.lastchg !== undefined ? { since_s: stat.lastchg } : {}),
      };
    });
    return { balancer: b.record.name, at: at.toISOString(), servers };
  });
}

/** What makes a report news: everything but its time and the seconds since a change. */
function content(r: Omit<LbHealthReport, 'gateway'>): string {
  return JSON.stringify(r.servers.map(({ since_s: _, ...s }) => s));
}

/** Publishes a gateway's target health (see the header). One per role; `update` after every apply. */
export class LbHealthReporter {
  private runtime: HaproxyRuntime | undefined;
  private balancers: readonly ResolvedBalancer[] = [];
  /** Balancer → what was last published and when. */
  private readonly published = new Map<string, { readonly content: string; readonly at: number }>();
  private timer: NodeJS.Timeout | undefined;
  /** The round in flight. */
  private round: Promise<void> | undefined;
  private failing = false;

  constructor(
    private readonly sink: LbHealthSink,
    private readonly log: Logger,
    private readonly pollMs = POLL_MS,
    private readonly refreshMs = LB_HEALTH_REFRESH_MS,
  ) {}

  /** The balancers HAProxy now runs and its admin socket; starts polling (at once). */
  update(adminSocket: string, balancers: readonly ResolvedBalancer[]): void {
    this.runtime = new HaproxyRuntime(adminSocket, { timeoutMs: 1000, maxBytes: 1 << 20 });
    this.balancers = balancers;
    if (!this.timer) {
      this.timer = setInterval(() => this.pollNow(), this.pollMs);
      this.timer.unref();
    }
    this.pollNow();
  }

  /** `poll` never throws (it logs): nothing to handle. */
  private pollNow(): void {
    detach(this.poll(), () => undefined);
  }

  /**
   * One round: ask HAProxy, publish what changed or is due, delete reports of balancers gone. While
   * one runs, a call waits for it rather than start another (one question to HAProxy at a time).
   */
  poll(): Promise<void> {
    this.round ??= this.pollOnce().finally(() => (this.round = undefined));
    return this.round;
  }

  private async pollOnce(): Promise<void> {
    if (!this.runtime) return;
    try {
      const names = new Set(this.balancers.map((b) => b.record.name));
      for (const name of [...this.published.keys()].filter((n) => !names.has(n))) {
        await this.sink.remove(name);
        this.published.delete(name);
      }
      if (!this.balancers.length) return;
      let stats: ServerStat[];
      try {
        stats = parseServerStats(await this.runtime.command('show stat -1 4 -1'));
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'haproxy not answering; no health report this round');
        return;
      }
      const now = Date.now();
      for (const report of buildReports(this.balancers, stats, new Date(now))) {
        const last = this.published.get(report.balancer);
        const c = content(report);
        if (last && last.content === c && now - last.at < this.refreshMs) continue;
        // Room for the gateway's name, which the sink adds.
        if (Buffer.byteLength(JSON.stringify(report)) > LB_HEALTH_MAX_BYTES - 256) {
          this.log.warn({ lb: report.balancer }, 'health report too large; not published');
          continue;
        }
        await this.sink.publish(report);
        this.published.set(report.balancer, { content: c, at: now });
      }
      if (this.failing) this.log.info('target health published again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err: errorMessage(err) }, 'cannot publish target health; retrying');
      this.failing = true;
    }
  }

  /** Stops polling and closes the sink (reports left in the bucket expire with its TTL). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.runtime = undefined;
    await this.sink.stop();
  }
}
