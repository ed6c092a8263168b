/**
 * What the dispatcher must not forget across an agent restart, kept under `state_dir`: the event
 * watermarks (`events.json`: a user event Serf replays after a restart is not run twice) and the
 * nonces of accepted operator signatures (`signatures.json`: a signed event replayed after a
 * restart is still refused). Both files are 0600. An unreadable file is logged and the agent
 * starts without it; a failed save is logged and retried at the next change.
 */
import path from 'node:path';
import type { FileOps, Logger } from '../../core/contracts.js';
import type { EventDedupe, Watermarks } from './dedupe.js';
import type { SignatureGate } from './signatures.js';

/** Where the files go and what they hold. */
export interface SavedStateDeps {
  readonly files: FileOps;
  /** Read at each save: a config reload may move `state_dir`. */
  readonly stateDir: () => string;
  readonly dedupe: EventDedupe;
  readonly signatures: SignatureGate;
  readonly log: Logger;
}

/** Saves and restores the dispatcher's memory of events and signatures. */
export class DispatchSavedState {
  private savingSignatures: Promise<void> = Promise.resolve();

  constructor(private readonly deps: SavedStateDeps) {}

  private file(name: 'events.json' | 'signatures.json'): string {
    return path.join(this.deps.stateDir(), name);
  }

  /** Saves the watermarks when they moved since the last save (the agent calls it once a second). */
  async saveWatermarks(): Promise<void> {
    const { dedupe, files, log } = this.deps;
    if (!dedupe.dirty) return;
    await files
      .write(this.file('events.json'), JSON.stringify(dedupe.snapshot()) + '\n', 0o600)
      .catch((err: unknown) => log.warn({ err }, 'could not save event watermarks'));
  }

  /**
   * Saves the nonces of accepted signatures at once: a signed event replayed after a restart must
   * still be refused. One write at a time; a later accept re-saves.
   */
  saveSignatures(): Promise<void> {
    const { signatures, files, log } = this.deps;
    this.savingSignatures = this.savingSignatures.then(async () => {
      if (!signatures.dirty) return;
      await files
        .write(this.file('signatures.json'), JSON.stringify(signatures.snapshot()) + '\n', 0o600)
        .catch((err: unknown) => log.warn({ err }, 'could not save accepted signatures'));
    });
    return this.savingSignatures;
  }

  /** Reads both files back at start; a missing file is a first start, an unreadable one is logged. */
  async restore(): Promise<void> {
    const { dedupe, signatures, files, log } = this.deps;
    const events = this.file('events.json');
    try {
      const text = await files.read(events);
      if (text) dedupe.restore(JSON.parse(text) as Watermarks);
    } catch (err) {
      log.warn({ err, file: events }, 'unreadable event watermarks; starting without them');
    }
    const accepted = this.file('signatures.json');
    try {
      const text = await files.read(accepted);
      if (text) signatures.restore(JSON.parse(text));
    } catch (err) {
      log.warn({ err, file: accepted }, 'unreadable accepted signatures; starting without them');
    }
  }
}
