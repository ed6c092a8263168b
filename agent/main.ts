/**
 * The composition root of the daemon: builds the logger, the runner, the file writer, the agent,
 * then wires signals (SIGTERM/SIGINT stop, SIGHUP reloads), the config watcher and systemd
 * readiness. Nothing else in the code base creates these.
 */
import { buildRun, buildSpawn } from '../core/exec.js';
import type { Spawn } from '../core/contracts.js';
import { buildFileOps, writeFileAtomic } from '../core/files.js';
import { buildLogger } from '../core/logger.js';
import { sdNotify } from '../core/notify.js';
import { loadConfig, watchedFiles, type LoadConfigOptions } from './config/load.js';
import type { ConfigWatcher } from './config/watch.js';
import { createAgent, type Agent } from './daemon.js';
import { cachedGossipKey, gossipKeyReader } from './gossip-key.js';
import { roleCatalog } from './roles.js';
import { VERSION } from './version.js';
import { detach, errorMessage } from '../core/errors.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { AUTHORITY_FILE, CREDENTIALS_FILE, readCredentials, type NodeCredentials } from '../core/trust.js';

/** Writes the authority's public key beside the credentials (0644), so `mammatus status` run by anyone checks trust tags. */
async function publishAuthority(stateDir: string, creds: NodeCredentials): Promise<void> {
  const file = path.join(stateDir, AUTHORITY_FILE);
  if ((await readFile(file, 'utf8').catch(() => '')).trim() !== creds.authority) await writeFileAtomic(file, `${creds.authority}\n`, 0o644);
}

/** Reads `<state_dir>/credentials.json` (undefined when absent; throws when others can read it). */
const loadCredentials = (stateDir: string): Promise<NodeCredentials | undefined> => readCredentials(path.join(stateDir, CREDENTIALS_FILE));

/** Runs the agent until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runAgent(opts: LoadConfigOptions, stderr: (line: string) => void): Promise<number> {
  let loaded;
  let credentials: NodeCredentials | undefined;
  try {
    loaded = await loadConfig(opts);
    // As ssh does with a private key: secrets others can read are no longer secrets; refuse them.
    credentials = await loadCredentials(loaded.config.state_dir);
    if (credentials) await publishAuthority(loaded.config.state_dir, credentials);
  } catch (err) {
    stderr(`mammatus agent: ${errorMessage(err)}`);
    return 1;
  }
  const log = buildLogger(loaded.config.log.level);
  const run = buildRun();
  // Hosted services read their config section at each start: the agent's current config, after reloads.
  const built: { agent?: Agent } = {};
  const current = () => built.agent?.config() ?? loaded.config;
  const section = (name: 'metadata' | 'messaging' | 'roles') => current()[name];
  let spawner: Promise<Spawn> | undefined;
  let currentCredentials = credentials;
  const agent = createAgent({
    loaded,
    reloadConfig: () => loadConfig(opts),
    log,
    run,
    files: buildFileOps(),
    roles: roleCatalog({
      // One spawner for every role: its "user missing" error is logged once per agent.
      spawn: () => (spawner ??= buildSpawn({ log })),
      // This very program (node + the bundle), for the tenant-facing services' child processes.
      mammatus: [process.execPath, [process.argv[1]]],
      serviceUser: () => current().services.user,
      logLevel: () => current().log.level,
      section,
      registry: true,
      node: () => built.agent?.view.node() ?? '',
      credentials: () => currentCredentials,
      gossipKey: cachedGossipKey(gossipKeyReader(() => current().serf)),
    }),
    credentials,
    loadCredentials: async (dir) => (currentCredentials = await loadCredentials(dir)),
    version: VERSION,
    // sdNotify never rejects: systemd's answer is best effort.
    onReady: () => detach(sdNotify(run, '--ready', `--status=ready, version ${VERSION}`), () => undefined),
  });
  built.agent = agent;

  let watcher: ConfigWatcher | undefined;
  const reload = async () => {
    await sdNotify(run, 'RELOADING=1');
    await agent.reload();
    await sdNotify(run, '--ready');
  };
  let stopping = false;
  const done = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping on signal');
      // A hung shutdown must not outlive systemd's TimeoutStopSec (30 s).
      setTimeout(() => {
        log.error('shutdown took too long; exiting');
        resolve(1);
      }, 10_000).unref();
      // Told before the work stops, so systemd shows "deactivating" while the agent drains.
      detach(
        sdNotify(run, 'STOPPING=1')
          .then(() => Promise.allSettled([watcher?.close(), agent.stop()]))
          .then(() => resolve(0)),
        (err) => log.error({ err }, 'stopping failed'),
      );
    };
    // `on`, not `once`: execa's child cleanup (signal-exit) re-raises a signal that has no other
    // listener left, which would kill the agent before it stops its roles and their daemons.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  process.on('SIGHUP', () => detach(reload(), (err) => log.error({ err }, 'reload failed')));

  log.info({ version: VERSION, config: loaded.files }, 'mammatus agent starting');
  // start() waits for serf (retrying with backoff); a stop signal meanwhile ends it quietly.
  agent.start().catch((err: unknown) => log.debug({ err }, 'start abandoned'));
  if (loaded.config.watch_config) {
    // The main file is watched even while missing, so creating it later is noticed too.
    const files = watchedFiles(loaded);
    // chokidar loads while the agent connects to serf, off the path to ready. Without a watcher
    // the agent still runs: SIGHUP reloads.
    try {
      const { watchConfig } = await import('./config/watch.js');
      // A stop signal that came while chokidar loaded finds no watcher to close: start none.
      if (!stopping) watcher = watchConfig(files, loaded.dirs, async () => void (await agent.reload()), log.child({ component: 'config' }));
    } catch (err) {
      log.error({ err }, 'config files are not watched; send SIGHUP after a change');
    }
  }
  return done;
}
