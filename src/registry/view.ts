/**
 * The metadata service's in-memory copy of the registry, indexed by MAC and IP and kept current by a
 * KV watch. Every request is answered from memory (a metadata request must not wait for a JetStream
 * round trip), and `available` turns false while NATS is unreachable, so callers then answer 503
 * rather than serve an instance that may have been removed meanwhile.
 *
 * A record is served only while its claims (`name.`, `mac.`, `ip.` keys) point at it: a record
 * written beside the registry's own code (forged, or left by a writer that died half way) that
 * claims a victim's MAC or address is never served, and one that loses a claim stops being served.
 */
import { KvWatchInclude, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { detach } from '../../core/errors.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { InstanceRegistry, parseEntry, registryKeys } from './registry.js';

/** What the metadata service asks of the registry. */
export interface InstanceLookup {
  /** False until the first full read, and while NATS is unreachable. */
  readonly available: boolean;
  byMac(mac: string): InstanceRecord | undefined;
  byIp(ip: string): InstanceRecord | undefined;
  byId(id: string): InstanceRecord | undefined;
}

/** A watched, indexed copy of the registry bucket. */
export class RegistryView implements InstanceLookup {
  // A removed instance stays as a tombstone (no record) so an older value read late cannot resurrect it.
  private readonly entries = new Map<string, { record?: InstanceRecord; revision: number }>();
  /** Claim key → the id it points at. */
  private readonly claims = new Map<string, string>();
  private synced = false;
  private connected = true;
  private stopped = false;
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly log: Logger,
    private readonly onChange?: () => void,
  ) {}

  /**
   * Starts following the registry over `nc` (which should reconnect forever); resolves at once, the
   * first read completes in the background (`available` tells when). With `replicas` the bucket is
   * created when missing (controllers); `undefined` only binds to it (readers wait for a controller).
   */
  static start(nc: NatsConnection, log: Logger, replicas: number | undefined, onChange?: () => void): RegistryView {
    const view = new RegistryView(log, onChange);
    detach(view.watchStatus(nc), (err) => log.warn({ err }, 'NATS status watch ended'));
    detach(view.follow(nc, replicas), (err) => log.warn({ err }, 'following the registry failed'));
    return view;
  }

  get available(): boolean {
    return this.synced && this.connected && !this.stopped;
  }

  byId(id: string): InstanceRecord | undefined {
    const record = this.entries.get(id)?.record;
    return record && this.claimed(record) ? record : undefined;
  }

  /** True when the record's name, every MAC and every IP are claimed by it. */
  private claimed(r: InstanceRecord): boolean {
    const mine = (key: string) => this.claims.get(key) === r.id;
    return (
      mine(registryKeys.name(r.name)) && r.macs.every((m) => mine(registryKeys.mac(m))) && r.ips.every((ip) => mine(registryKeys.ip(ip)))
    );
  }

  // The claims are the index: a MAC or IP leads to the record its claim names, and that record is
  // served only when all its claims name it (a forged record cannot take a victim's MAC from it).
  byMac(mac: string): InstanceRecord | undefined {
    const id = this.claimOf(() => registryKeys.mac(mac));
    return id ? this.byId(id) : undefined;
  }

  byIp(ip: string): InstanceRecord | undefined {
    const id = this.claimOf(() => registryKeys.ip(ip));
    return id ? this.byId(id) : undefined;
  }

  private claimOf(key: () => string): string | undefined {
    try {
      return this.claims.get(key());
    } catch {
      return undefined; // not a MAC at all
    }
  }

  /** Every instance the view serves (its claims point at it). */
  records(): InstanceRecord[] {
    return [...this.entries.values()].flatMap((e) => (e.record && this.claimed(e.record) ? [e.record] : []));
  }

  /** How many instances the view serves. */
  get size(): number {
    return this.records().length;
  }

  /** Stops watching (the connection stays the caller's). */
  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
  }

  private async follow(nc: NatsConnection, replicas: number | undefined): Promise<void> {
    while (!this.stopped && !nc.isClosed()) {
      try {
        await this.syncOnce(nc, replicas);
        return;
      } catch (err) {
        this.log.warn({ err }, 'registry not readable yet; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Watches for changes first, then reads everything, so no change between the two is missed. */
  private async syncOnce(nc: NatsConnection, replicas: number | undefined): Promise<void> {
    const registry = await InstanceRegistry.open(nc, replicas === undefined ? { bind: true } : { replicas });
    const watcher = await registry.kv.watch({ include: KvWatchInclude.UpdatesOnly });
    this.stopWatch = () => watcher.stop();
    void (async () => {
      for await (const entry of watcher) this.take(entry);
    })()
      .catch((err: unknown) => this.log.warn({ err }, 'registry watch failed'))
      .finally(() => {
        // The bucket's stream went away (deleted, or hidden when this server joined a cluster):
        // unavailable until a fresh read, which re-creates the bucket if it has to.
        if (this.stopped || nc.isClosed()) return;
        this.synced = false;
        this.log.warn('registry watch ended; reading the registry again');
        setTimeout(() => detach(this.follow(nc, replicas), (err) => this.log.warn({ err }, 'following the registry failed')), 1000).unref();
      });
    const keys: string[] = [];
    for await (const key of await registry.kv.keys()) keys.push(key);
    for (const key of keys) {
      const entry = await registry.kv.get(key);
      if (entry) this.take(entry);
    }
    this.synced = true;
    this.log.info({ instances: this.size }, 'registry loaded');
    this.onChange?.();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.log.warn('NATS connection lost; metadata requests answer 503 until it is back');
      } else if (s.type === 'reconnect') {
        this.connected = true;
        this.log.info('NATS connection back');
      }
    }
  }

  /** Applies one bucket entry: a record, or a claim. */
  private take(entry: KvEntry): void {
    if (entry.key.startsWith('instance.')) return this.apply(entry.key.slice('instance.'.length), parseEntry(entry), entry.revision);
    if (!/^(name|mac|ip)\./.test(entry.key)) return;
    if (entry.operation === 'PUT') this.claims.set(entry.key, entry.string());
    else this.claims.delete(entry.key);
    if (this.synced) this.onChange?.();
  }

  /** Applies one record (or its removal, `undefined`) unless the view already has a newer one. */
  private apply(id: string, record: InstanceRecord | undefined, revision: number): void {
    const old = this.entries.get(id);
    if (old && old.revision >= revision) return;
    if (!record || record.id !== id) {
      this.entries.set(id, { revision });
      if (record) this.log.warn({ key: registryKeys.record(id) }, 'registry record does not match its key; ignored');
      if (this.synced) this.onChange?.();
      return;
    }
    this.entries.set(id, { record, revision });
    if (this.synced) this.onChange?.();
  }
}
