/**
 * The config watcher on a real filesystem (chokidar, inotify): an integration test, because what it
 * proves is the kernel's events and the debounce around them, so time passes for real here.
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { DEBOUNCE_MS, watchConfig } from '../../agent/config/watch.js';

const log = pino({ level: 'silent' });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mammatus-watch-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Replaces `file` the way config tools do: write a temp file beside it, then rename over it. */
async function replaceByRename(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

/** Starts a watcher on `dir` and `dir/agent.d` that counts `onChange` calls. */
async function start(files: string[] = []) {
  const onChange = vi.fn();
  const watcher = watchConfig(files, [dir, path.join(dir, 'agent.d')], onChange, log);
  onTestFinished(() => watcher.close());
  await watcher.ready;
  return { onChange, watcher };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('watchConfig', () => {
  it("in the main file's own directory, reacts to the main file only (as loadConfig reads it)", async () => {
    const main = path.join(dir, 'agent.yaml');
    await writeFile(main, 'log: { level: info }\n');
    const onChange = vi.fn();
    const watcher = watchConfig([main], [path.join(dir, 'agent.d')], onChange, log);
    onTestFinished(() => watcher.close());
    await watcher.ready;
    await replaceByRename(path.join(dir, 'other-node.yaml'), 'x: 1\n');
    await sleep(DEBOUNCE_MS + 600);
    expect(onChange).not.toHaveBeenCalled();
    await replaceByRename(main, 'log: { level: debug }\n');
    await vi.waitFor(() => expect(onChange).toHaveBeenCalledTimes(1), { timeout: 2000, interval: 20 });
  });

  it('calls onChange once for a rename-replace of a yaml file', async () => {
    const file = path.join(dir, 'agent.yaml');
    await writeFile(file, 'log: { level: info }\n');
    const { onChange } = await start();

    await replaceByRename(file, 'log: { level: debug }\n');
    await vi.waitFor(() => expect(onChange).toHaveBeenCalled(), { timeout: 2000, interval: 20 });
    // Past the debounce again: the temp file's add/unlink and the rename were one burst.
    await sleep(DEBOUNCE_MS * 2);
    expect(onChange).toHaveBeenCalledTimes(1);
  });

  it('ignores files that are not yaml', async () => {
    const { onChange } = await start();
    await replaceByRename(path.join(dir, 'notes.txt'), 'hello\n');
    await writeFile(path.join(dir, '.#agent.yaml'), 'x');
    await sleep(DEBOUNCE_MS + 600);
    expect(onChange).not.toHaveBeenCalled();
  });

  it('watches a named config file whatever its extension', async () => {
    const file = path.join(dir, 'agent.conf');
    await writeFile(file, 'state_dir: /a\n');
    const { onChange } = await start([file]);
    await replaceByRename(file, 'state_dir: /b\n');
    await vi.waitFor(() => expect(onChange).toHaveBeenCalledTimes(1), { timeout: 2000, interval: 20 });
  });

  it('picks up an agent.d directory created after the start', async () => {
    const { onChange } = await start();
    await mkdir(path.join(dir, 'agent.d'));
    await vi.waitFor(() => expect(onChange).toHaveBeenCalledTimes(1), { timeout: 2000, interval: 20 });
    await sleep(DEBOUNCE_MS); // let chokidar finish adding the new directory
    await writeFile(path.join(dir, 'agent.d', '10-x.yaml'), 'log: { level: warn }\n');
    await vi.waitFor(() => expect(onChange).toHaveBeenCalledTimes(2), { timeout: 2000, interval: 20 });
  });

  it('does not call onChange after close', async () => {
    const { onChange, watcher } = await start();
    await writeFile(path.join(dir, 'agent.yaml'), 'a: 1\n');
    await watcher.close();
    await watcher.close();
    await sleep(DEBOUNCE_MS + 300);
    expect(onChange).not.toHaveBeenCalled();
  });
});
