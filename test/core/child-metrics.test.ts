/**
 * A child's metrics over the IPC channel (core/child-service.ts `metrics`, agent/cli/service-child.ts):
 * the answer, a child that does not answer in time, one that dies while asked, one not running, and
 * the real `mammatus service run` answering with its own registry (no process metrics).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { pino } from 'pino';
import { buildSpawn } from '../../core/exec.js';
import { ChildService, exportChildMetrics, serviceArgv, type ChildInit } from '../../core/child-service.js';
import { exposition } from '../../core/metrics.js';
import { freePort } from '../../scripts/lib/ports.js';

// Ready at once; a metrics request is answered per `init.mode`: `ok` with a line naming its id,
// `silent` never, `die` by exiting.
const CHILD = `
process.once('message', (init) => {
  process.send({ type: 'ready' });
  process.on('message', (m) => {
    if (m.type !== 'metrics') return;
    if (init.mode === 'die') process.exit(3);
    if (init.mode === 'ok') process.send({ type: 'metrics', id: m.id, text: 'demo_answers_total{id="' + m.id + '"} 1\\n' });
  });
});
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`;

const log = pino({ level: 'silent' });

async function started(mode: string): Promise<ChildService> {
  const child = new ChildService({
    spawn: await buildSpawn(),
    log,
    name: 'demo',
    argv: [process.execPath, ['-e', CHILD]],
    minRestartMs: 60_000,
  });
  onTestFinished(() => child.stop());
  await child.start((): ChildInit => ({ type: 'init', service: 'demo', level: 'info', mode }));
  return child;
}

describe('ChildService.metrics', () => {
  it("returns the child's answer to its own request, and joins the agent's exposition while exported", async () => {
    const child = await started('ok');
    const [a, b] = await Promise.all([child.metrics(2000), child.metrics(2000)]);
    expect(a).toMatch(/^demo_answers_total\{id="\d+"\} 1\n$/);
    expect(b).not.toBe(a);
    const unexport = exportChildMetrics('demo', child);
    expect(await exposition()).toMatch(/demo_answers_total\{id="\d+"\} 1/);
    unexport();
    expect(await exposition()).not.toContain('demo_answers_total');
  });

  it('rejects after the timeout when the child does not answer; the exposition leaves it out and counts it', async () => {
    const child = await started('silent');
    await expect(child.metrics(300)).rejects.toThrow('demo: no metrics within 300 ms');
    const unexport = exportChildMetrics('demo-silent', child, 200);
    onTestFinished(unexport);
    const text = await exposition();
    expect(text).toMatch(/mammatus_metrics_collector_errors_total\{collector="demo-silent"\} [1-9]/);
  });

  it('rejects at once when the child dies while asked, and when none runs', async () => {
    const child = await started('die');
    const t0 = Date.now();
    await expect(child.metrics(10_000)).rejects.toThrow('demo exited');
    expect(Date.now() - t0).toBeLessThan(5000);
    await child.stop();
    await expect(child.metrics(1000)).rejects.toThrow('demo is not running');
  });
});

describe('mammatus service run: metrics over IPC', () => {
  it("answers with the child's registry, without the process metrics (they are the agent's); a shared family appears once", async () => {
    const spawn = await buildSpawn();
    const child = new ChildService({
      spawn,
      log,
      name: 'boot-http',
      argv: serviceArgv([process.execPath, ['--import', 'tsx', 'agent/cli/bin.ts']], 'boot-http'),
      readyTimeoutMs: 60_000,
    });
    onTestFinished(() => child.stop());
    const port = await freePort();
    await child.start(() => ({
      type: 'init',
      service: 'boot-http',
      level: 'warn',
      section: { host: '127.0.0.1', port, files: {}, dirs: {} },
    }));
    const text = await child.metrics(5000);
    expect(text).toContain('# TYPE mammatus_metrics_collector_errors_total counter');
    expect(text).not.toMatch(/^process_|^nodejs_/m);
    // The family both registries have appears once in the agent's exposition.
    const unexport = exportChildMetrics('boot-http', child);
    onTestFinished(unexport);
    expect((await exposition()).match(/^# TYPE mammatus_metrics_collector_errors_total /gm)).toHaveLength(1);
  }, 90_000);
});
