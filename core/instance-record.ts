/**
 * An instance record of the registry: its shape, the checks every write passes, and the pure helpers
 * that turn CLI input into a record. Records are validated here, at write time, so the metadata
 * service never has to cope with a malformed one (and skips, with a warning, any that a foreign
 * writer put in the bucket).
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostPlanProblem, type HostPlan } from './host-record.js';

/** What the registry keeps per instance. Times are ISO 8601 (UTC); user-data is base64. */
export interface InstanceRecord {
  /** `i-` and 17 hex digits, as EC2 writes them; cloud-init treats a change as a new instance. */
  readonly id: string;
  /** A DNS label: becomes the hostname and `<name>.mammatus`. Unique. */
  readonly name: string;
  /** The node it runs on (a compute node's Serf name), or absent for a PXE-booted host. */
  readonly node?: string;
  /** MAC addresses, lower case with colons; the first is the primary NIC. Unique across instances. */
  readonly macs: readonly string[];
  /** IP addresses (v4 or v6); the first is the primary. Unique across instances. */
  readonly ips: readonly string[];
  /** OpenSSH public keys (one line each). */
  readonly ssh_keys: readonly string[];
  /** The user-data bytes, base64-encoded (it may be gzip or MIME, so it is kept as bytes). */
  readonly user_data?: string;
  /** Per-instance switches for the vendor-data parts; absent = the cluster's setting. */
  readonly vendor_data: Readonly<Partial<Record<VendorPart, boolean>>>;
  readonly tags: Readonly<Record<string, string>>;
  readonly state: InstanceState;
  /** What the instance's compute node last saw it do (written by that node; absent for PXE hosts). */
  readonly observed?: InstanceObserved;
  /** A planned bare-metal host (`mammatus host register`): what it becomes and how far it got. */
  readonly host?: HostPlan;
  readonly created_at: string;
  readonly updated_at: string;
}

/**
 * The live side of a record, as its compute node saw it: `state` is what was asked for, this is
 * what is. `status` is LXD's status in lower case (`running`, `stopped`, `frozen`, …), `absent`
 * (not created yet) or `error` (the node's last action on it failed, with `error` saying why).
 */
export interface InstanceObserved {
  readonly status: string;
  readonly error?: string;
  /** When the node wrote this (ISO 8601). */
  readonly at: string;
}

/** The longest `observed.error` kept: enough for LXD's reason, small enough for a table cell. */
export const MAX_OBSERVED_ERROR = 300;

/** The vendor-data parts an instance can switch off for itself. */
export const VENDOR_PARTS = ['consul', 'vault', 'telegraf'] as const;
/** One vendor-data part. */
export type VendorPart = (typeof VENDOR_PARTS)[number];

/**
 * Life-cycle states. `running`/`stopped` are what the instance's compute node brings it to;
 * `deleting` asks that node to destroy the container, after which it removes the record.
 */
export const INSTANCE_STATES = ['registered', 'running', 'stopped', 'deleting'] as const;
/** One instance state. */
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** Largest user-data accepted, in bytes before base64 (AWS allows 16 KiB; cloud-init has no limit). */
export const MAX_USER_DATA_BYTES = 256 * 1024;
/** Most SSH keys, MACs and IPs per instance: enough for any real host, small enough for one KV value. */
const MAX_LIST = 32;

/** A record (or CLI input) that breaks a rule; `field` names the offending field. */
export class InvalidInstanceError extends Error {
  override readonly name = 'InvalidInstanceError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

const ID = /^i-[0-9a-f]{17}$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const TAG_KEY = /^[A-Za-z0-9_.:=+@-]{1,128}$/;
// Key type, base64 blob, optional comment; the types OpenSSH's sshd accepts in authorized_keys.
const SSH_KEY =
  /^(?:ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\r\n]*)?$/;

/** A new random instance id. */
export function newInstanceId(): string {
  return `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

// The ways MACs are commonly written: colons, dashes, bare, or Cisco's dotted triples.
const MAC_FORMS = [
  /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i,
  /^[0-9a-f]{2}(?:-[0-9a-f]{2}){5}$/i,
  /^[0-9a-f]{12}$/i,
  /^[0-9a-f]{4}(?:\.[0-9a-f]{4}){2}$/i,
];

/** `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` or `aa:bb:…` to `aa:bb:cc:dd:ee:ff`; throws when it is not a MAC. */
export function normalizeMac(text: string): string {
  if (!MAC_FORMS.some((re) => re.test(text))) throw new InvalidInstanceError('mac', `not a MAC address: ${JSON.stringify(text)}`);
  const hex = text.toLowerCase().replace(/[^0-9a-f]/g, '');
  const mac = hex.match(/../g)!.join(':');
  // A multicast MAC can never be a NIC's own address (bit 0 of the first octet).
  if (parseInt(hex.slice(0, 2), 16) & 1) throw new InvalidInstanceError('mac', `${mac} is a multicast address`);
  return mac;
}

/** What a caller supplies to register an instance; everything else is filled in. */
export interface InstanceInput {
  readonly name: string;
  readonly macs: readonly string[];
  readonly ips?: readonly string[];
  readonly ssh_keys?: readonly string[];
  readonly user_data?: Uint8Array;
  readonly node?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly vendor_data?: Readonly<Partial<Record<VendorPart, boolean>>>;
  readonly host?: HostPlan;
}

/** Builds a valid record from input (normalising MACs); throws `InvalidInstanceError`. */
export function buildRecord(input: InstanceInput, now: Date, id: string = newInstanceId()): InstanceRecord {
  if (input.user_data && input.user_data.byteLength > MAX_USER_DATA_BYTES) {
    throw new InvalidInstanceError('user_data', `${input.user_data.byteLength} bytes is more than the limit of ${MAX_USER_DATA_BYTES}`);
  }
  const at = now.toISOString();
  const record: InstanceRecord = {
    id,
    name: input.name,
    ...(input.node ? { node: input.node } : {}),
    macs: input.macs.map(normalizeMac),
    ips: [...(input.ips ?? [])],
    ssh_keys: (input.ssh_keys ?? []).map((k) => k.trim()),
    ...(input.user_data && input.user_data.byteLength > 0 ? { user_data: Buffer.from(input.user_data).toString('base64') } : {}),
    vendor_data: { ...(input.vendor_data ?? {}) },
    tags: { ...(input.tags ?? {}) },
    ...(input.host ? { host: input.host } : {}),
    state: 'registered',
    created_at: at,
    updated_at: at,
  };
  return validateRecord(record);
}

/** Checks a record from any source (a write, or a value read from the bucket); returns it typed. */
export function validateRecord(value: unknown): InstanceRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidInstanceError('record', 'must be an object');
  const r = value as Record<string, unknown>;
  const known = new Set([
    'id',
    'name',
    'node',
    'macs',
    'ips',
    'ssh_keys',
    'user_data',
    'vendor_data',
    'tags',
    'state',
    'observed',
    'host',
    'created_at',
    'updated_at',
  ]);
  for (const key of Object.keys(r)) if (!known.has(key)) throw new InvalidInstanceError(key, 'unknown field');
  check(typeof r.id === 'string' && ID.test(r.id), 'id', 'must be i- and 17 hex digits');
  check(
    typeof r.name === 'string' && LABEL.test(r.name),
    'name',
    'must be a DNS label: a-z, 0-9 and -, at most 63 characters, not starting or ending with -',
  );
  if (r.node !== undefined) check(typeof r.node === 'string' && r.node.length > 0 && r.node.length <= 128, 'node', 'must be a node name');
  const macs = list(r.macs, 'macs');
  check(macs.length > 0, 'macs', 'at least one MAC address is required');
  for (const mac of macs) check(typeof mac === 'string' && MAC.test(mac), 'macs', `not a normalised MAC address: ${JSON.stringify(mac)}`);
  unique(macs, 'macs');
  const ips = list(r.ips, 'ips');
  for (const ip of ips) check(typeof ip === 'string' && isIP(ip) !== 0, 'ips', `not an IP address: ${JSON.stringify(ip)}`);
  unique(ips, 'ips');
  for (const key of list(r.ssh_keys, 'ssh_keys'))
    check(
      typeof key === 'string' && SSH_KEY.test(key),
      'ssh_keys',
      `not an OpenSSH public key line: ${JSON.stringify(String(key).slice(0, 40))}`,
    );
  if (r.user_data !== undefined) {
    check(typeof r.user_data === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(r.user_data), 'user_data', 'must be base64');
    const size = Buffer.byteLength(r.user_data, 'base64');
    check(size <= MAX_USER_DATA_BYTES, 'user_data', `${size} bytes is more than the limit of ${MAX_USER_DATA_BYTES}`);
  }
  checkMap(
    r.vendor_data,
    'vendor_data',
    (k, v) => (VENDOR_PARTS as readonly string[]).includes(k) && typeof v === 'boolean',
    `keys ${VENDOR_PARTS.join(', ')} with true or false`,
  );
  checkMap(
    r.tags,
    'tags',
    (k, v) => TAG_KEY.test(k) && typeof v === 'string' && v.length <= 256,
    'keys of letters, digits and _.:=+@- (at most 128), string values (at most 256)',
  );
  check((INSTANCE_STATES as readonly unknown[]).includes(r.state), 'state', `must be one of ${INSTANCE_STATES.join(', ')}`);
  if (r.observed !== undefined) checkObserved(r.observed);
  if (r.host !== undefined) {
    const problem = hostPlanProblem(r.host);
    if (problem) throw new InvalidInstanceError(problem.slice(0, problem.indexOf(':')), problem.slice(problem.indexOf(':') + 2));
    check(r.node === undefined, 'node', 'a planned host runs on no node: it becomes one');
  }
  for (const f of ['created_at', 'updated_at'] as const)
    check(typeof r[f] === 'string' && !Number.isNaN(Date.parse(r[f])), f, 'must be an ISO 8601 time');
  return r as unknown as InstanceRecord;
}

function checkObserved(value: unknown): void {
  check(typeof value === 'object' && value !== null && !Array.isArray(value), 'observed', 'must be a mapping');
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) check(['status', 'error', 'at'].includes(key), `observed.${key}`, 'unknown field');
  check(typeof o.status === 'string' && /^[a-z][a-z-]{0,23}$/.test(o.status), 'observed.status', 'must be a lower-case word');
  if (o.error !== undefined)
    check(
      typeof o.error === 'string' && o.error.length <= MAX_OBSERVED_ERROR,
      'observed.error',
      `must be a string of at most ${MAX_OBSERVED_ERROR} characters`,
    );
  check(typeof o.at === 'string' && !Number.isNaN(Date.parse(o.at)), 'observed.at', 'must be an ISO 8601 time');
}

function check(ok: boolean, field: string, reason: string): asserts ok {
  if (!ok) throw new InvalidInstanceError(field, reason);
}

function list(value: unknown, field: string): unknown[] {
  check(Array.isArray(value), field, 'must be a list');
  check(value.length <= MAX_LIST, field, `at most ${MAX_LIST} entries`);
  return value;
}

function unique(values: readonly unknown[], field: string): void {
  check(new Set(values).size === values.length, field, 'entries must be unique');
}

function checkMap(value: unknown, field: string, ok: (k: string, v: unknown) => boolean, rule: string): void {
  check(typeof value === 'object' && value !== null && !Array.isArray(value), field, 'must be a mapping');
  const entries = Object.entries(value);
  check(entries.length <= 64, field, 'at most 64 entries');
  for (const [k, v] of entries) check(ok(k, v), `${field}.${k}`, rule);
}

/** The user-data bytes of a record (empty when it has none). */
export function userDataOf(record: InstanceRecord): Buffer {
  return record.user_data ? Buffer.from(record.user_data, 'base64') : Buffer.alloc(0);
}
