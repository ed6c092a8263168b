/**
 * The caddy CA backend for real, on loopback: the config our renderer makes, a PKI made by the
 * `openssl` CLI (not by our code), `caddy validate` on it, and the backend supervisor running Debian's
 * caddy (as the `caddy` user when root), health-checked by fetching the ACME directory with the
 * root as the only trust. Also: a config caddy refuses, CA files that turn bad, and a crash.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { parseControllerConfig, type CaConfig } from '../../roles/controller/config.js';
import { renderCaddyConfig, caConfigPaths, CA_NAME } from '../../roles/controller/ca-render.js';
import { CaBackend, httpsProbe, localDirectoryUrl } from '../../roles/controller/ca-backend.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { freePort } from '../../scripts/lib/ports.js';
import { makeTestPki, testPkiUnavailable, type TestPki } from '../../scripts/lib/test-pki.js';
import { until } from '../../scripts/lib/wait.js';

const skip = (findOnPath('caddy') ? undefined : 'caddy is missing (apt-get install caddy)') ?? testPkiUnavailable();
if (skip) console.warn(`CA backend tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

describe.skipIf(skip)('the caddy CA backend', () => {
  let dir: string;
  let pki: TestPki;
  let ca: CaConfig;
  const files = buildFileOps();
  const run = buildRun();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ca-backend-'));
    // The caddy user must reach the files: the temp dir is searchable (its files keep their own modes).
    chmodSync(dir, 0o711);
    pki = makeTestPki(path.join(dir, 'pki'));
    chmodSync(pki.dir, 0o711);
    const port = await freePort();
    ca = parseControllerConfig({
      ca: {
        backend: 'caddy',
        listen: `127.0.0.1:${port}`,
        paths: {
          root_cert: pki.rootCert,
          intermediate_cert: pki.intermediateCert,
          intermediate_key: pki.intermediateKey,
          config: path.join(dir, 'etc'),
          data_dir: path.join(dir, 'data'),
        },
      },
    }).ca;
    await files.write(caConfigPaths(ca).caddy, renderCaddyConfig('ctl-1', ca), 0o644);
    chmodSync(path.join(dir, 'etc'), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('caddy validate accepts the rendered config with an openssl-made PKI, and names what it refuses', async () => {
    const backend = new CaBackend({ spawn: await buildSpawn(), run, files, log });
    await expect(backend.validate(ca)).resolves.toBeUndefined();
    // A key that is not a key: caddy's own message comes back.
    const bad = { ...ca, paths: { ...ca.paths, intermediate_key: path.join(dir, 'pki', 'garbage.key') } };
    writeFileSync(bad.paths.intermediate_key, 'not a key\n', { mode: 0o600 });
    await files.write(caConfigPaths(bad).caddy, renderCaddyConfig('ctl-1', bad), 0o644);
    await expect(backend.validate(bad)).rejects.toThrow(/caddy validate rejected .*caddy\.json: Error: .*provision/);
    await files.write(caConfigPaths(ca).caddy, renderCaddyConfig('ctl-1', ca), 0o644);
  });

  it('runs caddy supervised, proves it by the directory, restarts it after a crash, keeps it on bad CA files', async () => {
    const backend = new CaBackend({ spawn: await buildSpawn(), run, files, log, pollMs: 200, minRestartMs: 100, healthTimeoutMs: 20_000 });
    try {
      await backend.apply(ca);
      expect(backend.state).toEqual({ state: 'running', backend: 'caddy' });
      const root = (await files.read(pki.rootCert))!;
      const res = await httpsProbe(localDirectoryUrl(ca), root, CA_NAME);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ newOrder: expect.stringMatching(/\/acme\/acme\/new-order$/) });
      // The TLS certificate is from our CA: another root does not trust it.
      const other = makeTestPki(path.join(dir, 'other'), 'Other');
      await expect(httpsProbe(localDirectoryUrl(ca), (await files.read(other.rootCert))!, CA_NAME)).rejects.toThrow(/certificate/);
      if (process.geteuid?.() === 0 && findOnPath('ps')) {
        const user = (await run('ps', ['-o', 'user=', '-p', String(backend.pid)])).stdout.trim();
        expect(user).toBe('caddy');
      }

      // A crash: the supervisor starts it again, and it answers again.
      const first = backend.pid!;
      process.kill(first, 'SIGKILL');
      await until('a new caddy', () => backend.pid !== undefined && backend.pid !== first, { timeoutMs: 10_000 });
      await until(
        'the directory again',
        async () => (await httpsProbe(localDirectoryUrl(ca), root, CA_NAME).catch(() => ({ status: 0 }))).status === 200,
        {
          timeoutMs: 15_000,
        },
      );

      // CA files that turn bad: the poll refuses them, the running backend keeps serving.
      backend.follow(ca);
      const pid = backend.pid;
      const good = (await files.read(pki.intermediateCert))!;
      writeFileSync(pki.intermediateCert, 'garbage\n');
      await until('the bad files refused', () => backend.state.state === 'error', { timeoutMs: 10_000 });
      expect(backend.state.error).toMatch(/caddy validate rejected/);
      expect(backend.pid).toBe(pid);
      expect((await httpsProbe(localDirectoryUrl(ca), root, CA_NAME)).status).toBe(200);
      // Fixed again: taken up (validated, restarted) and running.
      writeFileSync(pki.intermediateCert, good);
      await until('the fixed files taken up', () => backend.state.state === 'running', { timeoutMs: 30_000 });
    } finally {
      await backend.stop();
    }
    expect(backend.pid).toBeUndefined();
  });

  it('waits, and says why, while the CA files are missing', async () => {
    const missing = { ...ca, paths: { ...ca.paths, root_cert: path.join(dir, 'nope', 'root.crt') } };
    mkdirSync(path.join(dir, 'nope'), { recursive: true });
    const backend = new CaBackend({ spawn: await buildSpawn(), run, files, log });
    await backend.apply(missing);
    expect(backend.state).toMatchObject({ state: 'waiting', backend: 'caddy', error: expect.stringContaining('mammatus ca init') });
    expect(backend.pid).toBeUndefined();
  });
});
