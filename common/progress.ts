// Progress of long work (key rotation, loading a benchmark), on stderr so stdout keeps only the results. On a
// terminal, one line rewritten in place with the count and the rate; elsewhere (a pipe, a CI log) a plain line every
// few seconds, so a log shows the work moving without thousands of lines.
import type { WriteStream } from 'node:tty';

export interface ProgressOptions {
  /** What is counted, e.g. "data keys re-wrapped". */
  unit: string;
  /** The count at which the work is done, when known. */
  total?: number;
  /** Where to write; process.stderr by default. */
  stream?: NodeJS.WritableStream & Partial<Pick<WriteStream, 'isTTY'>>;
  /** How often a plain line is written when the stream is not a terminal. */
  plainEveryMs?: number;
}

const TERMINAL_EVERY_MS = 100;

export class Progress {
  private readonly started = performance.now();
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly terminal: boolean;
  private readonly everyMs: number;
  private lastWrite = -Infinity;
  private count = 0;

  constructor(readonly label: string, private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.terminal = this.stream.isTTY === true;
    this.everyMs = this.terminal ? TERMINAL_EVERY_MS : options.plainEveryMs ?? 5_000;
    if (!this.terminal) {
      this.stream.write(`${label}...\n`);
      this.lastWrite = this.started;
    }
  }

  /** Sets the count so far; writes at most every so often. */
  update(count: number): void {
    this.count = count;
    const now = performance.now();
    if (now - this.lastWrite < this.everyMs) return;
    this.lastWrite = now;
    this.write(false);
  }

  /** Adds to the count. */
  add(delta: number): void {
    this.update(this.count + delta);
  }

  /** Writes the final line (on a terminal, ends the line rewritten in place). */
  done(count = this.count): void {
    this.count = count;
    this.write(true);
  }

  private write(final: boolean): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? Math.round(this.count / seconds) : 0;
    const { total, unit } = this.options;
    const count = total === undefined ? this.count.toLocaleString('en-US') : `${this.count.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`;
    const text = `${this.label}: ${count} ${unit}, ${rate.toLocaleString('en-US')}/s${final ? `, done in ${seconds.toFixed(1)} s` : ''}`;
    // \r back to the line start, \x1b[K clears what a longer earlier line left.
    this.stream.write(this.terminal ? `\r${text}\x1b[K${final ? '\n' : ''}` : `${text}\n`);
  }
}
