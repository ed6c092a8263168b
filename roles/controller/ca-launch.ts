/**
 * How a CA backend is found, started and probed (pure where it can be): which backend `auto`
 * means on this machine, its argv, the local directory URL, and the default HTTPS probe.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import type { Argv, Logger, Run } from '../../core/contracts.js';
import { findPasswdUser } from '../../core/users.js';
import { ancestors, maySearch, type DirStat } from './nats-user.js';
import { splitHostPort, urlHost } from '../../core/net.js';
import type { CaConfig } from './config.js';
import { caConfigPaths, directoryPath } from './ca-render.js';

/** The backend that runs. */
export type CaBackendKind = 'caddy' | 'step-ca';

/** Fetches the ACME directory at `url`, trusting only `rootPem` and checking the certificate's name is `servername`. */
export type DirectoryProbe = (url: string, rootPem: string, servername: string) => Promise<{ status: number; body: string }>;

/** The first executable called `program` on PATH (or `program` itself when absolute). */
export function findProgram(program: string): string | undefined {
  const candidates = path.isAbsolute(program)
    ? [program]
    : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').map((d) => path.join(d, program));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Pure: the backend `ca.backend` asks for, given which binaries exist (auto: step-ca when installed). */
export function chooseBackend(ca: CaConfig, which: (program: string) => string | undefined): CaBackendKind {
  if (ca.backend !== 'auto') return ca.backend;
  return which(ca.step_ca_binary) ? 'step-ca' : 'caddy';
}

/** Pure: how the backend is started (caddy's data directory comes through the environment, which a spawn cannot set). */
export function backendArgv(kind: CaBackendKind, ca: CaConfig): Argv {
  const paths = caConfigPaths(ca);
  if (kind === 'step-ca') return [ca.step_ca_binary, [paths.stepCa, '--password-file', paths.password]];
  const data = path.join(ca.paths.data_dir, 'caddy');
  // acme_server keeps its database under XDG_DATA_HOME/caddy; HOME keeps anything else off the user's home.
  return ['env', [`XDG_DATA_HOME=${ca.paths.data_dir}`, `HOME=${data}`, ca.caddy_binary, 'run', '--config', paths.caddy]];
}

/** Pure: the directory URL on this node (a wildcard listen address becomes loopback). */
export function localDirectoryUrl(ca: CaConfig): string {
  const { host, port } = ca.listen.startsWith(':') ? { host: '', port: Number(ca.listen.slice(1)) } : splitHostPort(ca.listen);
  const local = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `https://${urlHost(local)}:${port}${directoryPath(ca)}`;
}

/** The default probe: node:https with the root as the only CA and the name checked against `ca.mammatus`. */
export const httpsProbe: DirectoryProbe = (url, rootPem, servername) =>
  new Promise((resolve, reject) => {
    const req = request(url, { ca: rootPem, servername, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk.slice(0, 4096)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });

const fsStat = async (p: string): Promise<DirStat | undefined> =>
  stat(p).then(
    (st) => ({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }),
    () => undefined,
  );

/** What choosing the backend's user touches; the defaults read the real machine. */
export interface CaUserDeps {
  readonly run: Run;
  readonly log: Logger;
  readonly euid?: () => number;
  readonly passwd?: () => string;
  /** A directory's owner and mode, undefined when absent (default: fs.stat). */
  readonly stat?: (path: string) => Promise<DirStat | undefined>;
}

/**
 * The user the backend runs as: a root agent hands the data directory, the intermediate key and
 * step-ca's password file to the package's user (`caddy`, `step`) when it exists; otherwise the
 * agent's own user runs it (said in the log).
 */
export async function prepareCaUser(deps: CaUserDeps, kind: CaBackendKind, ca: CaConfig): Promise<string | undefined> {
  await deps.run('mkdir', ['-p', ca.paths.data_dir]);
  const euid = (deps.euid ?? (() => process.geteuid?.() ?? -1))();
  const name = ca.user === 'auto' ? (kind === 'caddy' ? 'caddy' : 'step') : ca.user;
  if (name === '' || euid !== 0) return undefined;
  const passwd = (deps.passwd ?? (() => readFileSync('/etc/passwd', 'utf8')))();
  const user = findPasswdUser(passwd, name);
  if (!user) {
    deps.log.warn({ user: name }, `the CA backend runs as the agent's user: no system user ${name}`);
    return undefined;
  }
  // Every directory on the way to its files must let the user through (a 0700 one would not).
  const paths = caConfigPaths(ca);
  const files = [ca.paths.root_cert, ca.paths.intermediate_cert, ca.paths.intermediate_key, paths.caddy, paths.stepCa, ca.paths.data_dir];
  const statOf = deps.stat ?? fsStat;
  for (const dir of [...new Set(files.flatMap((f) => ancestors(f)))]) {
    const st = await statOf(dir);
    if (st && !maySearch(user, st)) {
      const mode = st.mode.toString(8).padStart(4, '0');
      deps.log.warn({ user: name, dir, mode }, `the CA backend runs as the agent's user: ${name} may not enter ${dir}`);
      return undefined;
    }
  }
  const ids = `${user.uid}:${user.gid}`;
  await deps.run('chown', ['-R', ids, ca.paths.data_dir]);
  const own = [ca.paths.intermediate_key, ...(kind === 'step-ca' ? [caConfigPaths(ca).password] : [])];
  for (const file of own) await deps.run('chown', [ids, file]);
  return user.name;
}
