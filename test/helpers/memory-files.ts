/**
 * An in-memory `FileOps` for unit tests: no disk, a log of every effect, and a switch to make
 * writes to chosen paths fail, so rollback paths can be exercised deterministically.
 */
import type { FileOps } from '../../core/contracts.js';

/** One stored file. */
export interface MemoryEntry {
  readonly content: string;
  readonly mode: number;
}

/** An in-memory `FileOps` plus test controls. */
export interface MemoryFiles extends FileOps {
  /** Current files by path. */
  readonly entries: Map<string, MemoryEntry>;
  /** Every effect in order: `write <path>` or `remove <path>` (failed attempts included). */
  readonly ops: string[];
  /** Makes every later write to `path` reject (with `error`, or a generic EIO-like error). */
  failWrite(path: string, error?: Error): void;
  /** Path → content, for compact assertions. */
  contents(): Record<string, string>;
}

/** Builds a `MemoryFiles`, seeded with path → content (mode 0o644) or path → entry. */
export function memoryFiles(initial: Record<string, string | MemoryEntry> = {}): MemoryFiles {
  const entries = new Map<string, MemoryEntry>();
  for (const [path, value] of Object.entries(initial)) {
    entries.set(path, typeof value === 'string' ? { content: value, mode: 0o644 } : value);
  }
  const ops: string[] = [];
  const failures = new Map<string, Error>();
  return {
    entries,
    ops,
    async read(path) {
      return entries.get(path)?.content;
    },
    async write(path, content, mode = 0o644) {
      ops.push(`write ${path}`);
      const failure = failures.get(path);
      if (failure) throw failure;
      entries.set(path, { content, mode });
    },
    async remove(path) {
      ops.push(`remove ${path}`);
      entries.delete(path);
    },
    async mode(path) {
      return entries.get(path)?.mode;
    },
    failWrite(path, error = new Error(`EIO: write failed: ${path}`)) {
      failures.set(path, error);
    },
    contents() {
      return Object.fromEntries([...entries].map(([path, entry]) => [path, entry.content]));
    },
  };
}
