/**
 * A planned bare-metal host (issue 19): a machine that PXE-boots from the gateway and becomes a
 * node. It is an instance record (core/instance-record.ts) with a `host` block, so its MAC and
 * name are unique against every instance, the gateway gives it a DHCP reservation and a DNS name,
 * and the metadata service finds it by MAC like any instance. The block says what the machine is
 * to become (roles, firmware, install disk) and how far it got (`progress`). Its one-time join
 * secret is NOT here — gateways and compute nodes read the instance bucket — but in the
 * controllers' own `mammatus-joins` bucket. Also the subjects and messages of the hosts' controller
 * API, so every side compiles against one contract. Pure.
 */
import { ROLE_NAMES, type RoleName } from './members.js';

/**
 * The firmware a host boots with: it decides the boot file dnsmasq hands out (DHCP option 93).
 * `rpi` is a Raspberry Pi 4 or 5 booting from the network with the bootloader in its EEPROM: it
 * claims option 93 = 0 like a BIOS PC but runs no iPXE; the gateway answers it by MAC with the
 * option 43 "Raspberry Pi Boot" and TFTP (docs/baremetal.md, "Raspberry Pi and ARM boards").
 */
export const HOST_ARCHES = ['bios', 'efi64', 'arm64', 'rpi'] as const;
/** One firmware kind. */
export type HostArch = (typeof HOST_ARCHES)[number];

/**
 * The steps of a host's way to a node, in order. Each is recorded with its time by whoever saw it:
 * `registered` the CLI, `booted` (it fetched its iPXE script) and `seeded` (its user-data) the
 * metadata service, `joined` (its join secret was exchanged for credentials) the controllers,
 * `installed` (written to its disk) the host itself. `ok` is not recorded: it is read from Serf
 * (the member is alive, trusted and its roles are ok).
 */
export const HOST_STEPS = ['registered', 'booted', 'seeded', 'joined', 'installed'] as const;
/** One recorded step. */
export type HostStep = (typeof HOST_STEPS)[number];

/** The `host` block of an instance record. */
export interface HostPlan {
  /** The roles it joins with (its Serf tag `role`, admitted by the controllers at the join). */
  readonly roles: readonly RoleName[];
  readonly arch: HostArch;
  /** The disk the live system installs itself to (`/dev/sda`, `/dev/vda`, `/dev/nvme0n1`); absent: stays diskless. */
  readonly install_disk?: string;
  /** When its join secret stops being accepted (ISO 8601). */
  readonly join_expires_at: string;
  /** Step → when it happened (ISO 8601). */
  readonly progress: Readonly<Partial<Record<HostStep, string>>>;
}

/** The disks an install may name: a whole block device under /dev, no partition, no path tricks. */
const INSTALL_DISK = /^\/dev\/(?:[sv]d[a-z]{1,2}|xvd[a-z]{1,2}|nvme\d{1,2}n\d{1,2}|mmcblk\d{1,2}|disk\/by-id\/[A-Za-z0-9._:-]{1,120})$/;

/** True when `disk` is a whole disk `--install-disk` may name. */
export function isInstallDisk(disk: string): boolean {
  return INSTALL_DISK.test(disk);
}

/** Why a `host` block is malformed (`field: reason`), or undefined when it is fine. */
export function hostPlanProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'host: must be a mapping';
  const h = value as Record<string, unknown>;
  for (const key of Object.keys(h))
    if (!['roles', 'arch', 'install_disk', 'join_expires_at', 'progress'].includes(key)) return `host.${key}: unknown field`;
  if (!Array.isArray(h.roles) || h.roles.length === 0 || !h.roles.every((r) => (ROLE_NAMES as readonly unknown[]).includes(r)))
    return `host.roles: must be one or more of ${ROLE_NAMES.join(', ')}`;
  if (new Set(h.roles).size !== h.roles.length) return 'host.roles: entries must be unique';
  if (!(HOST_ARCHES as readonly unknown[]).includes(h.arch)) return `host.arch: must be one of ${HOST_ARCHES.join(', ')}`;
  if (h.install_disk !== undefined && !(typeof h.install_disk === 'string' && isInstallDisk(h.install_disk)))
    return 'host.install_disk: must be a whole disk such as /dev/sda, /dev/vda, /dev/nvme0n1 or /dev/disk/by-id/…';
  if (!isTime(h.join_expires_at)) return 'host.join_expires_at: must be an ISO 8601 time';
  if (typeof h.progress !== 'object' || h.progress === null || Array.isArray(h.progress)) return 'host.progress: must be a mapping';
  for (const [step, at] of Object.entries(h.progress)) {
    if (!(HOST_STEPS as readonly string[]).includes(step)) return `host.progress.${step}: unknown step`;
    if (!isTime(at)) return `host.progress.${step}: must be an ISO 8601 time`;
  }
  return undefined;
}

const isTime = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** The last recorded step of a host and when, or undefined before `registered` was written. */
export function lastStep(plan: HostPlan): { step: HostStep; at: string } | undefined {
  for (const step of [...HOST_STEPS].reverse()) {
    const at = plan.progress[step];
    if (at) return { step, at };
  }
  return undefined;
}

/** A join secret: 32 random bytes, base64url (43 characters). */
export const JOIN_SECRET = /^[A-Za-z0-9_-]{43}$/;

/** The controllers' API for hosts: a host's join goes here (through the metadata service). */
export const HOST_JOIN_SUBJECT = 'mammatus.hosts.join';
/** Steps the metadata service saw (`booted`, `seeded`) and the host reports (`installed`). */
export const HOST_PROGRESS_SUBJECT = 'mammatus.hosts.progress';

/** What the metadata service sends for a host that asks to join (`POST /mammatus/join`). */
export interface HostJoinRequest {
  /** The instance id of the host's record, as the metadata service resolved the caller. */
  readonly host_id: string;
  /** The MAC the gateway's proxy vouched for. */
  readonly mac: string;
  readonly secret: string;
  /** The NATS user key the host made for itself (`U…`); its seed never leaves the host. */
  readonly nkey: string;
  /** The host's X25519 public key (base64 of the raw 32 bytes): the answer is sealed to it. */
  readonly box: string;
}

/** What a host gets for its secret: its credentials (without the seed it holds), sealed. */
export interface HostJoinAnswer {
  readonly ok: boolean;
  /** When not ok: why, in a sentence the host logs. */
  readonly error?: string;
  /** When ok: the sealed JSON of {@link HostJoinGrant} (see src/hosts/sealed.ts). */
  readonly sealed?: string;
}

/** The plain content of a sealed join answer. */
export interface HostJoinGrant {
  readonly node: string;
  readonly roles: readonly RoleName[];
  /** The cluster authority's public key (`O…`): the node's `authority.pub`. */
  readonly authority: string;
  /** The node's Serf `trust` tag. */
  readonly tag: string;
  readonly admitted_at: string;
  /** Serf's gossip encryption key (base64), or absent when the cluster's gossip is not encrypted. */
  readonly gossip_key?: string;
  /** Serf addresses of the controllers, for `retry_join`. */
  readonly retry_join: readonly string[];
  /** SHA-256 of the cluster CA's root (issue 20), when the cluster has a CA: pinned in the host's credentials. */
  readonly ca_fingerprint?: string;
  /** The root itself (PEM), with `ca_fingerprint`: the host checks it against the fingerprint and writes its `ca.crt` from it. */
  readonly ca_root?: string;
}

/** A step report for {@link HOST_PROGRESS_SUBJECT}. */
export interface HostProgressRequest {
  readonly host_id: string;
  readonly step: Exclude<HostStep, 'registered' | 'joined'>;
}
