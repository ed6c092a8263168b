/**
 * The signed flat repository (scripts/repo-build.sh, issue 16): Release carries Date and
 * Valid-Until, apt itself refuses a Release past Valid-Until, `resign` makes it valid again without
 * touching a package, and the signing key expires. Real gpg, apt-ftparchive and apt-get (on the
 * host, with its own lists and cache directories) against a loopback HTTP server; a tiny .deb built
 * with dpkg-deb stands in for the agent's package.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandAvailable, removeDir } from './chroot.js';
import { serveRepo, type RepoServer } from './repo-server.js';
import { sleep } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = path.join(ROOT, 'scripts/repo-build.sh');

const missing = ['apt-ftparchive', 'apt-get', 'gpg', 'gpg-connect-agent', 'dpkg-deb'].filter((t) => !commandAvailable(t));
const skip = missing.length > 0 ? `${missing.join(', ')} missing (apt-get install apt-utils gnupg dpkg)` : undefined;
if (skip) console.warn(`[packaging] repository tests skipped: ${skip}`);

interface Result {
  code: number;
  out: string;
}

async function run(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(cmd, [...args], { maxBuffer: 16 << 20, env: { ...process.env, ...env } });
    return { code: 0, out: `${stdout}${stderr}` };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** One field of a Release file. */
const field = (release: string, name: string): string | undefined => new RegExp(`^${name}: (.*)$`, 'm').exec(release)?.[1];

describe.skipIf(skip !== undefined)('the signed flat repository (scripts/repo-build.sh)', { timeout: 120_000 }, () => {
  let work = '';
  let server: RepoServer | undefined;
  const homes: string[] = [];
  const dir = (name: string) => path.join(work, name);

  /** A minimal Architecture: all package, built in well under a second. */
  const tinyDeb = async (): Promise<string> => {
    const stage = dir('stage');
    mkdirSync(path.join(stage, 'DEBIAN'), { recursive: true });
    writeFileSync(
      path.join(stage, 'DEBIAN/control'),
      'Package: mammatus-repo-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: Test <t@mammatus.invalid>\nDescription: probe\n test\n',
    );
    const deb = dir('mammatus-repo-probe_1.0_all.deb');
    await exec('dpkg-deb', ['--root-owner-group', '--build', stage, deb]);
    return deb;
  };

  const build = (repo: string, gnupg: string, ...args: string[]) => {
    if (!homes.includes(gnupg)) homes.push(gnupg);
    return run('bash', [SCRIPT, '--out', repo, '--gnupg-home', gnupg, ...args]);
  };

  /** `apt-get update` against `repo` served on loopback, with lists and cache of its own. */
  const aptUpdate = async (repo: string): Promise<Result> => {
    const apt = mkdtempSync(path.join(work, 'apt-'));
    for (const d of ['sources', 'lists/partial', 'cache/archives/partial']) mkdirSync(path.join(apt, d), { recursive: true });
    writeFileSync(
      path.join(apt, 'sources', 'mammatus.sources'),
      `Types: deb\nURIs: http://127.0.0.1:${server!.port}/${path.basename(repo)}/\nSuites: ./\nSigned-By: ${repo}/mammatus-archive-keyring.gpg\n`,
    );
    // apt's defaults, not the host's: an empty apt.conf.d (this machine's may switch
    // Acquire::Check-Valid-Until off, as mirrors of snapshots do), so the Valid-Until check is apt's own.
    mkdirSync(path.join(apt, 'conf.d'));
    const conf = [
      `Dir::Etc::Parts "${apt}/conf.d";`,
      'Dir::Etc::main "/dev/null";',
      'Dir::Etc::SourceList "/dev/null";',
      `Dir::Etc::SourceParts "${apt}/sources";`,
      `Dir::State::Lists "${apt}/lists";`,
      `Dir::Cache "${apt}/cache";`,
      'APT::Sandbox::User "root";',
      'Debug::NoLocking "1";',
      'Acquire::Languages "none";',
    ];
    writeFileSync(path.join(apt, 'apt.conf'), `${conf.join('\n')}\n`);
    return run('apt-get', ['update'], { APT_CONFIG: path.join(apt, 'apt.conf') });
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'mammatus-repo-'));
    server = await serveRepo(work);
  });

  afterAll(async () => {
    await server?.close();
    // repo-build.sh's gpg started one gpg-agent per GNUPGHOME: stop each by its PID.
    for (const home of homes) {
      if (!existsSync(home)) continue;
      const r = await run('gpg-connect-agent', ['--homedir', home, '--no-autostart', 'getinfo pid', '/bye']);
      const pid = Number(/^D (\d+)$/m.exec(r.out)?.[1]);
      if (pid > 0) process.kill(pid, 'SIGTERM');
    }
    if (work) removeDir(work);
  });

  it('writes Date and a 30-day Valid-Until by default, lists only the indices, and apt accepts it', async () => {
    const repo = dir('default');
    const r = await build(repo, dir('gnupg-default'), await tinyDeb());
    expect(r.code, r.out).toBe(0);
    const release = readFileSync(path.join(repo, 'Release'), 'utf8');
    const date = Date.parse(field(release, 'Date')!);
    const until = Date.parse(field(release, 'Valid-Until')!);
    expect(Math.abs(date - Date.now())).toBeLessThan(60_000);
    expect(until - date).toBe(30 * 86_400_000);
    expect(readFileSync(path.join(repo, 'InRelease'), 'utf8')).toContain(`Valid-Until: ${field(release, 'Valid-Until')}`);
    // Only the package indices are hashed: never an earlier Release of the same directory.
    const hashed = [...release.matchAll(/^ [0-9a-f]+ +\d+ (\S+)$/gm)].map((m) => m[1]);
    expect(new Set(hashed)).toEqual(new Set(['Packages', 'Packages.gz']));
    const again = await build(repo, dir('gnupg-default'), dir('mammatus-repo-probe_1.0_all.deb'));
    expect(again.code, again.out).toBe(0);
    expect(readFileSync(path.join(repo, 'Release'), 'utf8')).not.toMatch(/ (In)?Release$/m);
    const apt = await aptUpdate(repo);
    expect(apt.code, apt.out).toBe(0);
  });

  it('creates a signing key that expires in two years', async () => {
    const gnupg = dir('gnupg-default');
    const { stdout } = await exec('gpg', ['--homedir', gnupg, '--batch', '--with-colons', '--list-keys']);
    const pub = stdout
      .split('\n')
      .find((l) => l.startsWith('pub:'))!
      .split(':');
    const [created, expires] = [Number(pub[5]), Number(pub[6])];
    expect(expires, 'the key has an expiry').toBeGreaterThan(0);
    const days = (expires - created) / 86_400;
    expect(days).toBeGreaterThanOrEqual(729);
    expect(days).toBeLessThanOrEqual(731);
  });

  it('apt refuses a Release past its Valid-Until; resign makes it valid again without touching a package', async () => {
    const repo = dir('short');
    const gnupg = dir('gnupg-short');
    const r = await build(repo, gnupg, '--valid-for', '2s', await tinyDeb());
    expect(r.code, r.out).toBe(0);
    const deb = path.join(repo, 'mammatus-repo-probe_1.0_all.deb');
    const before = { deb: statSync(deb), packages: readFileSync(path.join(repo, 'Packages')) };
    await sleep(3_000);

    const stale = await aptUpdate(repo);
    expect(stale.code, stale.out).not.toBe(0);
    // apt's own check (apt 2.6: "Release file for … is expired (invalid since …)").
    expect(stale.out).toMatch(/expired|no longer valid/i);
    console.log(
      `[packaging] apt on a stale Release: ${stale.out
        .split('\n')
        .find((l) => /expired|no longer valid/i.test(l))
        ?.trim()}`,
    );

    const re = await run('bash', [SCRIPT, 'resign', '--out', repo, '--gnupg-home', gnupg, '--valid-for', '7d']);
    expect(re.code, re.out).toBe(0);
    expect(re.out).toContain('valid until');
    const release = readFileSync(path.join(repo, 'Release'), 'utf8');
    expect(Date.parse(field(release, 'Valid-Until')!) - Date.parse(field(release, 'Date')!)).toBe(7 * 86_400_000);
    const after = statSync(deb);
    expect([after.ino, after.mtimeMs]).toEqual([before.deb.ino, before.deb.mtimeMs]);
    expect(readFileSync(path.join(repo, 'Packages')).equals(before.packages)).toBe(true);
    const fresh = await aptUpdate(repo);
    expect(fresh.code, fresh.out).toBe(0);
  });

  it('refuses to sign with an expired key and says how to extend it', async () => {
    const repo = dir('expiring');
    const gnupg = dir('gnupg-expiring');
    const r = await build(repo, gnupg, '--key-expiry', 'seconds=1', await tinyDeb());
    // A key that expires before the Release does is signed with, but with a warning.
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning: the signing key \w+ expires on/);
    await sleep(2_000);
    const re = await run('bash', [SCRIPT, 'resign', '--out', repo, '--gnupg-home', gnupg]);
    expect(re.code, re.out).toBe(1);
    expect(re.out).toMatch(/has expired; extend it .*\n.*gpg --quick-set-expire [0-9A-F]{40} 2y/);
  });

  it.each([['0'], ['3w'], ['d'], ['-1d'], ['']])('refuses --valid-for %j', async (value) => {
    const r = await run('bash', [SCRIPT, 'resign', '--out', dir('default'), '--valid-for', value]);
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/--valid-for must be/);
  });

  it('resign needs a built repository and takes no packages', async () => {
    const none = await run('bash', [SCRIPT, 'resign', '--out', dir('nothing-here'), '--gnupg-home', dir('gnupg-default')]);
    expect(none.code).toBe(1);
    expect(none.out).toContain('Packages is missing');
    const extra = await run('bash', [SCRIPT, 'resign', '--out', dir('default'), 'x.deb']);
    expect(extra.code).toBe(2);
  });
});
