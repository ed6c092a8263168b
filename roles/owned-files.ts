/**
 * `roles-owned.json` in the state directory: the files each role's last apply owned, so a role
 * removed from the node (or an apply after a restart) knows what to take away. Read once, lazily;
 * saved when a role's set changes (a failed save is logged: the next change saves it again).
 */
import path from 'node:path';
import type { FileOps, Logger, Run } from '../core/contracts.js';
import { applyRole } from './apply.js';
import type { Role } from './types.js';

/** What the record is read and written with (the scheduler's deps). */
export interface OwnedDeps {
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  /** The state directory (a getter: a reload may change it). */
  readonly stateDir: () => string;
  readonly node: () => string;
}

/** The files each role owns. */
export class OwnedFiles {
  private owned: Record<string, string[]> = {};
  private read = false;

  constructor(private readonly deps: OwnedDeps) {}

  private get file(): string {
    return path.join(this.deps.stateDir(), 'roles-owned.json');
  }

  /** The files `role` owned after its last apply. */
  async of(role: string): Promise<string[]> {
    await this.load();
    return this.owned[role] ?? [];
  }

  /** Records what `role` owns now; saves when that changed. */
  async set(role: string, files: readonly string[]): Promise<void> {
    await this.load();
    if (JSON.stringify(files) === JSON.stringify(this.owned[role] ?? [])) return;
    if (files.length) this.owned[role] = [...files];
    else delete this.owned[role];
    await this.save();
  }

  /** A node that loses a role must stop serving its config: applies an empty render of it. */
  async remove(name: string, role: Role | undefined): Promise<void> {
    const previous = await this.of(name);
    if (!role || !previous.length) return;
    const { run, files, log } = this.deps;
    const empty = { node: this.deps.node(), config: {}, members: [] };
    const report = await applyRole({ ...role, render: () => [] }, empty, { run, files, log, previous });
    if (!report.ok) log.error({ role: name, error: report.error }, 'could not remove the files of a removed role');
    await this.set(name, report.owned);
  }

  private async load(): Promise<void> {
    if (this.read) return;
    this.read = true;
    try {
      const text = await this.deps.files.read(this.file);
      if (text) this.owned = JSON.parse(text) as Record<string, string[]>;
    } catch (err) {
      this.deps.log.warn({ err, file: this.file }, 'unreadable role state; starting without it');
    }
  }

  private async save(): Promise<void> {
    await this.deps.files.write(this.file, JSON.stringify(this.owned, null, 2) + '\n', 0o600).catch((err: unknown) => {
      this.deps.log.warn({ err }, 'could not save role state');
    });
  }
}
