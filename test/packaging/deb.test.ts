/**
 * The mammatus-agent .deb (issue 6): reproducible builds, lintian, and a full install / start /
 * upgrade / remove / purge cycle from the signed flat repository in a Debian 13 (trixie) minbase
 * chroot. The chroot part needs root, debootstrap and the Debian mirror (or a cached tarball) and
 * is skipped with the reason otherwise. Prints the figures docs/install.md quotes: .deb size,
 * install time, and the agent's process-start-to-ready time.
 */
import { cycleSteps } from '../helpers/steps.js';
import { execFile, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { freePort, waitForPort } from '../../scripts/lib/ports.js';
import { serveRepo, type RepoServer } from './repo-server.js';
import { baseTarball, Chroot, chrootSkipReason, commandAvailable, removeDir, stopProcess, type RunResult } from './chroot.js';
import { sleep } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const UPGRADE_VERSION = '0.1.1';
const SUITE = 'trixie';
const UNIT = 'mammatus-agent.service';
const WANTS = `/etc/systemd/system/multi-user.target.wants/${UNIT}`;
const DSH_STATE = '/var/lib/systemd/deb-systemd-helper-enabled';
const SITE_YAML = '/etc/mammatus/agent.d/10-site.yaml';
const SITE_YAML_TEXT = '# Written by the operator (cloud-init) before mammatus-agent was installed.\nlog:\n  level: info\n';

/** Builds the .deb into `out` with scripts/package.mjs; returns its path. */
async function buildDeb(out: string, version?: string): Promise<string> {
  const args = [path.join(ROOT, 'scripts/package.mjs'), '--out', out, ...(version ? ['--version', version] : [])];
  await exec(process.execPath, args, { cwd: ROOT, maxBuffer: 16 << 20 });
  const deb = path.join(out, `mammatus-agent_${version ?? VERSION}_all.deb`);
  expect(existsSync(deb), `${deb} was not built`).toBe(true);
  return deb;
}

/** Runs a command that may exit non-zero; resolves with its code and output. */
async function run(
  cmd: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(cmd, [...args], { maxBuffer: 16 << 20, ...(env ? { env } : {}) });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** The changelog's newest date, which package.mjs uses as SOURCE_DATE_EPOCH, as dpkg-deb -c prints it in UTC. */
function changelogStamp(): string {
  const changelog = readFileSync(path.join(ROOT, 'packaging/deb/changelog'), 'utf8');
  const date = new Date(/^ -- .+?> {2}(.+)$/m.exec(changelog)![1]);
  return date.toISOString().slice(0, 16).replace('T', ' ');
}

// ---------------------------------------------------------------------------------------------

describe('mammatus-agent .deb', () => {
  const tmp: string[] = [];
  let first: Promise<string> | undefined;
  const mktemp = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'mammatus-deb-'));
    tmp.push(d);
    return d;
  };
  /** One build shared by the tests of this block. */
  const firstDeb = () => (first ??= buildDeb(mktemp()));
  afterAll(() => tmp.forEach(removeDir));

  it('builds byte-identical packages from the same inputs', { timeout: 180_000 }, async () => {
    const a = await firstDeb();
    await sleep(1100); // file times in the second build differ: only SOURCE_DATE_EPOCH may make them equal
    const b = await buildDeb(mktemp());
    const [bytesA, bytesB] = [readFileSync(a), readFileSync(b)];
    expect(bytesA.length).toBeGreaterThan(0);
    expect(bytesA.equals(bytesB), `${a} and ${b} differ`).toBe(true);
    console.log(`[packaging] ${path.basename(a)}: ${bytesA.length} bytes (${(bytesA.length / 1024).toFixed(0)} KiB), reproducible`);

    // Every member is root-owned and dated with the changelog's date, whatever the build machine.
    const { stdout } = await exec('dpkg-deb', ['-c', a], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 16 << 20 });
    const entries = stdout.trim().split('\n');
    const stamp = changelogStamp();
    expect(entries.length).toBeGreaterThan(5);
    for (const line of entries) {
      expect(line, 'owner').toMatch(/^\S+ root\/root /);
      expect(line, 'mtime').toContain(` ${stamp} `);
    }
  });

  it('has no lintian errors or warnings, and only documented overrides', { timeout: 180_000 }, async (ctx: TestContext) => {
    if (!commandAvailable('lintian')) {
      console.warn('[packaging] lintian test skipped: lintian is not installed (apt-get install lintian)');
      ctx.skip('lintian is not installed');
    }
    const deb = await firstDeb();
    const { stdout: ver } = await exec('lintian', ['--version']);
    const res = await run('lintian', ['--allow-root', '-I', '-E', '--pedantic', '--tag-display-limit', '0', deb]);
    const out = `${res.stdout}${res.stderr}`;
    console.log(`[packaging] ${ver.trim()} on ${path.basename(deb)}: exit ${res.code}${out.trim() ? `\n${out.trim()}` : ', no tags'}`);

    const tags = out
      .split('\n')
      .map((l) => /^([A-Z]): (\S+?): (\S+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null && m[1] !== 'N');
    expect(tags.filter((m) => m[1] === 'E' || m[1] === 'W').map((m) => m[0])).toEqual([]);

    // Each override carries a reason (a comment right above it); any other tag shown must be one of them.
    const overrides = new Map<string, string>();
    let reason = '';
    for (const line of readFileSync(path.join(ROOT, 'packaging/deb/lintian-overrides'), 'utf8').split('\n')) {
      if (line.startsWith('#')) reason += line.slice(1).trim() + ' ';
      else if (line.trim() === '') reason = '';
      else {
        const tag = /^(?:mammatus-agent(?: \S+)?: )?(\S+)/.exec(line.trim())![1];
        expect(reason.trim(), `lintian override ${tag} has no reason`).not.toBe('');
        overrides.set(tag, reason.trim());
        reason = '';
      }
    }
    const undocumented = tags.filter((m) => !overrides.has(m[3])).map((m) => m[0]);
    expect(undocumented, 'lintian tags that packaging/deb/lintian-overrides does not list with a reason').toEqual([]);
    expect(res.code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

const chrootSkip = await chrootSkipReason(SUITE);
if (chrootSkip) console.warn(`[packaging] ${SUITE} chroot install test skipped: ${chrootSkip}`);

/** Waits (bounded) for a JSON log line with `msg` on the child's stdout; resolves with the line. */
function waitForLogLine(child: ChildProcess, msg: string, timeoutMs: number, seen: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => done(new Error(`no "${msg}" log line after ${timeoutMs} ms:\n${seen.join('\n')}`)), timeoutMs);
    const onExit = (code: number | null) => done(new Error(`exited (${code}) before "${msg}":\n${seen.join('\n')}`));
    const done = (err: Error | undefined, line?: Record<string, unknown>) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line!);
    };
    child.once('exit', onExit);
    rl.on('line', (l) => {
      seen.push(l);
      try {
        const obj = JSON.parse(l) as Record<string, unknown>;
        if (obj.msg === msg) done(undefined, obj);
      } catch {
        // not a log line
      }
    });
  });
}

describe.skipIf(chrootSkip !== undefined)(
  `install from the signed repository in a Debian 13 (${SUITE}) chroot`,
  { timeout: 600_000 },
  () => {
    let work = '';
    let gnupg = '';
    let repo = '';
    let deb = '';
    let server: RepoServer | undefined;
    let chroot: Chroot | undefined;
    const metrics: Record<string, string> = {};

    const c = () => chroot!;
    /** Runs in the chroot and fails the test with the output unless it exits 0. */
    const ok = async (cmd: string, args: string[] = [], timeoutMs?: number): Promise<RunResult> => {
      const r = await c().run(cmd, args, timeoutMs === undefined ? {} : { timeoutMs });
      expect(r.code, `${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`).toBe(0);
      return r;
    };
    const status = async () => (await c().run('dpkg-query', ['-W', '-f=${db:Status-Abbrev}|${Version}', 'mammatus-agent'])).stdout.trim();
    const buildRepo = (...debs: string[]) =>
      exec('bash', [path.join(ROOT, 'scripts/repo-build.sh'), '--out', repo, '--gnupg-home', gnupg, ...debs]);
    /** Host paths (relative to the chroot) whose name mentions mammatus, outside apt's own files. */
    const mammatusPaths = async () => {
      const r = c().root;
      const prune = ['/proc', '/var/lib/apt/lists', '/var/cache/apt', '/etc/apt'].flatMap((p) => ['-path', r + p, '-o']).slice(0, -1);
      const { stdout } = await exec(
        'find',
        [r, '-mindepth', '1', '-xdev', '(', ...prune, ')', '-prune', '-o', '-name', '*mammatus*', '-print'],
        { maxBuffer: 16 << 20 },
      );
      return stdout
        .split('\n')
        .filter(Boolean)
        .map((p) => p.slice(r.length))
        .sort();
    };
    const filesUnder = (dir: string): string[] => {
      const out: string[] = [];
      const walk = (rel: string) => {
        for (const name of readdirSync(c().path(path.join(dir, rel))).sort()) {
          const r = rel ? `${rel}/${name}` : name;
          out.push(r);
          if (lstatSync(c().path(path.join(dir, r))).isDirectory()) walk(r);
        }
      };
      walk('');
      return out;
    };

    /** A step of the cycle; once one fails, the later ones are skipped (they build on it). */
    const step = cycleSteps();

    let cleaned = false;
    const cleanup = async () => {
      if (cleaned) return;
      cleaned = true;
      const errors: unknown[] = [];
      const attempt = async (f: () => unknown) => {
        try {
          await f();
        } catch (err) {
          errors.push(err);
        }
      };
      await attempt(() => chroot?.dispose()); // stops serf and the agent by PID, unmounts /proc, deletes the tree
      await attempt(() => server?.close());
      // repo-build.sh's gpg started a gpg-agent for the test's GNUPGHOME: stop that one by its PID.
      await attempt(async () => {
        if (!gnupg || !existsSync(gnupg)) return;
        const r = await run('gpg-connect-agent', ['--homedir', gnupg, '--no-autostart', 'getinfo pid', '/bye']);
        const pid = Number(/^D (\d+)$/m.exec(r.stdout)?.[1]);
        if (pid > 0) process.kill(pid, 'SIGTERM');
      });
      await attempt(() => work && removeDir(work));
      if (Object.keys(metrics).length > 0)
        console.log(
          `[packaging] figures for docs:\n${Object.entries(metrics)
            .map(([k, v]) => `  ${k}: ${v}`)
            .join('\n')}`,
        );
      if (errors.length > 0) throw errors[0];
    };

    beforeAll(async () => {
      try {
        const t0 = performance.now();
        const tarball = await baseTarball(SUITE, { onBuild: (m) => console.log(`[packaging] ${m}`) });
        work = mkdtempSync(path.join(os.tmpdir(), 'mammatus-deb-chroot-'));
        gnupg = path.join(work, 'gnupg');
        repo = path.join(work, 'repo');
        deb = await buildDeb(path.join(work, `dist-${VERSION}`));
        metrics['.deb size'] = `${statSync(deb).size} bytes (${(statSync(deb).size / 1024).toFixed(0)} KiB)`;
        await buildRepo(deb);
        // The same repository also under /other/: step f points a second source there with a wrong key.
        server = await serveRepo(repo, ['/other/']);
        const t1 = performance.now();
        chroot = await Chroot.create(tarball);
        // As in image builds: no service of any dependency (serf ships one) starts inside the chroot.
        c().write('/usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', 0o755);
        metrics['chroot extract'] = `${((performance.now() - t1) / 1000).toFixed(1)} s`;
        console.log(
          `[packaging] chroot ${c().root} ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; repository on 127.0.0.1:${server.port}`,
        );
      } catch (err) {
        await cleanup().catch(() => undefined);
        throw err;
      }
    }, 900_000);

    afterAll(cleanup, 120_000);

    step('a. adds the repository and its key, and an operator drop-in, before the install', async () => {
      c().write('/etc/apt/keyrings/mammatus.gpg', readFileSync(path.join(repo, 'mammatus-archive-keyring.gpg')));
      c().write(
        '/etc/apt/sources.list.d/mammatus.sources',
        `Types: deb\nURIs: http://127.0.0.1:${server!.port}/\nSuites: ./\nSigned-By: /etc/apt/keyrings/mammatus.gpg\n`,
      );
      c().write(SITE_YAML, SITE_YAML_TEXT);
      expect(await status()).not.toMatch(/^ii/);
    });

    step('b. apt-get installs mammatus-agent from it without a prompt, pulling nodejs and serf', async () => {
      await ok('apt-get', ['update'], 300_000);
      expect(server!.requests).toContain('/InRelease');
      const r = await ok('apt-get', ['install', '-y', 'mammatus-agent'], 600_000);
      metrics['apt-get install (with nodejs, serf from Debian)'] = `${(r.ms / 1000).toFixed(1)} s`;
      console.log(`[packaging] apt-get install mammatus-agent: ${(r.ms / 1000).toFixed(1)} s`);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/conffile|dpkg-dist|Configuration file/i);
      expect(server!.requests).toContain(`/mammatus-agent_${VERSION}_all.deb`);
      expect(await status()).toBe(`ii |${VERSION}`);
      const deps = await ok('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', 'nodejs', 'serf']);
      expect(deps.stdout).toMatch(/^nodejs ii/m);
      expect(deps.stdout).toMatch(/^serf ii/m);
      const versions = await ok('dpkg-query', ['-W', '-f=${Package} ${Version}\n', 'nodejs', 'serf', 'apt']);
      metrics['chroot packages'] = versions.stdout.trim().split('\n').join(', ');
      // The package owns no conffile: nothing it ships can ever prompt.
      expect((await ok('dpkg-query', ['-W', '-f=${Conffiles}', 'mammatus-agent'])).stdout.trim()).toBe('');
      expect(c().read(SITE_YAML)).toBe(SITE_YAML_TEXT);
    });

    step('c. mammatus --version works, the unit is enabled, the state dir exists', async () => {
      const r = await ok('mammatus', ['--version']);
      expect(r.stdout.trim()).toBe(VERSION);
      expect(c().exists(WANTS)).toBe(true);
      // deb-systemd-helper links to /lib/systemd/system/…, the same file on merged-/usr.
      expect((await ok('readlink', ['-e', WANTS])).stdout.trim()).toBe(`/usr/lib/systemd/system/${UNIT}`);
      expect(c().exists(`${DSH_STATE}/${UNIT}.dsh-also`)).toBe(true);
      expect(c().exists(`${DSH_STATE}/multi-user.target.wants/${UNIT}`)).toBe(true);
      expect(statSync(c().path('/var/lib/mammatus')).isDirectory()).toBe(true);
      // The system user the agent's tenant-facing services run as: no home, no login.
      const user = (await ok('getent', ['passwd', 'mammatus'])).stdout.trim().split(':');
      expect([user[5], user[6]]).toEqual(['/nonexistent', '/usr/sbin/nologin']);
      expect(Number(user[2])).toBeLessThan(1000);
      expect((await ok('getent', ['group', 'mammatus'])).stdout).toMatch(/^mammatus:/);
    });

    step('d. the installed agent starts against a real serf, sets its tag, and stops cleanly on SIGTERM', async () => {
      const [bindPort, rpcPort] = [await freePort(), await freePort()];
      const rpc = `127.0.0.1:${rpcPort}`;
      const serfLog = path.join(work, 'serf.log');
      const fd = openSync(serfLog, 'a');
      const serf = c().spawn('serf', ['agent', '-node=pkgtest', `-bind=127.0.0.1:${bindPort}`, `-rpc-addr=${rpc}`, '-log-level=info'], {
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      let agent: ChildProcess | undefined;
      try {
        await Promise.race([
          waitForPort(rpcPort, '127.0.0.1', 30_000),
          new Promise((_, reject) =>
            serf.once('exit', (code) => reject(new Error(`serf exited (${code}): ${readFileSync(serfLog, 'utf8')}`))),
          ),
        ]);
        c().write('/etc/mammatus/agent.yaml', `serf: { rpc_addr: "${rpc}" }\n`);

        const seen: string[] = [];
        const started = performance.now();
        agent = c().spawn('mammatus', ['agent']);
        let stderr = '';
        agent.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        const ready = await waitForLogLine(agent, 'agent ready', 30_000, seen);
        const readyMs = performance.now() - started;
        metrics['agent process start to "agent ready" (chroot)'] = `${readyMs.toFixed(0)} ms`;
        console.log(`[packaging] mammatus agent: process start to "agent ready" in ${readyMs.toFixed(0)} ms`);
        expect(ready.version).toBe(VERSION);
        expect(ready.node).toBe('pkgtest');

        const members = JSON.parse((await ok('serf', ['members', `-rpc-addr=${rpc}`, '-format=json'])).stdout) as {
          members: Array<{ name: string; status: string; tags: Record<string, string> }>;
        };
        const self = members.members.find((m) => m.name === 'pkgtest');
        expect(self?.status).toBe('alive');
        expect(self?.tags.mammatus).toBe(VERSION);

        const exited = new Promise<number | null>((resolve) => agent!.once('exit', (code) => resolve(code)));
        process.kill(agent.pid!, 'SIGTERM');
        const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
        expect(code, `agent exit after SIGTERM\n${seen.join('\n')}\n${stderr}`).toBe(0);
        const errors = seen.filter((l) => /"level":(5|6)0/.test(l));
        expect(errors, 'error-level log lines').toEqual([]);
      } finally {
        if (agent) await stopProcess(agent, 'SIGKILL');
        await stopProcess(serf, 'SIGINT');
      }
      // Test scaffolding, not the operator's: it must not count as a leftover of the purge below.
      await ok('rm', ['-f', '/etc/mammatus/agent.yaml']);
    });

    step(`e. upgrades to ${UPGRADE_VERSION} from the same repository, keeping the operator's config`, async () => {
      const before = readFileSync(path.join(repo, 'mammatus-archive-keyring.gpg'));
      const newer = await buildDeb(path.join(work, `dist-${UPGRADE_VERSION}`), UPGRADE_VERSION);
      await buildRepo(deb, newer);
      expect(readFileSync(path.join(repo, 'mammatus-archive-keyring.gpg')).equals(before), 'the repository key changed').toBe(true);
      await ok('apt-get', ['update'], 300_000);
      const policy = await ok('apt-cache', ['policy', 'mammatus-agent']);
      expect(policy.stdout).toContain(`Candidate: ${UPGRADE_VERSION}`);
      const r = await ok('apt-get', ['install', '-y', 'mammatus-agent'], 600_000);
      metrics['apt-get upgrade of mammatus-agent'] = `${(r.ms / 1000).toFixed(1)} s`;
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/conffile|Configuration file/i);
      expect(server!.requests).toContain(`/mammatus-agent_${UPGRADE_VERSION}_all.deb`);
      expect(await status()).toBe(`ii |${UPGRADE_VERSION}`);
      expect(c().read(SITE_YAML)).toBe(SITE_YAML_TEXT);
      expect(filesUnder('/etc/mammatus').filter((f) => /\.(dpkg|ucf)-[a-z]+$/.test(f))).toEqual([]);
      expect(c().exists(WANTS), 'the unit stays enabled across the upgrade').toBe(true);
      // The bundle inside carries the package's version (the agent's `mammatus` tag shows it).
      expect((await ok('mammatus', ['--version'])).stdout.trim()).toBe(UPGRADE_VERSION);
    });

    step('f. apt refuses the repository when the source trusts another key', async () => {
      // Debian's archive key is a real key, just not the one that signed this repository.
      expect(c().exists('/usr/share/keyrings/debian-archive-keyring.gpg')).toBe(true);
      const wrong = '/etc/apt/sources.list.d/wrong-key.sources';
      c().write(
        wrong,
        `Types: deb\nURIs: http://127.0.0.1:${server!.port}/other/\nSuites: ./\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      );
      try {
        const r = await c().run('apt-get', ['update'], { timeoutMs: 300_000 });
        const out = `${r.stdout}\n${r.stderr}`;
        expect(server!.requests).toContain('/other/InRelease');
        expect(r.code, out).not.toBe(0);
        expect(out).toMatch(/127\.0\.0\.1:\d+\/other.*(is not signed|NO_PUBKEY|Missing key|signature)/is);
        expect(readdirSync(c().path('/var/lib/apt/lists')).filter((f) => f.includes('_other_'))).toEqual([]);
        console.log(`[packaging] apt on the wrong key: ${out.split('\n').find((l) => l.startsWith('E:')) ?? '(no E: line)'}`);
      } finally {
        await ok('rm', ['-f', wrong]);
      }
      await ok('apt-get', ['update'], 300_000);
    });

    step("g. remove keeps the operator's config; purge leaves nothing of the package", async () => {
      await ok('dpkg', ['-r', 'mammatus-agent']);
      expect(c().exists('/usr/bin/mammatus')).toBe(false);
      expect(c().exists('/usr/lib/mammatus-agent')).toBe(false);
      expect(c().read(SITE_YAML)).toBe(SITE_YAML_TEXT);
      expect(await status()).toMatch(/^rc/);

      await ok('dpkg', ['-P', 'mammatus-agent']);
      expect(c().exists('/var/lib/mammatus')).toBe(false);
      expect(c().exists(WANTS)).toBe(false);
      const dsh = await exec('find', [c().path(DSH_STATE), '-name', '*mammatus*']).then(
        (r) => r.stdout.trim(),
        () => '',
      );
      expect(dsh).toBe('');
      const owned = await c().run('dpkg', ['-S', 'mammatus']);
      expect(owned.code, owned.stdout).not.toBe(0);
      expect(owned.stdout.trim()).toBe('');
      expect(await status()).not.toMatch(/^(ii|rc|iU|iF|iH)/);
      expect(readdirSync(c().path('/var/lib/dpkg/info')).filter((f) => f.startsWith('mammatus-agent'))).toEqual([]);
      // Only the operator's drop-in and the directories holding it are left.
      expect(filesUnder('/etc/mammatus')).toEqual(['agent.d', 'agent.d/10-site.yaml']);
      expect(c().read(SITE_YAML)).toBe(SITE_YAML_TEXT);
      expect(await mammatusPaths()).toEqual(['/etc/mammatus']);
    });
  },
);
