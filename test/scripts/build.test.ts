// The bundle build as tests and a running local cluster see it: chunks of an earlier build stay for a
// day (a running agent may still load a role from them), older unused ones go, the entry is whole,
// and a file gets the CommonJS shims it uses and no others.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'build-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/build.mjs', () => {
  it('keeps recent chunks of an earlier build, removes day-old unused ones, and runs', () => {
    const entry = path.join(dir, 'mammatus.mjs');
    const chunks = path.join(dir, 'chunks');
    mkdirSync(chunks, { recursive: true });
    writeFileSync(path.join(chunks, 'chunk-RECENT.mjs'), 'export {};\n');
    writeFileSync(path.join(chunks, 'chunk-OLD.mjs'), 'export {};\n');
    const twoDaysAgo = (Date.now() - 2 * 24 * 3600 * 1000) / 1000;
    utimesSync(path.join(chunks, 'chunk-OLD.mjs'), twoDaysAgo, twoDaysAgo);

    execFileSync(process.execPath, ['scripts/build.mjs', '--out', entry, '--version', '9.9.9'], { cwd: ROOT, stdio: 'pipe' });

    const names = readdirSync(chunks);
    expect(names).toContain('chunk-RECENT.mjs');
    expect(names).not.toContain('chunk-OLD.mjs');
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(readFileSync(entry, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(execFileSync(process.execPath, [entry, 'version'], { encoding: 'utf8' }).trim()).toBe('mammatus 9.9.9');
    expect(existsSync(`${entry}.${process.pid}.tmp`)).toBe(false);
  }, 60_000);

  it('gives a file a shim only for what it uses', () => {
    const files = readdirSync(path.join(dir, 'chunks'))
      .filter((n) => n.endsWith('.mjs') && !n.includes('RECENT'))
      .map((n) => readFileSync(path.join(dir, 'chunks', n), 'utf8'));
    const shimmed = files.filter((code) => code.includes('const require = __cr(import.meta.url);'));
    // A few CommonJS dependencies need require; most files do not.
    expect(shimmed.length).toBeGreaterThan(0);
    expect(shimmed.length).toBeLessThan(files.length / 4);
    for (const code of files.filter((c) => !shimmed.includes(c))) {
      // No free use of require left without its shim (a member access or a string is not one).
      expect(/(?<![\w$.'"`])require(?![\w$])/.test(code.replace(/^import[^\n]*\n/gm, ''))).toBe(false);
    }
  });
});
