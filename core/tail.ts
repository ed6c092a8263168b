/**
 * Reading a log-like file from its end: the last lines first, in chunks read at offsets, so the
 * cost is what the caller consumes (and never more than its byte budget), not the file's size.
 */
import { open } from 'node:fs/promises';

/** Bytes a reader may still read, shared by the files one answer reads; `bytesRead` counts what was read. */
export interface TailBudget {
  bytesLeft: number;
  bytesRead: number;
}

/** Default chunk: a few hundred event lines per read. */
export const TAIL_CHUNK_BYTES = 64 * 1024;

/** A fresh budget of `bytes`. */
export function tailBudget(bytes: number): TailBudget {
  return { bytesLeft: bytes, bytesRead: 0 };
}

/**
 * The lines of `file`, last first (without their `\n`; empty lines skipped), reading backwards
 * `chunkBytes` at a time and charging `budget`. When the budget runs out before the file's start, the line cut by it is
 * not yielded (only whole lines are). A missing file has no lines; the generator may be left early
 * (`break`), which closes the file.
 */
export async function* linesFromEnd(file: string, budget: TailBudget, chunkBytes = TAIL_CHUNK_BYTES): AsyncGenerator<string> {
  const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!handle) return;
  try {
    // The size when opened: what the writer appends later is the next reader's.
    let pos = (await handle.stat()).size;
    // Bytes of the line that continues into the chunk before (read later), kept as bytes so a
    // UTF-8 character cut by a chunk boundary is decoded whole.
    let carry = Buffer.alloc(0);
    while (pos > 0 && budget.bytesLeft > 0) {
      const size = Math.min(chunkBytes, pos, budget.bytesLeft);
      const chunk = Buffer.allocUnsafe(size);
      const { bytesRead } = await handle.read(chunk, 0, size, pos - size);
      if (bytesRead < size) break; // truncated under us: stop rather than read garbage
      pos -= size;
      budget.bytesLeft -= size;
      budget.bytesRead += size;
      let data = carry.length ? Buffer.concat([chunk, carry]) : chunk;
      for (let nl = data.lastIndexOf(0x0a); nl >= 0; nl = data.lastIndexOf(0x0a)) {
        const line = data.subarray(nl + 1);
        data = data.subarray(0, nl);
        if (line.length) yield line.toString('utf8');
      }
      carry = data;
    }
    // The file's first line has no newline before it; a line the budget cut is dropped.
    if (pos === 0 && carry.length) yield carry.toString('utf8');
  } finally {
    await handle.close();
  }
}
