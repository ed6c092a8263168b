/**
 * A client for the LXD REST API over its unix socket, with what the compute role needs: server
 * info and `api_extensions` checks, storage pools, profiles, images (upload with an alias) and
 * instances (create, state changes, delete, state with addresses). Requests that LXD runs in the
 * background (`type: async`) are waited for here, with a timeout, so every method resolves when
 * the change is done or rejects with a typed error (`errors.ts`). GET of one object returns
 * it with its ETag ({@link Versioned}); updates take the ETag back and send it as `If-Match`, so a
 * concurrent change surfaces as {@link LxdPreconditionFailedError} instead of being overwritten.
 */
import { LxdConflictError, LxdProtocolError } from './errors.js';
import { LxdConnection, type UpdateOptions, type WaitOptions } from './connection.js';
import type {
  LxdImage,
  LxdImageAlias,
  LxdInstance,
  LxdInstanceCreate,
  LxdInstancePut,
  LxdInstanceState,
  LxdOperation,
  LxdProfile,
  LxdProfilePut,
  LxdStatePut,
  LxdStoragePool,
  LxdStoragePoolCreate,
  Versioned,
} from './types.js';
import { imageUploadBody, type ImageSource } from './upload.js';

export type { ImageSource } from './upload.js';
export * from './connection.js';
export type * from './types.js';
// Re-exported so callers write `catch (e) { if (e instanceof LxdPreconditionFailedError) … }` from here.
export * from './errors.js';

/** Options of {@link LxdClient.importImage}. */
export interface ImportImageOptions extends WaitOptions {
  /** Alias to point at the imported image. */
  readonly alias?: string;
  /** Re-point `alias` when it already names another image (otherwise that is a conflict). */
  readonly replaceAlias?: boolean;
  readonly public?: boolean;
  /** Image properties (`X-LXD-properties`), e.g. `{ os: 'debian' }`. */
  readonly properties?: Readonly<Record<string, string>>;
}

/** Options of {@link LxdClient.stopInstance}. */
export interface StopOptions extends WaitOptions {
  /** Kill instead of a clean shutdown. */
  readonly force?: boolean;
  /** Seconds LXD waits for a clean shutdown; default 30. */
  readonly timeout?: number;
}

/**
 * The LXD client the compute role uses: {@link LxdConnection} plus storage pools, profiles,
 * images and instances. Call `close()` when done.
 */
export class LxdClient extends LxdConnection {
  /** Every storage pool. */
  async listStoragePools(): Promise<LxdStoragePool[]> {
    return (await this.call<LxdStoragePool[]>('GET', '/1.0/storage-pools?recursion=1')).value;
  }

  /** One storage pool; {@link LxdNotFoundError} when absent. */
  getStoragePool(name: string): Promise<Versioned<LxdStoragePool>> {
    return this.call<LxdStoragePool>('GET', `/1.0/storage-pools/${seg(name)}`);
  }

  /** Creates a storage pool (`dir` needs no config); {@link LxdConflictError} when it exists. */
  async createStoragePool(pool: LxdStoragePoolCreate): Promise<void> {
    await this.call('POST', '/1.0/storage-pools', { json: pool });
  }

  /** Every profile, in full. */
  async listProfiles(): Promise<LxdProfile[]> {
    return (await this.call<LxdProfile[]>('GET', '/1.0/profiles?recursion=1')).value;
  }

  /** One profile with its ETag; {@link LxdNotFoundError} when absent. */
  getProfile(name: string): Promise<Versioned<LxdProfile>> {
    return this.call<LxdProfile>('GET', `/1.0/profiles/${seg(name)}`);
  }

  /** Creates a profile; {@link LxdConflictError} when it exists. */
  async createProfile(profile: LxdProfilePut & { readonly name: string }): Promise<void> {
    await this.call('POST', '/1.0/profiles', { json: profile });
  }

  /** Replaces a profile's config and devices; with `etag`, only if unchanged since it was read. */
  async updateProfile(name: string, put: LxdProfilePut, options: UpdateOptions = {}): Promise<void> {
    await this.call('PUT', `/1.0/profiles/${seg(name)}`, { json: put }, options);
  }

  /** Merges keys into a profile (PATCH); with `etag`, only if unchanged since it was read. */
  async patchProfile(name: string, patch: Partial<LxdProfilePut>, options: UpdateOptions = {}): Promise<void> {
    await this.call('PATCH', `/1.0/profiles/${seg(name)}`, { json: patch }, options);
  }

  /** Deletes a profile (it must be unused). */
  async deleteProfile(name: string): Promise<void> {
    await this.call('DELETE', `/1.0/profiles/${seg(name)}`);
  }

  /** Every image, in full. */
  async listImages(): Promise<LxdImage[]> {
    return (await this.call<LxdImage[]>('GET', '/1.0/images?recursion=1')).value;
  }

  /** One image by fingerprint (a unique prefix works too). */
  getImage(fingerprint: string): Promise<Versioned<LxdImage>> {
    return this.call<LxdImage>('GET', `/1.0/images/${seg(fingerprint)}`);
  }

  /** Deletes an image (waits for the background deletion). */
  async deleteImage(fingerprint: string, options: WaitOptions = {}): Promise<void> {
    await this.call('DELETE', `/1.0/images/${seg(fingerprint)}`, undefined, options);
  }

  /** One image alias; {@link LxdNotFoundError} when absent. */
  getImageAlias(name: string): Promise<Versioned<LxdImageAlias>> {
    return this.call<LxdImageAlias>('GET', `/1.0/images/aliases/${seg(name)}`);
  }

  /** Points a new alias at an image; {@link LxdConflictError} when the alias exists. */
  async createImageAlias(name: string, target: string, description = ''): Promise<void> {
    await this.call('POST', '/1.0/images/aliases', { json: { name, target, description } });
  }

  /** Re-points an alias; with `etag`, only if unchanged since it was read. */
  async updateImageAlias(name: string, target: string, options: UpdateOptions = {}): Promise<void> {
    await this.call('PUT', `/1.0/images/aliases/${seg(name)}`, { json: { target, description: '' } }, options);
  }

  /** Deletes an alias (not the image). */
  async deleteImageAlias(name: string): Promise<void> {
    await this.call('DELETE', `/1.0/images/aliases/${seg(name)}`);
  }

  /**
   * Uploads an image from disk and, with `alias`, points the alias at it. Resolves with the
   * fingerprint. Importing an image LXD already has is a {@link LxdConflictError}.
   */
  async importImage(source: ImageSource, options: ImportImageOptions = {}): Promise<{ fingerprint: string; size: number }> {
    const { body, filename } = await imageUploadBody(source);
    const headers: Record<string, string> = { 'X-LXD-filename': filename, 'X-LXD-public': options.public ? 'true' : 'false' };
    if (options.properties && Object.keys(options.properties).length) {
      headers['X-LXD-properties'] = new URLSearchParams(Object.entries(options.properties)).toString();
    }
    const op = await this.waitFor(await this.request('POST', '/1.0/images', body, headers), 'POST /1.0/images', options);
    const fingerprint = op?.metadata?.fingerprint;
    if (typeof fingerprint !== 'string') throw new LxdProtocolError('POST /1.0/images: the operation names no fingerprint');
    const size = Number(op?.metadata?.size ?? 0);
    if (options.alias !== undefined) await this.pointAlias(options.alias, fingerprint, options.replaceAlias ?? false);
    return { fingerprint, size };
  }

  /** Every instance, in full (`recursion=1`); with `withState`, each with its state (`recursion=2`). */
  async listInstances(withState = false): Promise<LxdInstance[]> {
    return (await this.call<LxdInstance[]>('GET', `/1.0/instances?recursion=${withState ? 2 : 1}`)).value;
  }

  /** One instance with its ETag; {@link LxdNotFoundError} when absent. */
  getInstance(name: string): Promise<Versioned<LxdInstance>> {
    return this.call<LxdInstance>('GET', `/1.0/instances/${seg(name)}`);
  }

  /**
   * Creates an instance (stopped: LXD 5.0 ignores `start`, so start it with
   * {@link LxdClient.startInstance}). Resolves with the finished operation.
   */
  async createInstance(create: LxdInstanceCreate, options: WaitOptions = {}): Promise<LxdOperation> {
    const body = { type: 'container', ...create };
    return this.mustOperate('POST', '/1.0/instances', { json: body }, options);
  }

  /** Replaces an instance's config, devices and profiles; with `etag`, only if unchanged since read. */
  async updateInstance(name: string, put: LxdInstancePut, options: UpdateOptions = {}): Promise<void> {
    await this.call('PUT', `/1.0/instances/${seg(name)}`, { json: put }, options);
  }

  /** The instance's run state: status, PID, NICs with addresses (null while stopped). */
  async getInstanceState(name: string): Promise<LxdInstanceState> {
    return (await this.call<LxdInstanceState>('GET', `/1.0/instances/${seg(name)}/state`)).value;
  }

  /** Changes the run state (start/stop/restart/freeze/unfreeze) and waits for it. */
  setInstanceState(name: string, put: LxdStatePut, options: WaitOptions = {}): Promise<LxdOperation> {
    return this.mustOperate('PUT', `/1.0/instances/${seg(name)}/state`, { json: put }, options);
  }

  /** Starts an instance; {@link LxdConflictError} when it is already running. */
  startInstance(name: string, options: WaitOptions = {}): Promise<LxdOperation> {
    return this.setInstanceState(name, { action: 'start' }, options);
  }

  /** Stops an instance cleanly within `timeout` seconds, or kills it with `force`. */
  stopInstance(name: string, options: StopOptions = {}): Promise<LxdOperation> {
    const timeout = options.timeout ?? 30;
    const put: LxdStatePut = { action: 'stop', timeout, force: options.force ?? false };
    // The operation lasts as long as the clean shutdown may: never give up before LXD does.
    const timeoutMs = Math.max(options.timeoutMs ?? this.operationTimeoutMs, (timeout + 10) * 1000);
    return this.setInstanceState(name, put, { timeoutMs });
  }

  /** Deletes a stopped instance and its storage. */
  async deleteInstance(name: string, options: WaitOptions = {}): Promise<void> {
    await this.mustOperate('DELETE', `/1.0/instances/${seg(name)}`, undefined, options);
  }

  /** Points `alias` at `fingerprint`: creates it, or re-points it when allowed. */
  private async pointAlias(alias: string, fingerprint: string, replace: boolean): Promise<void> {
    try {
      return await this.createImageAlias(alias, fingerprint);
    } catch (err) {
      if (!(err instanceof LxdConflictError)) throw err;
      const current = await this.getImageAlias(alias);
      if (current.value.target === fingerprint) return;
      if (!replace) throw err;
      await this.updateImageAlias(alias, fingerprint, { etag: current.etag });
    }
  }
}

/** One path segment, escaped (names are validated by LXD; this keeps them one segment). */
function seg(name: string): string {
  return encodeURIComponent(name);
}
