import { describe, it, expect, onTestFinished } from 'vitest';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFileOps, readSecretFileSync, writeFileAtomic } from '../../core/files.js';
import { parseMetadataSettings } from '../../src/metadata/config.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mammatus-files-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o7777;

describe('writeFileAtomic', () => {
  it('creates parent dirs, writes the content and leaves no temp files', async () => {
    const dir = await tempDir();
    const target = join(dir, 'a', 'b', 'x.conf');
    await writeFileAtomic(target, 'one\n');
    await writeFileAtomic(target, 'two\n');
    expect(await readFile(target, 'utf8')).toBe('two\n');
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['x.conf']);
  });

  it('applies the mode exactly, regardless of umask, and defaults to 0o644', async () => {
    const dir = await tempDir();
    await writeFileAtomic(join(dir, 'secret'), 's', 0o600);
    await writeFileAtomic(join(dir, 'script'), 's', 0o755);
    await writeFileAtomic(join(dir, 'plain'), 's');
    expect(await modeOf(join(dir, 'secret'))).toBe(0o600);
    expect(await modeOf(join(dir, 'script'))).toBe(0o755);
    expect(await modeOf(join(dir, 'plain'))).toBe(0o644);
  });

  it('replaces the mode of an existing file', async () => {
    const dir = await tempDir();
    const target = join(dir, 'x');
    await writeFileAtomic(target, 'a', 0o644);
    await writeFileAtomic(target, 'a', 0o600);
    expect(await modeOf(target)).toBe(0o600);
  });

  it('cleans up its temp file when the rename fails', async () => {
    const dir = await tempDir();
    // A non-empty directory at the target makes rename fail after the temp file was written.
    await writeFile(join(dir, 'blocker'), '');
    const target = join(dir, 'dir');
    await writeFileAtomic(join(target, 'inner'), 'x');
    await expect(writeFileAtomic(target, 'y')).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(['blocker', 'dir']);
  });
});

describe('buildFileOps', () => {
  it('places absolute paths under root', async () => {
    const root = await tempDir();
    const files = buildFileOps({ root });
    await files.write('/etc/example/x.conf', 'hello\n', 0o640);
    expect(await readFile(join(root, 'etc/example/x.conf'), 'utf8')).toBe('hello\n');
    expect(await files.read('/etc/example/x.conf')).toBe('hello\n');
    expect(await files.mode?.('/etc/example/x.conf')).toBe(0o640);
  });

  it('does not let .. escape the root', async () => {
    const root = await tempDir();
    const files = buildFileOps({ root: join(root, 'inner') });
    await files.write('/../../escaped', 'x');
    expect(await readFile(join(root, 'inner', 'escaped'), 'utf8')).toBe('x');
    expect(await readdir(root)).toEqual(['inner']);
  });

  it('reads a missing file as undefined', async () => {
    const files = buildFileOps({ root: await tempDir() });
    expect(await files.read('/nope/missing')).toBeUndefined();
    expect(await files.mode?.('/nope/missing')).toBeUndefined();
  });

  it('removes files and ignores missing ones', async () => {
    const root = await tempDir();
    const files = buildFileOps({ root });
    await files.write('/x', 'x');
    await files.remove('/x');
    expect(await files.read('/x')).toBeUndefined();
    await expect(files.remove('/x')).resolves.toBeUndefined();
    await expect(files.remove('/no/such/dir/x')).resolves.toBeUndefined();
  });

  it('still reports errors other than ENOENT', async () => {
    const root = await tempDir();
    const files = buildFileOps({ root });
    await files.write('/d/inner', 'x');
    await expect(files.read('/d')).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('uses paths as given without a root', async () => {
    const dir = await tempDir();
    const files = buildFileOps();
    await files.write(join(dir, 'x'), 'x');
    expect(await readFile(join(dir, 'x'), 'utf8')).toBe('x');
  });
});

describe('secret files', () => {
  it('are read only when no one but their owner can read them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mammatus-secret-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'metadata.secret');
    await writeFile(file, 'ab'.repeat(32), { mode: 0o600 });
    expect(readSecretFileSync(file)).toBe('ab'.repeat(32));
    for (const mode of [0o640, 0o604, 0o644]) {
      await chmod(file, mode);
      expect(() => readSecretFileSync(file)).toThrow(/metadata\.secret is readable by others \(mode 06\d\d\); run chmod 600/);
    }
    // The metadata service's settings refuse such a file, naming it and never its content.
    expect(() => parseMetadataSettings({ proxy_secret_file: file }, readSecretFileSync)).toThrow(/readable by others/);
  });
});
