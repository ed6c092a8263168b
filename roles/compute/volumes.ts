/**
 * The volume side of the compute role (issue 18): follows the volumes attached to this node's
 * instances (the attached-volume feed, `src/registry/volume-feed.ts`) and runs `volumePass` —
 * open-iscsi logins and LXD devices — after every change of that list, after every instance pass
 * while any volume is attached here (an instance just created can now take its device), and once
 * when the feed opens (so sessions of volumes detached while the agent was down are logged out).
 *
 * Passes never overlap; a request during one makes one more. A feed that cannot be opened (no
 * controller answers yet) is opened again at the next request. Nothing here throws: what failed
 * is in the report and the role's status line.
 */
import { access } from 'node:fs/promises';
import type { FileOps, Logger, Member, Run } from '../../core/contracts.js';
import { coalesce } from '../../core/coalesce.js';
import { detach, errorMessage } from '../../core/errors.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import type { LxdClient } from '../../src/lxd/client.js';
import { storagePortals, volumePass, type VolumePassReport } from './volume-attach.js';

/**
 * Opens the list of volumes attached to instances on `node` (src/registry/volume-feed.ts's
 * `openAttachedVolumeFeed` implements it): `onChange` gets the whole list after the first read and
 * after every change. Defined here so the role depends on no service module.
 */
export type AttachedVolumeFeed = (
  servers: readonly string[],
  node: string,
  onChange: (volumes: readonly VolumeRecord[]) => void,
  log: Logger,
) => Promise<{ close(): Promise<void> }>;

/** What the volume work needs from the role. */
export interface ComputeVolumesDeps {
  readonly feed: AttachedVolumeFeed;
  /** The role's LXD client of the moment (a changed socket replaces it); undefined once stopped. */
  readonly lxd: () => Pick<LxdClient, 'listInstances' | 'getInstance' | 'updateInstance'> | undefined;
  readonly run: Run;
  readonly files: FileOps;
  readonly node: string;
  /** The Serf members as of the role's last apply (storage nodes' addresses, for old records). */
  readonly members: () => readonly Member[];
  readonly log: Logger;
  /** Whether a device node exists (default: the file system); tests point it elsewhere. */
  readonly deviceExists?: (path: string) => Promise<boolean>;
  readonly deviceWaitMs?: number;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The open volume work of one compute role run; `close` ends it. */
export class ComputeVolumes {
  private volumes: readonly VolumeRecord[] | undefined;
  private link: { close(): Promise<void> } | undefined;
  private opening: Promise<void> | undefined;
  private servers: readonly string[] = [];
  private openError: string | undefined;
  private last: VolumePassReport | undefined;
  private closed = false;

  constructor(private readonly deps: ComputeVolumesDeps) {}

  /** Follows the registry at `servers` (opened once; a failed open is tried again at the next request). */
  follow(servers: readonly string[]): void {
    this.servers = servers;
    if (this.link || this.opening || this.closed || !servers.length) return;
    const log = this.deps.log.child({ component: 'volumes' });
    this.opening = this.deps
      .feed(servers, this.deps.node, (v) => this.changed(v), log)
      .then(
        async (l) => {
          if (this.closed) return void (await l.close().catch(() => undefined));
          this.link = l;
          this.openError = undefined;
        },
        (err: unknown) => {
          this.openError = `cannot open the volume registry: ${errorMessage(err)}`;
          log.warn({ err }, 'cannot open the volume registry (tried again on the next pass)');
        },
      )
      .finally(() => (this.opening = undefined));
  }

  /** Asks for a pass if there is volume work on this node (or to retry opening the feed). */
  request(): void {
    if (this.closed) return;
    if (!this.link) return this.follow(this.servers);
    if (this.volumes?.length || this.last?.failed.length || this.last?.done.length) detach(this.passNow(), () => undefined);
  }

  /** Runs a pass now (resolves when done; a pass already running is followed by one more). */
  readonly passNow = coalesce(() => this.pass());

  /** The last pass's outcome (undefined before the first). */
  report(): VolumePassReport | undefined {
    return this.last;
  }

  /** The volume part of the role's status line: `2 volumes attached, 1 waiting, 1 failing`. */
  summary(): string | undefined {
    if (this.openError) return this.openError;
    if (!this.link && this.opening) return 'connecting to the volume registry';
    const r = this.last;
    if (!r || !(r.attached.length || r.waiting.length || r.failed.length)) return undefined;
    const parts = [`${r.attached.length} volume${r.attached.length === 1 ? '' : 's'} attached`];
    if (r.waiting.length) parts.push(`${r.waiting.length} waiting`);
    const failing = new Set(r.failed.map((f) => f.volume)).size;
    // The first failure says why (the rest are in `volume list` and the log), kept short for the status answer.
    if (failing) parts.push(`${failing} failing (${`${r.failed[0].volume}: ${r.failed[0].error}`.slice(0, 100)})`);
    return parts.join(', ');
  }

  /** Stops following the registry; a pass in flight finishes first. */
  async close(): Promise<void> {
    this.closed = true;
    // Not waiting for an open in flight: NATS may keep trying for ever (the node not admitted
    // yet); a link that opens after this is closed by follow's handler.
    await this.passNow.settled();
    const l = this.link;
    this.link = undefined;
    await l?.close().catch(() => undefined);
  }

  private changed(volumes: readonly VolumeRecord[]): void {
    this.volumes = volumes;
    if (!this.closed) detach(this.passNow(), () => undefined);
  }

  private async pass(): Promise<void> {
    const volumes = this.volumes;
    const d = this.deps;
    const lxd = d.lxd();
    if (volumes === undefined || this.closed || !lxd) return;
    const report = await volumePass(volumes, {
      lxd,
      run: d.run,
      files: d.files,
      node: d.node,
      portals: storagePortals(d.members()),
      deviceExists: d.deviceExists ?? exists,
      ...(d.deviceWaitMs !== undefined ? { deviceWaitMs: d.deviceWaitMs } : {}),
    });
    if (report.done.length || report.failed.length)
      d.log.info({ done: report.done, failed: report.failed, attached: report.attached }, 'volume pass');
    this.last = report;
  }
}
