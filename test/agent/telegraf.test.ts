/** applyTelegraf: writes the drop-in only where Telegraf is installed, reloads a running Telegraf, never throws. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { applyTelegraf } from '../../agent/telegraf.js';
import { buildFileOps } from '../../core/files.js';
import { renderTelegraf, TELEGRAF_CONF } from '../../core/telegraf.js';
import { memoryFiles } from '../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../helpers/recording-run.js';

const log = pino({ level: 'silent' });
const rendered = renderTelegraf({ node: 'cmp-1', influxdb: ['10.0.0.2'] });
// memoryFiles answers `mode` for any path it holds: an entry stands for the package's directory.
const installed = () => memoryFiles({ '/etc/telegraf': '' });
const isActive = ['systemctl', 'is-active', '--quiet', 'telegraf.service'];
const reload = ['systemctl', 'reload', 'telegraf.service'];

describe('applyTelegraf', () => {
  it('does nothing where Telegraf is not installed', async () => {
    const files = memoryFiles();
    const run = recordingRun();
    expect(await applyTelegraf(files, run, rendered, log)).toBe('not-installed');
    expect(files.ops).toEqual([]);
    expect(run.calls).toEqual([]);
  });

  it('tells an installed Telegraf by its directory on a real file system', async () => {
    const root = mkdtempSync(join(tmpdir(), 'telegraf-apply-'));
    try {
      const files = buildFileOps({ root });
      expect(await applyTelegraf(files, recordingRun(), rendered, log)).toBe('not-installed');
      mkdirSync(join(root, 'etc/telegraf'), { recursive: true });
      expect(await applyTelegraf(files, recordingRun(), rendered, log)).toBe('reloaded');
      expect(readFileSync(join(root, TELEGRAF_CONF), 'utf8')).toBe(rendered.content);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('writes the drop-in and reloads a running Telegraf', async () => {
    const files = installed();
    const run = recordingRun();
    expect(await applyTelegraf(files, run, rendered, log)).toBe('reloaded');
    expect(files.contents()[TELEGRAF_CONF]).toBe(rendered.content);
    expect(run.calls).toEqual([isActive, reload]);
  });

  it('leaves an unchanged drop-in and Telegraf alone', async () => {
    const files = installed();
    await files.write(TELEGRAF_CONF, rendered.content);
    const run = recordingRun();
    expect(await applyTelegraf(files, run, rendered, log)).toBe('unchanged');
    expect(run.calls).toEqual([]);
  });

  it('writes without a reload when Telegraf is not running', async () => {
    const files = installed();
    const run = recordingRun((argv) => (argv[1] === 'is-active' ? commandFailed(argv, 3) : undefined));
    expect(await applyTelegraf(files, run, rendered, log)).toBe('written');
    expect(files.contents()[TELEGRAF_CONF]).toBe(rendered.content);
    expect(run.calls).toEqual([isActive]);
  });

  it('reports a failed write or reload instead of throwing', async () => {
    const files = installed();
    files.failWrite(TELEGRAF_CONF);
    expect(await applyTelegraf(files, recordingRun(), rendered, log)).toBe('failed');
    const run = recordingRun((argv) => (argv[1] === 'reload' ? commandFailed(argv, 1, 'Job for telegraf.service failed') : undefined));
    expect(await applyTelegraf(installed(), run, rendered, log)).toBe('failed');
  });
});
