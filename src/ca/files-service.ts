/**
 * The CA files on every controller (issue 20, docs/ca.md): keeps `roles.controller.ca.paths`
 * (`root_cert`, `intermediate_cert`, `intermediate_key`) in step with the buckets `mammatus-ca` and
 * `mammatus-ca-keys`, so the CA backend (roles/controller/ca-backend.ts, which polls those files)
 * starts once `mammatus ca init` ran and restarts when the intermediate is rotated.
 *
 * It watches both buckets (and reads them again every minute, in case a change was missed), checks
 * a set before writing it (files.ts), writes atomically (temp + rename), the key 0600 and, when the
 * agent is root, owned by the backend's user. It never removes a file: no bucket, an empty one, a
 * NATS error or a bad PEM all leave the files as they are. It runs in the agent, which may read the
 * controllers-only bucket.
 */
import { readFileSync } from 'node:fs';
import { chown as fsChown } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FileOps, HostedService, Logger } from '../../core/contracts.js';
import { detach, errorMessage } from '../../core/errors.js';
import { buildFileOps } from '../../core/files.js';
import { connectNats } from '../../core/nats.js';
import type { NodeCredentials } from '../../core/trust.js';
import { findPasswdUser } from '../../core/users.js';
import { caFileWrites, checkCaFileSet, type CaFilePaths, type CurrentFile } from './files.js';
import { CaStore, type CaKeys, type CaPublic } from './store.js';

export type { CaFilePaths } from './files.js';

/** How the files are written, and who owns the key. */
export interface CaFilesIo {
  readonly files: FileOps;
  /** The owner (uid, gid) of the key, undefined to leave it to the agent's user. */
  readonly keyOwner: () => { uid: number; gid: number } | undefined;
  readonly chown: (path: string, uid: number, gid: number) => Promise<void>;
  readonly log: Logger;
}

/** What one sync did. */
export type CaFilesOutcome = 'no-ca' | 'unchanged' | 'written' | 'refused';

/**
 * Makes `paths` hold what the buckets hold (`pub`, `keys`; undefined while there is no CA). Returns
 * what it did; a set that does not check out is `refused` (logged by the caller) and writes nothing.
 */
export async function syncCaFiles(
  parts: { pub?: CaPublic; keys?: CaKeys },
  paths: CaFilePaths,
  io: CaFilesIo,
): Promise<{ outcome: CaFilesOutcome; error?: string; written?: string[] }> {
  if (!parts.pub || !parts.keys) return { outcome: 'no-ca' };
  let set;
  try {
    set = checkCaFileSet(parts.pub, parts.keys);
  } catch (err) {
    return { outcome: 'refused', error: errorMessage(err) };
  }
  const current = new Map<string, CurrentFile>();
  for (const p of [paths.root_cert, paths.intermediate_cert, paths.intermediate_key]) {
    current.set(p, { content: await io.files.read(p), mode: await io.files.mode?.(p) });
  }
  const writes = caFileWrites(paths, set, (p) => current.get(p) ?? {});
  for (const w of writes) {
    await io.files.write(w.path, w.content, w.mode);
    const owner = w.secret ? io.keyOwner() : undefined;
    if (owner) await io.chown(w.path, owner.uid, owner.gid);
  }
  return writes.length ? { outcome: 'written', written: writes.map((w) => w.path) } : { outcome: 'unchanged' };
}

/** What the hosted service is built with. */
export interface CaFilesWiring {
  readonly credentials: () => NodeCredentials | undefined;
  /** The files to keep, read at each start; undefined when this controller runs no CA backend. */
  readonly paths: () => CaFilePaths | undefined;
  /** The system user the backend runs as when the agent is root (`caddy`, `step`); undefined: the agent's. */
  readonly owner?: () => string | undefined;
  readonly files?: FileOps;
  readonly chown?: (path: string, uid: number, gid: number) => Promise<void>;
  readonly euid?: () => number;
  readonly passwd?: () => string;
  /** How often the buckets are read again even without a change (default 60 s). */
  readonly resyncMs?: number;
  /** How long to wait before binding again while there is no CA or NATS fails (default 5 s). */
  readonly retryMs?: number;
}

/** The key's owner: the backend's user when the agent is root and that user exists. */
function keyOwnerOf(w: CaFilesWiring): () => { uid: number; gid: number } | undefined {
  return () => {
    const name = w.owner?.();
    if (!name || (w.euid ?? (() => process.geteuid?.() ?? -1))() !== 0) return undefined;
    const user = findPasswdUser((w.passwd ?? (() => readFileSync('/etc/passwd', 'utf8')))(), name);
    return user ? { uid: user.uid, gid: user.gid } : undefined;
  };
}

/** The loop that follows the buckets on `nc` until `stopped` says so. */
function follow(nc: NatsConnection, paths: CaFilePaths, w: CaFilesWiring, io: CaFilesIo, stopped: () => boolean, wake: Waker): void {
  let lastError: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let store: CaStore | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  const sync = async (): Promise<void> => {
    if (!store) return;
    try {
      const [pub, keys] = await Promise.all([store.publicParts(), store.keyParts()]);
      const r = await syncCaFiles({ pub, keys }, paths, io);
      if (r.outcome === 'written') io.log.info({ files: r.written }, 'CA files written from the buckets');
      if (r.outcome === 'refused' && r.error !== lastError) io.log.error({ err: r.error }, 'CA files kept: the buckets hold a bad CA');
      lastError = r.error;
    } catch (err) {
      // A NATS or disk error: nothing was removed; the next change or resync tries again.
      io.log.warn({ err: errorMessage(err) }, 'CA files not synced');
    }
  };
  // One sync at a time; a burst of changes (ca init writes five keys) becomes one more sync after it.
  const kick = (): void => {
    if (stopped()) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (running) {
        again = true;
        return;
      }
      running = sync().finally(() => {
        running = undefined;
        if (again) {
          again = false;
          kick();
        }
      });
    }, 300);
  };
  const resync = setInterval(kick, w.resyncMs ?? 60_000);
  detach(
    (async () => {
      while (!stopped()) {
        try {
          store = await CaStore.bind(nc);
          if (store) {
            const watch = await store.watch(kick);
            kick();
            await Promise.race([watch.done, wake.sleep(Infinity)]);
            watch.stop();
          }
        } catch (err) {
          io.log.warn({ err: errorMessage(err) }, 'CA buckets not readable; trying again');
        }
        if (!stopped()) await wake.sleep(w.retryMs ?? 5000);
      }
      clearInterval(resync);
      clearTimeout(timer);
    })(),
    (err) => io.log.error({ err }, 'CA files service stopped'),
  );
}

/** A sleep that `wake()` ends early (at stop). */
class Waker {
  private wakers = new Set<() => void>();
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.wakers.add(done);
    });
  }
  wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

/** The CA files as a hosted service of the controller role (next to the signing service). */
export function caFilesHostedService(w: CaFilesWiring): HostedService {
  let close: (() => Promise<void>) | undefined;
  let key = 'null';
  return {
    name: 'ca-files',
    // A reload that moves the files (or turns the CA off) restarts the service.
    configKey: () => {
      try {
        return JSON.stringify(w.paths() ?? null);
      } catch {
        // A config that does not parse is the role's to report; keep running with the old paths.
        return key;
      }
    },
    async start(ctx) {
      const paths = w.paths();
      key = JSON.stringify(paths ?? null);
      if (!paths) {
        ctx.log.info('no CA backend on this controller (roles.controller.ca.enabled is false): CA files not kept');
        return;
      }
      const nc = await connectNats(ctx.natsUrl, {
        name: 'mammatus-ca-files',
        persistent: true,
        credentials: w.credentials() ?? ctx.credentials,
      });
      const io: CaFilesIo = { files: w.files ?? buildFileOps(), keyOwner: keyOwnerOf(w), chown: w.chown ?? fsChown, log: ctx.log };
      let stopped = false;
      const waker = new Waker();
      follow(nc, paths, w, io, () => stopped, waker);
      close = async () => {
        stopped = true;
        waker.wake();
        await nc.drain();
      };
    },
    async stop() {
      await close?.().catch(() => undefined);
      close = undefined;
    },
  };
}
