/**
 * Carries out {@link planIscsi} through the injected runner (argv arrays, no shell) and file
 * writer. Idempotent: a record that already reads the same is not written, a session that exists
 * is not logged in again, and a login that finds one anyway ("session exists", exit 15) counts as
 * done, as os-brick does it. Each volume's steps run in order; one that fails ends that volume's
 * steps, is reported with the volume's name, and the other volumes go on.
 *
 * Order with LXD (see docs/storage.md, "The compute side"): remove the LXD devices of volumes
 * going away before their logout, add devices only for the attachments this returns as `ready`.
 */
import type { FileOps, Run } from '../../core/contracts.js';
import { CommandFailedError } from '../../core/exec.js';
import { errorMessage } from '../../core/errors.js';
import { isIqn } from '../../core/volume-record.js';
import {
  INITIATOR_NAME_FILE,
  ISCSI_PORT,
  parseInitiatorName,
  parseIscsiNodes,
  parseIscsiSessions,
  planIscsi,
  type IscsiAttachment,
  type IscsiPlan,
  type IscsiPlanInput,
  type IscsiState,
  type IscsiStep,
} from './iscsi-plan.js';

/** iscsiadm's ISCSI_ERR_SESS_EXISTS: the login found the session up. */
export const ISCSI_ERR_SESS_EXISTS = 15;
/** iscsiadm's ISCSI_ERR_NO_OBJS_FOUND: no session / no record (an empty list, a logout of nothing). */
export const ISCSI_ERR_NO_OBJS_FOUND = 21;
/** iscsiadm's ISCSI_ERR_LOGIN_AUTH_FAILED. */
const ISCSI_ERR_LOGIN_AUTH_FAILED = 24;

/** What the executor works with. */
export interface IscsiDeps {
  readonly run: Run;
  readonly files: FileOps;
  /** Whether a device node exists; when given, a volume is `ready` only once its by-path link is there. */
  readonly deviceExists?: (path: string) => Promise<boolean>;
  /** How long to wait for udev to make the by-path link after a login (ms); default 10 000. */
  readonly deviceWaitMs?: number;
  /** Injected for tests; default setTimeout. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** One failed step, for the role's status and log (never holds the CHAP secret). */
export interface IscsiFailure {
  readonly volume: string;
  readonly step: IscsiStep['kind'];
  readonly error: string;
}

/** What {@link applyIscsiPlan} did. */
export interface IscsiApplyResult {
  /** Steps that changed something, as `<kind> <volume>`. */
  readonly done: readonly string[];
  readonly failed: readonly IscsiFailure[];
  /** Attachments whose steps all succeeded (and whose device exists, when that is checked). */
  readonly ready: readonly IscsiAttachment[];
}

const portal = (ip: string) => `${ip}:${ISCSI_PORT}`;
const exitOf = (err: unknown) => (err instanceof CommandFailedError ? err.exitCode : undefined);

/** Runs `iscsiadm -m <mode>`; "nothing found" (exit 21) is an empty answer. */
async function list(run: Run, mode: 'session' | 'node'): Promise<string> {
  try {
    return (await run('iscsiadm', ['-m', mode])).stdout;
  } catch (err) {
    if (exitOf(err) === ISCSI_ERR_NO_OBJS_FOUND) return '';
    if (err instanceof CommandFailedError && err.exitCode === undefined && /ENOENT/.test(err.message))
      throw new Error('iscsiadm cannot be run: is open-iscsi installed? (apt install open-iscsi)', { cause: err });
    throw err;
  }
}

/** open-iscsi's sessions and node records. @throws when iscsiadm fails otherwise. */
export async function readIscsiState(run: Run): Promise<IscsiState> {
  const sessions = parseIscsiSessions(await list(run, 'session'));
  const nodes = parseIscsiNodes(await list(run, 'node'));
  return { sessions, nodes };
}

/**
 * This node's initiator IQN from `/etc/iscsi/initiatorname.iscsi`, for the Serf tag `iscsi`;
 * `{ reason }` when the file is missing, names none yet (iscsid makes it at its first start) or
 * names something that is not an `iqn.` name.
 */
export async function readInitiatorName(files: FileOps, file = INITIATOR_NAME_FILE): Promise<{ iqn: string } | { reason: string }> {
  const text = await files.read(file);
  if (text === undefined) return { reason: `${file} does not exist: is open-iscsi installed?` };
  const name = parseInitiatorName(text);
  if (name === undefined) return { reason: `${file} names no initiator yet (start iscsid once)` };
  if (!isIqn(name)) return { reason: `${file}: ${JSON.stringify(name)} is not an iqn. name` };
  return { iqn: name };
}

/** Why a step failed, in one line, from iscsiadm's own words where it gave some. */
function why(err: unknown): string {
  const code = exitOf(err);
  if (code === ISCSI_ERR_LOGIN_AUTH_FAILED) return 'login refused: CHAP authentication failed (exit 24)';
  const stderr = err instanceof CommandFailedError ? err.stderr.trim().split('\n').filter(Boolean).pop() : undefined;
  return (stderr ? `${stderr}${code !== undefined ? ` (exit ${code})` : ''}` : errorMessage(err)).slice(0, 300);
}

/** Runs one step; true when it changed something. */
async function runStep(step: IscsiStep, deps: IscsiDeps): Promise<boolean> {
  const target = ['-m', 'node', '-T', step.iqn, '-p', portal(step.ip)];
  switch (step.kind) {
    case 'record': {
      // Same content and still 0600 (an operator's chmod is undone): nothing to do.
      const same = (await deps.files.read(step.file)) === step.content;
      if (same && (deps.files.mode === undefined || (await deps.files.mode(step.file)) === 0o600)) return false;
      await deps.files.write(step.file, step.content, 0o600);
      return true;
    }
    case 'login':
      try {
        await deps.run('iscsiadm', [...target, '--login'], { timeoutMs: 60_000 });
        return true;
      } catch (err) {
        if (exitOf(err) === ISCSI_ERR_SESS_EXISTS) return false;
        throw err;
      }
    case 'logout':
    case 'delete':
      try {
        await deps.run(
          'iscsiadm',
          step.kind === 'logout' ? [...target, '--logout'] : ['-m', 'node', '-o', 'delete', '-T', step.iqn, '-p', portal(step.ip)],
        );
        return true;
      } catch (err) {
        if (exitOf(err) === ISCSI_ERR_NO_OBJS_FOUND) return false;
        throw err;
      }
  }
}

/** Waits (bounded) for udev's by-path link of a volume. */
async function deviceAppears(path: string, deps: IscsiDeps): Promise<boolean> {
  if (!deps.deviceExists) return true;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const tries = Math.max(1, Math.ceil((deps.deviceWaitMs ?? 10_000) / 250));
  for (let i = 0; i < tries; i++) {
    if (await deps.deviceExists(path)) return true;
    if (i + 1 < tries) await sleep(250);
  }
  return false;
}

/** Carries out `plan`; never throws (every failure is in `failed`). */
export async function applyIscsiPlan(plan: IscsiPlan, deps: IscsiDeps): Promise<IscsiApplyResult> {
  const done: string[] = [];
  const failed: IscsiFailure[] = [];
  // Steps group by volume and portal, in plan order: a failed login of the new portal must not
  // stop the logout of the old one, and a failed logout keeps its record (no delete under a session).
  const groups = new Map<string, IscsiStep[]>();
  for (const s of plan.steps) {
    const key = `${s.volume} ${s.ip}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const broken = new Set<string>();
  for (const steps of groups.values()) {
    for (const step of steps) {
      try {
        if (await runStep(step, deps)) done.push(`${step.kind} ${step.volume}`);
      } catch (err) {
        failed.push({ volume: step.volume, step: step.kind, error: why(err) });
        broken.add(step.volume);
        break;
      }
    }
  }
  const ready: IscsiAttachment[] = [];
  for (const a of plan.attach) {
    if (broken.has(a.volume)) continue;
    if (await deviceAppears(a.device, deps)) ready.push(a);
    else failed.push({ volume: a.volume, step: 'login', error: `logged in, but ${a.device} did not appear` });
  }
  return { done, failed, ready };
}

/** One pass: reads open-iscsi's state, plans and applies. `state` in the result is what was read. */
export async function syncIscsi(
  input: Omit<IscsiPlanInput, 'state'>,
  deps: IscsiDeps,
): Promise<IscsiApplyResult & { readonly plan: IscsiPlan; readonly state: IscsiState }> {
  const state = await readIscsiState(deps.run);
  const plan = planIscsi({ ...input, state });
  return { ...(await applyIscsiPlan(plan, deps)), plan, state };
}
