/**
 * Progress of long runs on stderr: a bar with rate and ETA redrawn in place when stderr is a terminal, one line
 * per stage otherwise (logs, CI), nothing with --quiet. stdout, where `--json -` writes, is never touched.
 */
import { formatBytes } from '../engine/formatBytes';
import type { ProgressEvent, ProgressListener } from '../engine/progress';

const STAGE_TEXT: Record<string, string> = {
  download: 'downloading',
  load: 'loading',
  collect: 'collecting reference relevance',
  evaluate: 'evaluating',
  generate: 'generating',
  sweep: 'sweeping',
  score: 'scoring',
  refine: 'refining',
};

interface Stream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

interface Running {
  key: string;
  start: number;
  startDone: number;
  lastDraw: number;
}

export class ProgressDisplay {
  private running?: Running;

  constructor(
    private readonly out: Stream = process.stderr,
    private readonly quiet = false,
    private readonly now: () => number = () => performance.now(),
  ) {}

  readonly listener: ProgressListener = (e) => this.update(e);

  /** Adapts the engine's (stage, done, total, detail) callbacks. */
  readonly stage = (stage: string, done: number, total: number, detail?: string): void =>
    this.update({ stage, done, total, detail, unit: 'items' });

  update(e: ProgressEvent): void {
    if (this.quiet) return;
    const key = `${e.stage}:${e.detail ?? ''}`;
    const t = this.now();
    if (this.running?.key !== key) {
      this.finish();
      this.running = { key, start: t, startDone: e.done, lastDraw: 0 };
      if (!this.out.isTTY) this.out.write(`${label(e)}…\n`);
    }
    const r = this.running!;
    const complete = e.total > 0 && e.done >= e.total;
    if (this.out.isTTY && (complete || t - r.lastDraw > 100)) {
      r.lastDraw = t;
      this.out.write(`\r${this.line(e, r, t)}\x1b[K`);
    }
    if (complete) {
      if (this.out.isTTY) this.out.write('\n');
      else this.out.write(`${this.line(e, r, t)}\n`);
      this.running = undefined;
    }
  }

  /** One line of run information on stderr (which execution ran, and why); silent with --quiet. */
  note(text: string): void {
    if (this.quiet) return;
    this.finish();
    this.out.write(`${text}\n`);
  }

  /** Ends a stage left open (an error, or a stage that never reported its last step). */
  finish(): void {
    if (this.running && this.out.isTTY) this.out.write('\n');
    this.running = undefined;
  }

  private line(e: ProgressEvent, r: Running, t: number): string {
    const seconds = (t - r.start) / 1000;
    const rate = seconds > 0 ? (e.done - r.startDone) / seconds : 0;
    const amount = (n: number) => (e.unit === 'bytes' ? formatBytes(n) : String(n));
    const fraction = e.total > 0 ? Math.min(1, e.done / e.total) : 0;
    const width = 24;
    const bar = '█'.repeat(Math.round(fraction * width)).padEnd(width, '░');
    const eta = rate > 0 && e.total > e.done ? ` ETA ${clock((e.total - e.done) / rate)}` : '';
    const speed = rate > 0 ? ` ${e.unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate < 10 ? 1 : 0)}/s`}` : '';
    return `${label(e)} ${bar} ${amount(e.done)}/${amount(e.total)}${speed}${eta} (${clock(seconds)})`;
  }
}

function label(e: ProgressEvent): string {
  const what = STAGE_TEXT[e.stage] ?? e.stage;
  return e.detail ? `${what} ${e.detail}` : what;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m % 60)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

let display = new ProgressDisplay();

/** The display this run reports to (the CLI sets it from --quiet before a command runs). */
export function progressDisplay(): ProgressDisplay {
  return display;
}

export function setProgressDisplay(d: ProgressDisplay): void {
  display = d;
}
