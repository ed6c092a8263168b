/**
 * The shapes of the LXD REST API (`/1.0`) that the compute role uses, as LXD 5.0 sends them. Only
 * the fields the role reads are typed; LXD sends more, and the types say so with an index
 * signature where an object is passed back to LXD unchanged (PUT of a profile or instance).
 */

/** The envelope of every LXD response. */
export type LxdEnvelope = LxdSyncEnvelope | LxdAsyncEnvelope | LxdErrorEnvelope;

/** A synchronous answer: `metadata` is the result. */
export interface LxdSyncEnvelope {
  readonly type: 'sync';
  readonly status: string;
  readonly status_code: number;
  readonly metadata: unknown;
}

/** A background operation was created: `operation` is its URL, `metadata` the operation itself. */
export interface LxdAsyncEnvelope {
  readonly type: 'async';
  readonly status: string;
  readonly status_code: number;
  readonly operation: string;
  readonly metadata: LxdOperation;
}

/** A failed request: `error_code` is the HTTP status, `error` LXD's message. */
export interface LxdErrorEnvelope {
  readonly type: 'error';
  readonly error: string;
  readonly error_code: number;
  readonly metadata: unknown;
}

/** Operation status codes (LXD `api.StatusCode`). */
export const OperationStatus = {
  Created: 100,
  Started: 101,
  Stopped: 102,
  Running: 103,
  Cancelling: 104,
  Pending: 105,
  Success: 200,
  Failure: 400,
  Cancelled: 401,
} as const;

/** A background operation (`/1.0/operations/<id>`). */
export interface LxdOperation {
  readonly id: string;
  readonly class: 'task' | 'websocket' | 'token' | (string & {});
  readonly description: string;
  readonly status: string;
  readonly status_code: number;
  /** Affected objects, e.g. `{ instances: ['/1.0/instances/c1'] }`. */
  readonly resources: Readonly<Record<string, readonly string[]>> | null;
  /** Operation-specific result, e.g. `{ fingerprint, size }` after an image upload. */
  readonly metadata: Readonly<Record<string, unknown>> | null;
  readonly may_cancel: boolean;
  /** The failure message when `status_code` is 400 (Failure). */
  readonly err: string;
  readonly created_at?: string;
  readonly updated_at?: string;
}

/** `GET /1.0`: the server, its API extensions and environment. */
export interface LxdServerInfo {
  readonly api_extensions: readonly string[];
  readonly api_status: string;
  readonly api_version: string;
  readonly auth: 'trusted' | 'untrusted' | (string & {});
  readonly config: Readonly<Record<string, unknown>>;
  readonly environment?: {
    readonly server_version?: string;
    readonly kernel_version?: string;
    readonly driver?: string;
    readonly driver_version?: string;
    readonly storage?: string;
    readonly architectures?: readonly string[];
    readonly [key: string]: unknown;
  };
}

/** A device entry (`devices.<name>`): `type` plus type-specific keys, all strings. */
export type LxdDevice = Readonly<Record<string, string>>;
/** A config map (`config`): LXD keys to string values. */
export type LxdConfig = Readonly<Record<string, string>>;

/** A storage pool (`/1.0/storage-pools/<name>`). */
export interface LxdStoragePool {
  readonly name: string;
  readonly driver: string;
  readonly description?: string;
  readonly config: LxdConfig;
  readonly status?: string;
  readonly used_by?: readonly string[] | null;
}

/** What `POST /1.0/storage-pools` takes. */
export interface LxdStoragePoolCreate {
  readonly name: string;
  readonly driver: string;
  readonly description?: string;
  readonly config?: LxdConfig;
}

/** The writable part of a profile (PUT body). */
export interface LxdProfilePut {
  readonly description?: string;
  readonly config: LxdConfig;
  readonly devices: Readonly<Record<string, LxdDevice>>;
}

/** A profile (`/1.0/profiles/<name>`). */
export interface LxdProfile extends LxdProfilePut {
  readonly name: string;
  readonly used_by?: readonly string[] | null;
}

/** An image alias (`/1.0/images/aliases/<name>`). */
export interface LxdImageAlias {
  readonly name: string;
  readonly target: string;
  readonly description?: string;
  readonly type?: string;
}

/** An image (`/1.0/images/<fingerprint>`). */
export interface LxdImage {
  readonly fingerprint: string;
  readonly filename?: string;
  readonly size: number;
  readonly type?: 'container' | 'virtual-machine' | (string & {});
  readonly architecture: string;
  readonly public: boolean;
  readonly aliases: readonly { readonly name: string; readonly description?: string }[] | null;
  readonly properties: Readonly<Record<string, string>> | null;
  readonly created_at?: string;
  readonly uploaded_at?: string;
}

/** Where a new instance comes from. */
export type LxdInstanceSource =
  { readonly type: 'image'; readonly alias: string } | { readonly type: 'image'; readonly fingerprint: string } | { readonly type: 'none' };

/**
 * What `POST /1.0/instances` takes. `config` carries `cloud-init.user-data`/`vendor-data`, free-form
 * `user.*` keys, and `volatile.eth0.hwaddr` to fix the MAC before the first boot. LXD 5.0 ignores
 * `start`, so the client never sends it: start with {@link LxdClient.startInstance}.
 */
export interface LxdInstanceCreate {
  readonly name: string;
  readonly type?: 'container' | 'virtual-machine';
  readonly profiles?: readonly string[];
  readonly source: LxdInstanceSource;
  readonly config?: LxdConfig;
  readonly devices?: Readonly<Record<string, LxdDevice>>;
  readonly description?: string;
  readonly ephemeral?: boolean;
}

/** The writable part of an instance (PUT body). */
export interface LxdInstancePut {
  readonly architecture?: string;
  readonly config: LxdConfig;
  readonly devices: Readonly<Record<string, LxdDevice>>;
  readonly ephemeral?: boolean;
  readonly profiles: readonly string[];
  readonly description?: string;
}

/** An instance (`/1.0/instances/<name>`). */
export interface LxdInstance extends LxdInstancePut {
  readonly name: string;
  readonly type: string;
  /** `Running`, `Stopped`, `Frozen`, `Error`, ... */
  readonly status: string;
  readonly status_code: number;
  readonly stateful?: boolean;
  readonly location?: string;
  readonly created_at?: string;
  readonly last_used_at?: string;
  /** Config with the profiles applied (includes `volatile.*` keys). */
  readonly expanded_config?: LxdConfig;
  readonly expanded_devices?: Readonly<Record<string, LxdDevice>>;
  /** Present with `?recursion=2`. */
  readonly state?: LxdInstanceState | null;
}

/** One address of an instance NIC. */
export interface LxdAddress {
  readonly family: 'inet' | 'inet6' | (string & {});
  readonly address: string;
  readonly netmask: string;
  readonly scope: 'global' | 'link' | 'local' | (string & {});
}

/** One NIC in an instance's state. */
export interface LxdNetworkState {
  readonly addresses: readonly LxdAddress[];
  readonly hwaddr: string;
  readonly host_name: string;
  readonly mtu: number;
  readonly state: 'up' | 'down' | (string & {});
  readonly type: string;
  readonly counters?: Readonly<Record<string, number>>;
}

/** `GET /1.0/instances/<name>/state`. `network` is null while the instance is stopped. */
export interface LxdInstanceState {
  readonly status: string;
  readonly status_code: number;
  readonly pid: number;
  readonly processes: number;
  readonly network: Readonly<Record<string, LxdNetworkState>> | null;
  readonly [key: string]: unknown;
}

/** `PUT /1.0/instances/<name>/state`. */
export interface LxdStatePut {
  readonly action: 'start' | 'stop' | 'restart' | 'freeze' | 'unfreeze';
  /** Seconds LXD waits for a clean stop before failing (or forcing, with `force`). */
  readonly timeout?: number;
  readonly force?: boolean;
  readonly stateful?: boolean;
}

/** A value together with the ETag LXD sent for it (pass it back to update safely). */
export interface Versioned<T> {
  readonly value: T;
  /** The `ETag` header; empty when LXD sent none. */
  readonly etag: string;
}
