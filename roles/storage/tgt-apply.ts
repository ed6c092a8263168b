/**
 * Applies a tgt render (tgt-render.ts) to a running tgtd, one target at a time and never with a
 * global reload: `tgt-admin --update ALL` re-creates every target (sessions drop) and silently skips
 * busy ones. Effects go through the injected runner (argv arrays) and file writer only.
 *
 * Order: backing files (sparse, grow only), then the conf (atomic, 0600: it holds CHAP secrets),
 * then deletions, then one `tgt-admin --update IQN` per target whose block changed or whose live
 * state differs, then the portal, then a read-back of every target (tgt-admin exits 0 after
 * skipping a LUN whose backing file is missing, or a busy target). A target with a logged-in
 * session is not touched (an error for it), except to revoke an initiator (a detach): then its
 * name is unbound and its connections are ended first, as detaching must.
 */
import { dirname } from 'node:path';
import type { FileOps, Run } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { claimBackingFile, releaseBackingFile } from './backing-id.js';
import { TGT_CONF_PATH, TGT_NOBODY_ADDRESS, tgtBlocks, type TgtRender, type TgtTarget } from './tgt-render.js';
import { parseTgtPortals, parseTgtShow, tgtMismatches, type TgtLiveTarget } from './tgt-show.js';

/** How to reach tgt. */
export interface TgtApplyOptions {
  readonly run: Run;
  readonly files: FileOps;
  /** The file the render goes to (default {@link TGT_CONF_PATH}). */
  readonly confPath?: string;
  /** The file tgt-admin reads (`-c`); default `/etc/tgt/targets.conf`, which includes `conf.d/*.conf`. */
  readonly tgtConfig?: string;
  /** tgtd's control port (`-C`), when not the default 0. */
  readonly controlPort?: number;
  /** The one portal (`IP:PORT`) tgtd should listen on; others are removed. Undefined: portals are left alone. */
  readonly portal?: string;
}

/** One thing that did not go as rendered. */
export interface TgtApplyError {
  readonly volume?: string;
  readonly iqn?: string;
  readonly error: string;
}

/** What an apply did. Empty `errors`: tgtd serves exactly the render. */
export interface TgtApplyResult {
  /** IQNs (re)created with `tgt-admin --update`. */
  readonly updated: readonly string[];
  /** IQNs deleted. */
  readonly deleted: readonly string[];
  /** Backing files created or grown. */
  readonly grown: readonly string[];
  /** Backing files of volumes in state `deleting`, removed after their target was gone. */
  readonly removedFiles: readonly string[];
  readonly errors: readonly TgtApplyError[];
  /** volume → the LUN it is served as, for every volume served as rendered (for the record). */
  readonly luns: Readonly<Record<string, number>>;
}

/** Whom an error is about. */
type Who = { readonly volume?: string; readonly iqn?: string };
type Fail = (who: Who, error: string) => void;

/** Only targets named like a volume's IQN are the agent's; an operator's own targets are left alone. */
const OURS = /^iqn\.\d{4}-\d{2}\.mammatus:/;

/** Applies `render` (see the module comment). Never throws for tgt's failures: they are in `errors`. */
export async function applyTgt(render: TgtRender, opts: TgtApplyOptions): Promise<TgtApplyResult> {
  const { run, files } = opts;
  const port = opts.controlPort === undefined ? [] : ['-C', String(opts.controlPort)];
  const tgtadm = (args: string[]) => run('tgtadm', [...port, '--lld', 'iscsi', ...args]);
  const tgtAdmin = (args: string[]) => run('tgt-admin', [...port, ...args]);
  const errors: TgtApplyError[] = [];
  const updated: string[] = [];
  const deleted: string[] = [];
  const failed = new Set<string>();
  const fail: Fail = (t, error) => {
    errors.push({ ...(t.volume ? { volume: t.volume } : {}), ...(t.iqn ? { iqn: t.iqn } : {}), error });
    if (t.iqn) failed.add(t.iqn);
  };
  for (const s of render.skipped) fail(s, s.error);

  const grown = await ensureBackingFiles(run, files, render.targets, fail);

  const confPath = opts.confPath ?? TGT_CONF_PATH;
  const old = await files.read(confPath);
  const oldBlocks = tgtBlocks(old);
  // A skipped volume keeps its last good block, so a bad record loses nothing at tgtd's next start.
  const kept = render.skipped.flatMap((s) => (s.iqn && oldBlocks.has(s.iqn) ? [oldBlocks.get(s.iqn)!] : []));
  const content = render.content + (kept.length ? `\n# kept from the last good render (see the errors):\n${kept.join('\n')}` : '');
  if (content !== old || (await files.mode?.(confPath)) !== 0o600) await files.write(confPath, content, 0o600);

  const show = async (): Promise<Map<string, TgtLiveTarget>> =>
    new Map(parseTgtShow((await tgtadm(['--mode', 'target', '--op', 'show'])).stdout).map((t) => [t.iqn, t]));
  let live: Map<string, TgtLiveTarget>;
  try {
    live = await show();
  } catch (err) {
    errors.push({ error: `tgtd does not answer (is it running?): ${errorMessage(err)}` });
    return { updated, deleted, grown, removedFiles: [], errors, luns: {} };
  }

  // Deletions first: a new volume may take over a deleted one's CHAP user.
  const wanted = new Set([...render.targets.map((t) => t.iqn), ...render.skipped.flatMap((s) => (s.iqn ? [s.iqn] : []))]);
  const volumeOf = new Map(render.deleting.map((d) => [d.iqn, d.volume]));
  for (const t of live.values()) {
    if (wanted.has(t.iqn) || !OURS.test(t.iqn)) continue;
    const who = { iqn: t.iqn, ...(volumeOf.has(t.iqn) ? { volume: volumeOf.get(t.iqn)! } : {}) };
    if (t.sessions.length) {
      fail(who, `busy: ${sessionsText(t)} logged in; not deleted (detach the volume first)`);
      continue;
    }
    await step(who, fail, async () => {
      await tgtAdmin(['--delete', t.iqn]);
      await deleteAccounts(tgtadm, t.accounts);
      deleted.push(t.iqn);
    });
  }

  for (const t of render.targets) {
    // Its backing file could not be made ready: a target now would be one without its LUN.
    if (failed.has(t.iqn)) continue;
    const was = live.get(t.iqn);
    if (oldBlocks.get(t.iqn) === t.block && tgtMismatches(t, was).length === 0) continue;
    // Revoking an initiator (a detach) must take effect even while it is logged in.
    const force = was !== undefined && was.acl.some((a) => a !== TGT_NOBODY_ADDRESS && a !== t.initiator);
    if (was?.sessions.length && !force) {
      fail(t, `busy: ${sessionsText(was)} logged in; not updated (the change waits for a detach)`);
      continue;
    }
    await step(t, fail, async () => {
      if (was && force) await revoke(tgtadm, was, t.initiator);
      if (was) {
        await tgtAdmin(['--delete', t.iqn]);
        // tgt-admin never changes an existing account's password: re-create it, once the target is gone.
        if ((await show()).has(t.iqn)) throw new Error('busy: a session logged in meanwhile; not updated');
        await deleteAccounts(tgtadm, was.accounts);
      } else await deleteAccounts(tgtadm, await accountsNamed(tgtadm, t.chapUser));
      await tgtAdmin(['-c', opts.tgtConfig ?? '/etc/tgt/targets.conf', '--update', t.iqn]);
      updated.push(t.iqn);
    });
  }

  if (opts.portal) await step({}, fail, () => ensurePortal(tgtadm, opts.portal!));

  // Read back: what tgtd really serves, whatever the tools said.
  const removedFiles: string[] = [];
  const luns: Record<string, number> = {};
  try {
    live = await show();
    for (const t of render.targets) {
      if (failed.has(t.iqn)) continue;
      const problems = tgtMismatches(t, live.get(t.iqn));
      if (problems.length) fail(t, problems.join('; '));
      else luns[t.volume] = t.lun;
    }
    for (const d of render.deleting) {
      if (live.has(d.iqn) || !d.backing) continue;
      await step(d, fail, async () => {
        // Only once: the record stays `deleting` until the role reports the volume gone. Only the
        // record's own file: a leftover of an earlier volume of that name stays the operator's.
        const exists = !files.mode || (await files.mode(d.backing!)) !== undefined;
        if (await releaseBackingFile(files, d.backing!, exists, d.identity!)) removedFiles.push(d.backing!);
      });
    }
  } catch (err) {
    errors.push({ error: `tgtd does not answer the read-back: ${errorMessage(err)}` });
  }
  return { updated, deleted, grown, removedFiles, errors, luns };
}

/** Runs one target's step; a failure becomes that target's error, never the whole apply's. */
async function step(who: Who, fail: Fail, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    fail(who, errorMessage(err) + (typeof stderr === 'string' && stderr.trim() ? `: ${stderr.trim()}` : ''));
  }
}

function sessionsText(t: TgtLiveTarget): string {
  return t.sessions.map((s) => `${s.initiator || '?'} from ${s.connections.map((c) => c.address).join(', ') || '?'}`).join('; ');
}

/**
 * A detach while the initiator is logged in: unbind the names no longer admitted (so it cannot log
 * back in), then end its connections. Not `tgt-admin --force`: it unbinds every ACL entry with `-I`,
 * which fails on an initiator name (bound with `-Q`) and leaves the target half torn down.
 */
async function revoke(tgtadm: (a: string[]) => Promise<unknown>, live: TgtLiveTarget, keep: string | undefined): Promise<void> {
  const tid = String(live.tid);
  for (const entry of live.acl) {
    if (entry === keep || !/^(iqn|eui|naa)\./.test(entry)) continue;
    await tgtadm(['--mode', 'target', '--op', 'unbind', '--tid', tid, '--initiator-name', entry]);
  }
  for (const s of live.sessions) {
    for (const c of s.connections) {
      await tgtadm(['--mode', 'conn', '--op', 'delete', '--tid', tid, '--sid', String(s.sid), '--cid', String(c.cid)]);
    }
  }
}

async function deleteAccounts(tgtadm: (a: string[]) => Promise<unknown>, users: readonly string[]): Promise<void> {
  for (const user of users) await tgtadm(['--mode', 'account', '--op', 'delete', '--user', user]);
}

/** `[user]` when tgtd has an account of that name (left by an older target), else `[]`. */
async function accountsNamed(tgtadm: (a: string[]) => Promise<{ stdout: string }>, user: string): Promise<string[]> {
  const { stdout } = await tgtadm(['--mode', 'account', '--op', 'show']);
  return stdout.split('\n').some((l) => l.trim() === user) ? [user] : [];
}

/**
 * Sparse backing files of at least the record's size (grow only: shrinking would cut data off),
 * each claimed for its record first: a leftover of an earlier volume of that name is refused.
 */
async function ensureBackingFiles(run: Run, files: FileOps, targets: readonly TgtTarget[], fail: Fail): Promise<string[]> {
  const grown: string[] = [];
  for (const t of targets) {
    if (t.kind !== 'file') continue;
    await step(t, fail, async () => {
      const st = await run('stat', ['-c', '%s %a', '--', t.backing]).then(
        (r) => r.stdout.trim().split(/\s+/),
        () => undefined,
      );
      const size = st ? Number(st[0]) : undefined;
      if (t.identity) await claimBackingFile(files, t.backing, st !== undefined, t.identity);
      if (size !== undefined && size > t.sizeBytes) {
        throw new Error(`${t.backing} is ${size} bytes, more than the record's ${t.sizeBytes}: volumes never shrink`);
      }
      if (size !== t.sizeBytes) {
        await run('mkdir', ['-p', '--', dirname(t.backing)]);
        // '>N' grows to at least N and never shrinks; truncate leaves the new blocks unallocated.
        await run('truncate', ['-s', `>${t.sizeBytes}`, '--', t.backing]);
        grown.push(t.backing);
      }
      // Tenant data: only root (tgtd) reads it. Checked on every pass, not only after creating the
      // file: an agent that died between truncate and chmod left it as the umask made it (0644).
      if (st?.[1] !== '600') await run('chmod', ['600', '--', t.backing]);
    });
  }
  return grown;
}

/** Leaves `portal` as tgtd's only iSCSI portal. */
async function ensurePortal(tgtadm: (a: string[]) => Promise<{ stdout: string }>, portal: string): Promise<void> {
  const have = parseTgtPortals((await tgtadm(['--mode', 'portal', '--op', 'show'])).stdout);
  // Others first: tgtd's default wildcard portals hold the port, so the new one would not bind.
  for (const p of have) if (p !== portal) await tgtadm(['--mode', 'portal', '--op', 'delete', '--param', `portal=${p}`]);
  if (!have.includes(portal)) await tgtadm(['--mode', 'portal', '--op', 'new', '--param', `portal=${portal}`]);
}
