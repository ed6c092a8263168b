/**
 * The storage role's settings (`roles.storage` in the agent config): `parseStorageConfig` checks
 * the shape, applies the defaults and names the offending key in every error
 * (`roles.storage.backend: must be one of auto, lio, tgt`).
 *
 * ```yaml
 * roles:
 *   storage:
 *     backend: auto                  # auto: LIO when the kernel has it, else tgt; or lio, tgt
 *     path: /var/lib/mammatus/volumes  # where file-backed volumes live (a record's file elsewhere is refused)
 *     lvm:
 *       thin_pool: vg0/pool0         # VG/POOL: new volumes are thin LVs the agent makes there; none by default
 *       volume_groups: []            # VGs whose existing LVs a record may name (made by hand); none by default
 *     portal: 10.88.0.31             # the LAN IPv4 the targets listen on; default: this node's Serf address
 *     registry:
 *       nats: []                     # the volume registry's NATS servers; empty: serve nothing
 * ```
 */
import type { JSONSchemaType } from 'ajv';
import type { Member } from '../../core/contracts.js';
import { COMMON_FORMATS, sectionChecker, withDefaults, type Format } from '../../core/validation.js';

/** The two backends, and `auto` (LIO when the kernel has it, else tgt). */
export const STORAGE_BACKENDS = ['auto', 'lio', 'tgt'] as const;
/** One of {@link STORAGE_BACKENDS}. */
export type StorageBackendSetting = (typeof STORAGE_BACKENDS)[number];

/** The default directory of backing files. */
export const DEFAULT_VOLUME_PATH = '/var/lib/mammatus/volumes';

/** The resolved storage settings: every default applied, every value checked. */
export interface StorageConfig {
  readonly backend: StorageBackendSetting;
  /** The directory file-backed volumes must lie in; its filesystem's free space is the node's capacity. */
  readonly path: string;
  /**
   * `thin_pool` (`VG/POOL`): volumes recorded with that VG and pool are thin LVs the agent creates,
   * grows and removes, and the pool's free space is the node's capacity. `volume_groups`: VGs whose
   * LVs a record may name, exported only (never created or removed by the agent).
   */
  readonly lvm: { readonly thin_pool?: string; readonly volume_groups: readonly string[] };
  /** The portal's IPv4; absent: the node's Serf address. */
  readonly portal?: string;
  /** The volume registry's NATS servers; empty: the role follows no registry and serves nothing. */
  readonly registry: { readonly nats: readonly string[] };
}

/** What an operator writes: every key optional. */
interface StorageSettings {
  readonly backend?: StorageBackendSetting;
  readonly path?: string;
  readonly lvm?: { readonly thin_pool?: string; readonly volume_groups?: readonly string[] };
  readonly portal?: string;
  readonly registry?: { readonly nats?: readonly string[] };
}

const AT = 'roles.storage';

const DEFAULTS: StorageConfig = {
  backend: 'auto',
  path: DEFAULT_VOLUME_PATH,
  lvm: { volume_groups: [] },
  registry: { nats: [] },
};

/** What LVM allows in a VG or LV name (and what core/volume-record.ts allows in a record's `vg`, `pool`, `lv`). */
const LVM_NAME = /^(?!\.{1,2}$)[A-Za-z0-9+_.-]{1,127}$/;

const FORMATS: Readonly<Record<string, Format>> = {
  ipv4: COMMON_FORMATS.ipv4,
  path: { check: COMMON_FORMATS.path.check, why: 'must be an absolute path without spaces, "." or ".." parts' },
  'nats-url': COMMON_FORMATS['nats-url'],
  vg: {
    check: (v) => LVM_NAME.test(v),
    why: 'must be an LVM volume group name (A-Z a-z 0-9 + _ . -)',
  },
  'thin-pool': {
    check: (v) => v.split('/').length === 2 && v.split('/').every((part) => LVM_NAME.test(part)),
    why: 'must be VG/POOL, an LVM volume group and its thin pool (A-Z a-z 0-9 + _ . -)',
  },
};

const opt = { nullable: true } as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;

const SCHEMA: JSONSchemaType<StorageSettings> = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    backend: { type: 'string', enum: STORAGE_BACKENDS, ...opt },
    path: { type: 'string', format: 'path', ...opt },
    lvm: {
      ...obj,
      properties: {
        thin_pool: { type: 'string', format: 'thin-pool', ...opt },
        volume_groups: { type: 'array', items: { type: 'string', format: 'vg' }, ...opt },
      },
    },
    portal: { type: 'string', format: 'ipv4', ...opt },
    registry: { ...obj, properties: { nats: { type: 'array', items: { type: 'string', format: 'nats-url' }, ...opt } } },
  },
};

const checkSettings = sectionChecker<StorageSettings>({
  name: 'roles.storage',
  at: AT,
  schema: SCHEMA,
  formats: FORMATS,
  hints: {
    'registry.nats': 'must be a list of nats:// URLs',
    'lvm.volume_groups': 'must be a list of LVM volume group names',
    'lvm.thin_pool': 'must be VG/POOL, an LVM volume group and its thin pool',
  },
});

/** Checks `roles.storage` as written and returns it with every default applied. */
export function parseStorageConfig(raw: unknown): StorageConfig {
  return withDefaults<StorageConfig>(DEFAULTS, checkSettings(raw ?? {}));
}

/** The configured thin pool as VG and pool names, or undefined. */
export function thinPoolOf(cfg: StorageConfig): { readonly vg: string; readonly pool: string } | undefined {
  const [vg, pool] = cfg.lvm.thin_pool?.split('/') ?? [];
  return vg && pool ? { vg, pool } : undefined;
}

/** Where the resolved settings are rendered. */
export const STORAGE_SETTINGS_PATH = '/etc/mammatus/storage/settings';

/** True when `roles.storage.registry.nats` lists a server: without one the role serves nothing. */
export function storageConfigured(cfg: StorageConfig): boolean {
  return cfg.registry.nats.length > 0;
}

/** The portal: `roles.storage.portal`, else this node's Serf address when it is IPv4. */
export function storagePortal(cfg: StorageConfig, node: string, members: readonly Member[]): string | undefined {
  if (cfg.portal) return cfg.portal;
  const addr = members.find((m) => m.name === node)?.addr;
  return addr && /^\d+\.\d+\.\d+\.\d+$/.test(addr) ? addr : undefined;
}

/** Why a storage node without a registry serves nothing (its status line says it). */
export const NO_REGISTRY = 'no registry: roles.storage.registry.nats is not set';

/** Renders the resolved settings (no secret in them). Pure. */
export function renderStorageSettings(cfg: StorageConfig, node: string, members: readonly Member[]): string {
  return [
    '# managed by mammatus role=storage: the settings the storage role serves volumes with',
    `backend ${cfg.backend}`,
    `path ${cfg.path}`,
    `portal ${storagePortal(cfg, node, members) ?? 'unknown'}`,
    ...(cfg.lvm.thin_pool ? [`thin_pool ${cfg.lvm.thin_pool}`] : []),
    ...cfg.lvm.volume_groups.map((vg) => `volume_group ${vg}`),
    ...[...cfg.registry.nats].sort().map((s) => `registry ${s}`),
    '',
  ].join('\n');
}
