/**
 * Pure renderings of the compute role's LXD setup from its config: the `lxd init --preseed`
 * document (a storage pool, the root disk in the default profile, the macvlan profile, and
 * deliberately no managed network, so LXD never creates `lxdbr0`), the same objects for the REST
 * API, the create request of an instance, and the `ip` commands of the host's macvlan sibling.
 * No I/O: the role applies these through the LXD client and the injected runner.
 */
import { stringify } from 'yaml';
import type { ComputeConfig } from './config.js';
import type { LxdConfig, LxdInstanceCreate, LxdProfilePut, LxdStoragePoolCreate } from '../../src/lxd/types.js';

/** The NIC name inside every instance (and the `volatile.<nic>.hwaddr` key that fixes its MAC). */
export const INSTANCE_NIC = 'eth0';

/** An LXD preseed: what `lxd init --preseed` reads (YAML) and `PUT /1.0` + friends would set. */
export interface LxdPreseed {
  readonly config: LxdConfig;
  readonly networks: readonly never[];
  readonly storage_pools: readonly LxdStoragePoolCreate[];
  readonly profiles: readonly (LxdProfilePut & { readonly name: string })[];
}

/** The storage pool the role creates when LXD has none of that name. */
export function renderStoragePool(cfg: ComputeConfig): LxdStoragePoolCreate {
  return { name: cfg.storage.pool, driver: cfg.storage.driver, description: 'mammatus instances', config: {} };
}

/** LXD's `default` profile as the role wants it: only the root disk, on the role's pool. */
export function renderDefaultProfile(cfg: ComputeConfig): LxdProfilePut & { readonly name: string } {
  return {
    name: 'default',
    description: 'Default LXD profile',
    config: {},
    devices: { root: { path: '/', pool: cfg.storage.pool, type: 'disk' } },
  };
}

/** The profile every instance gets after `default`: one macvlan NIC on the configured parent. */
export function renderMacvlanProfile(cfg: ComputeConfig): LxdProfilePut & { readonly name: string } {
  return {
    name: cfg.profile,
    description: `mammatus: macvlan on ${cfg.parent}`,
    config: {},
    devices: { [INSTANCE_NIC]: { name: INSTANCE_NIC, nictype: 'macvlan', parent: cfg.parent, type: 'nic' } },
  };
}

/** The whole preseed: pool, default profile, macvlan profile, and `networks: []` (no lxdbr0). */
export function renderPreseed(cfg: ComputeConfig): LxdPreseed {
  return {
    config: {},
    networks: [],
    storage_pools: [renderStoragePool(cfg)],
    profiles: [renderDefaultProfile(cfg), renderMacvlanProfile(cfg)],
  };
}

/** The preseed as YAML for `lxd init --preseed`, with the managed-file header. */
export function renderPreseedYaml(cfg: ComputeConfig): string {
  return `# managed by mammatus role=compute\n${stringify(renderPreseed(cfg), { sortMapEntries: true })}`;
}

/** What an instance is created with. */
export interface InstanceSpec {
  readonly name: string;
  /** Image alias (or a fingerprint with `fingerprint: true`). */
  readonly image: string;
  readonly fingerprint?: boolean;
  /** The MAC fixed before the first boot (lower case, colons), so the gateway can reserve it. */
  readonly mac: string;
  /** Free-form `user.mammatus.<key>` values (the instance reads them through /dev/lxd/sock). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Passed as `cloud-init.user-data` / `vendor-data`; normally absent (the metadata service serves them). */
  readonly userData?: string;
  readonly vendorData?: string;
}

/** The `POST /1.0/instances` body for `spec`: profiles default + macvlan, the MAC fixed. */
export function renderInstanceCreate(cfg: ComputeConfig, spec: InstanceSpec): LxdInstanceCreate {
  const config: Record<string, string> = { [`volatile.${INSTANCE_NIC}.hwaddr`]: spec.mac.toLowerCase() };
  for (const key of Object.keys(spec.labels ?? {}).sort()) config[`user.mammatus.${key}`] = spec.labels![key]!;
  if (spec.userData !== undefined) config['cloud-init.user-data'] = spec.userData;
  if (spec.vendorData !== undefined) config['cloud-init.vendor-data'] = spec.vendorData;
  return {
    name: spec.name,
    type: 'container',
    profiles: ['default', cfg.profile],
    source: spec.fingerprint ? { type: 'image', fingerprint: spec.image } : { type: 'image', alias: spec.image },
    config,
  };
}

/**
 * The `ip` commands that give the host a macvlan sibling in bridge mode on the parent (macvlan
 * children cannot talk to their parent's own address), with the configured address. Empty when
 * the sibling is off.
 */
export function renderHostMacvlan(cfg: ComputeConfig): string[][] {
  const h = cfg.host_macvlan;
  if (!h.enabled) return [];
  const cmds = [['ip', 'link', 'add', h.interface, 'link', cfg.parent, 'type', 'macvlan', 'mode', 'bridge']];
  if (h.address !== undefined) cmds.push(['ip', 'address', 'replace', h.address, 'dev', h.interface]);
  cmds.push(['ip', 'link', 'set', h.interface, 'up']);
  return cmds;
}
