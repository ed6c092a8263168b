/**
 * The progress of `node add` and `node remove`: one line per step as it ends (`[4/6] install: … done
 * in 12.3 s` or `… unchanged`), per-step wall times, an error naming the step that failed, and the
 * `--json` summary `{node, steps:[{name, ms, changed}], total_ms}`. With `--json` the progress
 * lines go to stderr, so stdout is the JSON alone.
 */
import { errorMessage } from '../../core/errors.js';
import type { CliIo } from './common.js';

/** What a step reports. */
export interface StepOutcome {
  readonly changed: boolean;
  /** What it did or found, e.g. `serf, mammatus-agent from the cluster repository`. */
  readonly what: string;
  /** Said instead of `unchanged` when nothing changed, e.g. `already installed`. */
  readonly unchangedText?: string;
  /** An indented line printed under the step's line (the node's status line). */
  readonly note?: string;
  /** Sub-timings (milliseconds) for `--json`, e.g. `{ joined_ms }`. */
  readonly phases?: Readonly<Record<string, number>>;
}

/** One finished step, as `--json` prints it. */
export interface StepRecord {
  readonly name: string;
  readonly ms: number;
  readonly changed: boolean;
  readonly phases?: Readonly<Record<string, number>>;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs named steps in order and reports each. */
export class StepRunner {
  readonly steps: StepRecord[] = [];
  private readonly started = performance.now();
  private current = '';
  private index = 0;

  constructor(
    private readonly total: number,
    private readonly io: CliIo,
    private readonly json: boolean,
  ) {}

  private line(text: string): void {
    if (this.json) this.io.err(text);
    else this.io.out(text);
  }

  /** Runs one step; its error propagates (then {@link fail} names it). */
  async run(name: string, body: () => Promise<StepOutcome>): Promise<void> {
    this.index++;
    this.current = name;
    const t0 = performance.now();
    const r = await body();
    const ms = performance.now() - t0;
    this.steps.push({ name, ms: Math.round(ms), changed: r.changed, ...(r.phases ? { phases: r.phases } : {}) });
    const tail = r.changed ? `done in ${secs(ms)}` : `${r.unchangedText ? `${r.unchangedText}, ` : ''}unchanged (${secs(ms)})`;
    this.line(`[${this.index}/${this.total}] ${name}: ${r.what} … ${tail}`);
    if (r.note) this.line(`  ${r.note}`);
  }

  /** Did any step change something? */
  anyChanged(): boolean {
    return this.steps.some((s) => s.changed);
  }

  /** Milliseconds since the runner was made. */
  elapsedMs(): number {
    return Math.round(performance.now() - this.started);
  }

  /** Reports the failed step; with `--json` also the summary with `error`. */
  fail(err: unknown): void {
    const msg = `[${this.index}/${this.total}] ${this.current} failed: ${errorMessage(err)}`;
    this.io.err(`error: ${msg}`);
    if (this.json) this.io.out(JSON.stringify({ steps: this.steps, total_ms: this.elapsedMs(), error: msg }));
  }

  /** The last line: `text in 34.5 s`, or the JSON summary. */
  summary(node: string, text: string): void {
    const total = this.elapsedMs();
    if (this.json) this.io.out(JSON.stringify({ node, steps: this.steps, total_ms: total }));
    else this.io.out(`${text} in ${secs(total)} (${this.steps.map((s) => `${s.name} ${secs(s.ms)}`).join(', ')})`);
  }
}
