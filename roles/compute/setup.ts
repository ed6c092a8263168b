/**
 * Brings a node's LXD to the role's preseed through the REST API: the storage pool, the root
 * disk in `default`, and the macvlan profile. Each object is created when absent and updated only
 * when it differs, with the ETag it was read with, so a concurrent edit (an operator's `lxc
 * profile edit`) fails the apply instead of being silently overwritten. The host's macvlan sibling
 * goes through the injected runner.
 */
import type { Logger } from '../../core/contracts.js';
import type { Run } from '../../core/contracts.js';
import type { ComputeConfig } from './config.js';
import { LxdConflictError, LxdNotFoundError, type LxdClient } from '../../src/lxd/client.js';
import type { LxdProfile, LxdProfilePut } from '../../src/lxd/types.js';
import { renderDefaultProfile, renderHostMacvlan, renderMacvlanProfile, renderStoragePool } from './preseed.js';

/** What the compute role needs of LXD; checked once per setup so a too-old LXD fails clearly. */
export const REQUIRED_EXTENSIONS = ['network_type_macvlan'] as const;

/** What {@link ensureLxdSetup} changed (empty when LXD was already set up). */
export type SetupChange = `pool ${string}` | `profile ${string} created` | `profile ${string} updated`;

/** Ensures the pool and both profiles; returns what it changed. */
export async function ensureLxdSetup(lxd: LxdClient, cfg: ComputeConfig, log: Logger): Promise<SetupChange[]> {
  await lxd.requireExtensions(...REQUIRED_EXTENSIONS);
  const changes: SetupChange[] = [];
  const pool = renderStoragePool(cfg);
  try {
    await lxd.getStoragePool(pool.name);
  } catch (err) {
    if (!(err instanceof LxdNotFoundError)) throw err;
    // Another writer creating it at the same moment is as good as us creating it.
    await lxd.createStoragePool(pool).catch((e: unknown) => {
      if (!(e instanceof LxdConflictError)) throw e;
    });
    changes.push(`pool ${pool.name}`);
  }
  for (const want of [renderDefaultProfile(cfg), renderMacvlanProfile(cfg)]) {
    const change = await ensureProfile(lxd, want);
    if (change) changes.push(change);
  }
  if (changes.length) log.info({ changes }, 'LXD set up');
  return changes;
}

async function ensureProfile(lxd: LxdClient, want: LxdProfilePut & { readonly name: string }): Promise<SetupChange | undefined> {
  let current: { value: LxdProfile; etag: string };
  try {
    current = await lxd.getProfile(want.name);
  } catch (err) {
    if (!(err instanceof LxdNotFoundError)) throw err;
    await lxd.createProfile(want);
    return `profile ${want.name} created`;
  }
  if (profileMatches(current.value, want)) return undefined;
  // Keys the operator added to the profile's config stay; our devices replace theirs of the same name.
  const put: LxdProfilePut = {
    description: want.description ?? current.value.description ?? '',
    config: { ...current.value.config, ...want.config },
    devices: { ...current.value.devices, ...want.devices },
  };
  await lxd.updateProfile(want.name, put, { etag: current.etag });
  return `profile ${want.name} updated`;
}

/** True when every device and config key the role wants is there with the same values. */
export function profileMatches(have: LxdProfilePut, want: LxdProfilePut): boolean {
  const same = (a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>>) =>
    a !== undefined && Object.keys(b).length === Object.keys(a).length && Object.entries(b).every(([k, v]) => a[k] === v);
  return (
    Object.entries(want.config).every(([k, v]) => have.config[k] === v) &&
    Object.entries(want.devices).every(([name, dev]) => same(have.devices[name], dev))
  );
}

/**
 * Gives the host its macvlan sibling (when configured): created when missing, address and link
 * state applied every time (both idempotent).
 */
export async function ensureHostMacvlan(run: Run, cfg: ComputeConfig): Promise<void> {
  const cmds = renderHostMacvlan(cfg);
  if (!cmds.length) return;
  const exists = await run('ip', ['-o', 'link', 'show', 'dev', cfg.host_macvlan.interface]).then(
    () => true,
    () => false,
  );
  for (const [file, ...args] of exists ? cmds.slice(1) : cmds) await run(file, args);
}
