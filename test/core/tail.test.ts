/** Reading a file from its end: only the bytes the caller consumes, within a budget, whole lines only. */
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linesFromEnd, tailBudget, TAIL_CHUNK_BYTES } from '../../core/tail.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-tail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(file: string, budget = tailBudget(Number.MAX_SAFE_INTEGER), chunk?: number, max = Infinity): Promise<string[]> {
  const out: string[] = [];
  for await (const line of linesFromEnd(file, budget, chunk)) {
    out.push(line);
    if (out.length >= max) break;
  }
  return out;
}

describe('linesFromEnd', () => {
  it('yields every line last first, whatever the chunk size cuts (UTF-8 characters, long lines)', async () => {
    const file = path.join(dir, 'small');
    const lines = ['first', 'zwölf Boxkämpfer', '', 'x'.repeat(50), '日本語のホスト名', 'last'];
    writeFileSync(file, `${lines.join('\n')}\n`);
    const expected = lines.filter(Boolean).reverse();
    for (const chunk of [1, 2, 3, 7, 16, 1024]) expect(await collect(file, undefined, chunk), `chunk ${chunk}`).toEqual(expected);
    writeFileSync(file, 'no newline at the end');
    expect(await collect(file)).toEqual(['no newline at the end']);
    expect(await collect(path.join(dir, 'missing'))).toEqual([]);
  });

  it('reads only the tail of a 50 MB file: one chunk for a few lines, never more than its budget', async () => {
    const file = path.join(dir, 'big');
    const fillerLine = 'filler line, long ago\t'.repeat(3);
    const filler = Buffer.from(`${fillerLine}\n`.repeat(16_384)); // ~1.1 MB
    writeFileSync(file, '');
    while (statSync(file).size < 50 * 1024 * 1024) appendFileSync(file, filler);
    const recent = Array.from({ length: 100 }, (_, i) => `event ${i}`);
    appendFileSync(file, `${recent.join('\n')}\n`);

    const few = tailBudget(64 * 1024 * 1024);
    expect(await collect(file, few, undefined, 3)).toEqual(['event 99', 'event 98', 'event 97']);
    expect(few.bytesRead).toBe(TAIL_CHUNK_BYTES);

    const capped = tailBudget(1024 * 1024);
    const all = await collect(file, capped);
    expect(capped).toEqual({ bytesRead: 1024 * 1024, bytesLeft: 0 });
    expect(all.slice(0, 100)).toEqual([...recent].reverse());
    // Whole lines only: the one the budget cut in two is not among them.
    expect(all.slice(100).every((l) => l === fillerLine)).toBe(true);
    expect(all.length).toBeLessThan((1024 * 1024) / 60);
  });
});
