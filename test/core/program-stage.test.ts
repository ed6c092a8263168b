/** Staging a program that a service user cannot read: checked by permission bits, copied once. */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { accessibleBy, runnableProgram } from '../../core/program-stage.js';

// A uid and gid that own nothing here (what `nobody` is on Debian).
const STRANGER = { uid: 65534, gid: 65534 };

describe('a program a service user cannot read', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'mammatus-stage-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));
  const open = path.join(home, 'open');
  const closed = path.join(home, 'closed');
  mkdirSync(path.join(open, 'dist', 'chunks'), { recursive: true });
  mkdirSync(path.join(closed, 'dist', 'chunks'), { recursive: true });
  for (const root of [open, closed]) {
    writeFileSync(path.join(root, 'node'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(path.join(root, 'dist', 'main.mjs'), 'import "./chunks/a.mjs";\n', { mode: 0o644 });
    writeFileSync(path.join(root, 'dist', 'chunks', 'a.mjs'), '', { mode: 0o644 });
  }
  chmodSync(home, 0o755);
  chmodSync(open, 0o755);
  chmodSync(closed, 0o700); // like /root

  it('tells by the permission bits of the file and of every directory above it', () => {
    expect(accessibleBy(path.join(open, 'dist', 'main.mjs'), STRANGER, 4)).toBe(true);
    expect(accessibleBy(path.join(open, 'node'), STRANGER, 5)).toBe(true);
    expect(accessibleBy(path.join(closed, 'dist', 'main.mjs'), STRANGER, 4)).toBe(false);
    expect(accessibleBy(path.join(open, 'missing'), STRANGER, 4)).toBe(false);
    // The owner of the closed directory reaches it.
    const own = statSync(closed);
    expect(accessibleBy(path.join(closed, 'dist', 'main.mjs'), { uid: own.uid, gid: own.gid }, 4)).toBe(true);
  });

  it('leaves a readable program alone', () => {
    const argv = { file: path.join(open, 'node'), args: [path.join(open, 'dist', 'main.mjs'), 'service', 'run', 'metadata'] };
    expect(runnableProgram(argv.file, argv.args, STRANGER)).toEqual(argv);
    expect(runnableProgram('nats-server', ['-c', '/etc/nats.conf'], STRANGER)).toEqual({
      file: 'nats-server',
      args: ['-c', '/etc/nats.conf'],
    });
  });

  it('runs an unreadable one from a world-readable copy of the executable and of the whole script directory, made once', () => {
    const args = [path.join(closed, 'dist', 'main.mjs'), 'service', 'run', 'metadata'];
    const first = runnableProgram(path.join(closed, 'node'), args, STRANGER);
    expect(first.file).not.toBe(path.join(closed, 'node'));
    expect(first.args.slice(1)).toEqual(['service', 'run', 'metadata']);
    expect(accessibleBy(first.file, STRANGER, 5)).toBe(true);
    expect(accessibleBy(first.args[0], STRANGER, 4)).toBe(true);
    expect(accessibleBy(path.join(path.dirname(first.args[0]), 'chunks', 'a.mjs'), STRANGER, 4)).toBe(true);
    expect(runnableProgram(path.join(closed, 'node'), args, STRANGER)).toEqual(first);
  });
});
