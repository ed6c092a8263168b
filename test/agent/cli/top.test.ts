/**
 * `mammatus top` (agent/cli/top*.ts): the model from canned Prometheus answers, the rendering
 * (golden text, cut to the width), and the command with a fake fetch and terminal: a query error
 * stays in its section, no Prometheus is exit 1, the live view restores the terminal on a signal.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildTopModel,
  parsePromAnswer,
  TOP_QUERIES,
  type PromAnswer,
  type TopAnswers,
  type TopQuery,
} from '../../../agent/cli/top-model.js';
import { fitLine, formatBytes, renderTop } from '../../../agent/cli/top-render.js';
import { configuredPrometheus, topCommand, type TopDeps, type TopTerminal } from '../../../agent/cli/top.js';
import { cliRunner } from '../../helpers/run-cli.js';
import { freePort } from '../../../scripts/lib/ports.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'top');
const AT = new Date('2026-12-07T06:30:00.000Z');

/** An instant vector answer of `[labels, value]` pairs. */
const vec = (...samples: [Record<string, string>, number][]): PromAnswer => ({
  samples: samples.map(([metric, v]) => ({ metric, value: [AT.getTime() / 1000, String(v)] as const })),
});

/** Canned answers of a three-node cluster with a role in error, instances, queues and alerts. */
function cannedAnswers(): TopAnswers {
  const job = { job: 'mammatus' };
  return {
    up: vec([{ ...job, node: 'ctl-1' }, 1], [{ ...job, node: 'gw-1' }, 1], [{ ...job, node: 'cmp-1' }, 0]),
    info: vec(
      [{ __name__: 'mammatus_agent_info', ...job, node: 'ctl-1', roles: 'compute,controller', version: '0.9.0' }, 1],
      [{ __name__: 'mammatus_agent_info', ...job, node: 'gw-1', roles: 'gateway', version: '0.9.0' }, 1],
    ),
    roleState: vec(
      [{ ...job, node: 'ctl-1', role: 'controller', state: 'ok' }, 1],
      [{ ...job, node: 'ctl-1', role: 'compute', state: 'error' }, 1],
      [{ ...job, node: 'gw-1', role: 'gateway', state: 'ok' }, 1],
    ),
    cpu: vec([{ ...job, node: 'ctl-1' }, 0.0234], [{ ...job, node: 'gw-1' }, 0.001], [{ ...job, node: 'cmp-1' }, 0.5]),
    rss: vec([{ ...job, node: 'ctl-1' }, 44_144_640], [{ ...job, node: 'gw-1' }, 38_000_000]),
    failedApplies: vec(
      [{ node: 'ctl-1', role: 'compute', outcome: 'error' }, 2.9999],
      [{ node: 'gw-1', role: 'gateway', outcome: 'rolled_back' }, 1],
    ),
    instances: vec([{ status: 'running' }, 4], [{ status: 'stopped' }, 1], [{ status: 'error' }, 1]),
    queues: vec(
      [{ queue: 'jobs', state: 'visible' }, 120],
      [{ queue: 'jobs', state: 'inflight' }, 3],
      [{ queue: 'jobs', state: 'delayed' }, 0],
      [{ queue: 'mail', state: 'visible' }, 7],
    ),
    alerts: vec([
      {
        __name__: 'ALERTS',
        alertname: 'MammatusRoleError',
        alertstate: 'firing',
        severity: 'critical',
        node: 'ctl-1',
        role: 'compute',
        job: 'mammatus',
      },
      1,
    ]),
  };
}

describe('top model', () => {
  it('reads /api/v1/query answers and errors', () => {
    expect(
      parsePromAnswer({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: '1' }, value: [1, '2'] }] } }),
    ).toEqual({
      samples: [{ metric: { a: '1' }, value: [1, '2'] }],
    });
    expect(parsePromAnswer({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' })).toEqual({
      error: 'parse error at char 3',
    });
    expect(parsePromAnswer({ status: 'success', data: { resultType: 'matrix', result: [] } })).toEqual({ error: 'not an instant vector' });
    expect(parsePromAnswer('<html>')).toEqual({ error: 'not a Prometheus answer' });
  });

  it('builds nodes, role errors, instances, queues and alerts', () => {
    const m = buildTopModel('http://p:9090', AT, cannedAnswers());
    expect(m.at).toBe('2026-12-07T06:30:00.000Z');
    expect(m.nodes.rows).toEqual([
      { node: 'cmp-1', up: false, roles: [], states: {}, cpu_percent: null, rss_bytes: null },
      {
        node: 'ctl-1',
        up: true,
        roles: ['compute', 'controller'],
        states: { controller: 'ok', compute: 'error' },
        cpu_percent: 2.3,
        rss_bytes: 44_144_640,
      },
      { node: 'gw-1', up: true, roles: ['gateway'], states: { gateway: 'ok' }, cpu_percent: 0.1, rss_bytes: 38_000_000 },
    ]);
    expect(m.role_errors.rows).toEqual([
      { node: 'ctl-1', role: 'compute', state: 'error', failed_applies: 3, rolled_back: 0 },
      { node: 'gw-1', role: 'gateway', state: 'ok', failed_applies: 0, rolled_back: 1 },
    ]);
    expect(m.instances.rows.map((r) => [r.status, r.count])).toEqual([
      ['running', 4],
      ['error', 1],
      ['stopped', 1],
    ]);
    expect(m.queues.rows).toEqual([
      { queue: 'jobs', visible: 120, inflight: 3, delayed: 0, total: 123 },
      { queue: 'mail', visible: 7, inflight: 0, delayed: 0, total: 7 },
    ]);
    expect(m.alerts.rows).toEqual([{ alertname: 'MammatusRoleError', severity: 'critical', labels: { node: 'ctl-1', role: 'compute' } }]);
    for (const s of [m.nodes, m.role_errors, m.instances, m.queues, m.alerts]) expect(s.errors).toEqual([]);
  });

  it('keeps the deepest 10 queues and puts a query error in its section', () => {
    const answers = {
      ...cannedAnswers(),
      queues: vec(...Array.from({ length: 12 }, (_, i) => [{ queue: `q${i}`, state: 'visible' }, i] as [Record<string, string>, number])),
      cpu: { error: 'query timed out' },
    };
    const m = buildTopModel('http://p:9090', AT, answers);
    expect(m.queues.rows.map((q) => q.queue)).toEqual(['q11', 'q10', 'q9', 'q8', 'q7', 'q6', 'q5', 'q4', 'q3', 'q2']);
    expect(m.nodes.errors).toEqual(['cpu: query timed out']);
    expect(m.nodes.rows.find((n) => n.node === 'ctl-1')?.cpu_percent).toBeNull();
  });
});

describe('top render', () => {
  const model = () => buildTopModel('http://127.0.0.1:9090', AT, cannedAnswers());

  it('renders every section (golden)', async () => {
    await expect(renderTop(model(), { width: 200 }).join('\n') + '\n').toMatchFileSnapshot(join(GOLDEN, 'cluster.txt'));
  });

  it('cuts lines to the width and frames to the height (golden)', async () => {
    const lines = renderTop(model(), { width: 40, height: 12 });
    expect(lines).toHaveLength(12);
    expect(Math.max(...lines.map((l) => [...l].length))).toBeLessThanOrEqual(40);
    await expect(lines.join('\n') + '\n').toMatchFileSnapshot(join(GOLDEN, 'narrow.txt'));
  });

  it('shows empty sections as (none) and query errors as ! lines (golden)', async () => {
    const empty = vec();
    const answers = Object.fromEntries(Object.keys(TOP_QUERIES).map((q) => [q, empty])) as Record<TopQuery, PromAnswer>;
    answers.alerts = { error: 'no answer in 2 s' };
    await expect(renderTop(buildTopModel('http://p:9090', AT, answers), { width: 120 }).join('\n') + '\n').toMatchFileSnapshot(
      join(GOLDEN, 'empty.txt'),
    );
  });

  it('formats bytes and cuts lines', () => {
    expect([formatBytes(512), formatBytes(3072), formatBytes(44_144_640), formatBytes(3 * 2 ** 30)]).toEqual([
      '512 B',
      '3.0 KiB',
      '42.1 MiB',
      '3.0 GiB',
    ]);
    expect([fitLine('abcdef', 4), fitLine('abc', 4), fitLine('abc', 0)]).toEqual(['abc…', 'abc', '']);
  });
});

/** A fetch that answers each query from `answers` (by the query text), or fails like a closed port. */
function fakeFetch(answers: TopAnswers | 'refused'): typeof fetch {
  const byText = new Map(Object.entries(TOP_QUERIES).map(([k, q]) => [q, k as TopQuery]));
  return async (input: string | URL | Request) => {
    const href = input instanceof Request ? input.url : input.toString();
    if (answers === 'refused') throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    const q = byText.get(new URL(href).searchParams.get('query') ?? '')!;
    const a = answers[q];
    const body =
      'error' in a
        ? { status: 'error', errorType: 'execution', error: a.error }
        : { status: 'success', data: { resultType: 'vector', result: a.samples } };
    return new Response(JSON.stringify(body), { status: 'error' in a ? 422 : 200 });
  };
}

function fakeTerminal(columns?: number) {
  const written: string[] = [];
  let stop = () => {};
  let removed = false;
  const terminal: TopTerminal = {
    columns: () => columns,
    rows: () => 40,
    write: (t) => void written.push(t),
    onStop: (s) => {
      stop = s;
      return () => void (removed = true);
    },
  };
  return { terminal, written, stop: () => stop(), removed: () => removed };
}

function captured() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

describe('top command', () => {
  const deps = (answers: TopAnswers | 'refused', t = fakeTerminal()): TopDeps => ({
    fetch: fakeFetch(answers),
    now: () => AT,
    terminal: t.terminal,
  });

  it('--json prints the model, a failed query inside its section', async () => {
    const c = captured();
    const code = await topCommand(
      { json: true, prometheus: 'http://p:9090/' },
      c.io,
      deps({ ...cannedAnswers(), alerts: { error: 'bad' } }),
    );
    expect(code).toBe(0);
    const m = JSON.parse(c.out.join('\n'));
    expect(m).toMatchObject({ prometheus: 'http://p:9090', alerts: { rows: [], errors: ['alerts: bad'] } });
    expect(m.nodes.rows).toHaveLength(3);
  });

  it('--once prints one frame cut to the terminal width', async () => {
    const c = captured();
    expect(await topCommand({ once: true }, c.io, deps(cannedAnswers(), fakeTerminal(30)))).toBe(0);
    expect(c.out[0]).toBe('mammatus top  http://127.0.0.…');
    expect(c.out.every((l) => [...l].length <= 30)).toBe(true);
  });

  it('exits 1 naming the URL when Prometheus cannot be reached', async () => {
    const c = captured();
    expect(await topCommand({ once: true, prometheus: 'http://10.0.0.9:9090' }, c.io, deps('refused'))).toBe(1);
    expect(c.err).toEqual([
      'error: no Prometheus at http://10.0.0.9:9090: ECONNREFUSED — is roles.controller.monitoring.store set on this controller?',
    ]);
  });

  it('redraws until a signal, then restores the terminal', async () => {
    const t = fakeTerminal(100);
    const running = topCommand({ interval: '250ms' }, captured().io, deps(cannedAnswers(), t));
    await new Promise((r) => setTimeout(r, 600));
    t.stop();
    expect(await running).toBe(0);
    expect(t.written[0]).toBe('\x1b[?1049h\x1b[?25l');
    expect(t.written.at(-1)).toBe('\x1b[?25h\x1b[?1049l');
    const frames = t.written.slice(1, -1);
    expect(frames.length).toBeGreaterThanOrEqual(2);
    for (const f of frames) expect(f.startsWith('\x1b[H\x1b[2Jmammatus top  http://127.0.0.1:9090  ')).toBe(true);
    expect(t.removed()).toBe(true);
  });
});

describe('top through the CLI', () => {
  const run = cliRunner();
  it('exits 1 on a closed port and 2 on bad flags', async () => {
    const port = await freePort(); // nothing listens there
    const r = await run('top', '--once', '--prometheus', `http://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: no Prometheus at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED — is roles\.controller\.monitoring\.store set/);
    expect((await run('top', '--interval', 'soon')).code).toBe(2);
    expect((await run('top', '--interval', '10ms')).err).toMatch(/--interval: at least 250ms/);
    expect((await run('top', '--prometheus', 'ftp://x')).code).toBe(2);
  });
});

describe("top's Prometheus from the agent config", () => {
  const config = (yaml: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'top-config-'));
    writeFileSync(join(dir, 'agent.yaml'), yaml);
    return join(dir, 'agent.yaml');
  };

  it("asks this controller's store where the config runs one, else the default", async () => {
    const listen = 'roles: { controller: { monitoring: { store: prometheus, prometheus: { listen: "0.0.0.0:9190" } } } }\n';
    expect(await configuredPrometheus(config(listen))).toBe('http://127.0.0.1:9190');
    expect(await configuredPrometheus(config('roles: { controller: { monitoring: { store: influxdb } } }\n'))).toBe(
      'http://127.0.0.1:9090',
    );
    // No store, no file, a config that does not load: the caller's default.
    expect(await configuredPrometheus(config('roles: { controller: {} }\n'))).toBeUndefined();
    expect(await configuredPrometheus(join(tmpdir(), 'no-such-dir', 'agent.yaml'))).toBeUndefined();
    expect(await configuredPrometheus(config('nonsense: [\n'))).toBeUndefined();
  });
});

describe("top's output is safe for the terminal", () => {
  it('shows control characters from label values as ?, never as escape sequences', () => {
    const answers = { ...cannedAnswers(), up: vec([{ node: 'evil\u001b]0;pwned\u0007' }, 1]) };
    const out = renderTop(buildTopModel('http://p:9090', AT, answers), { width: 200 }).join('\n');
    expect(out).toContain('evil?]0;pwned?');
    // eslint-disable-next-line no-control-regex -- matching them is the point
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });
});
