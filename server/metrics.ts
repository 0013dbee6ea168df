/**
 * MetricsRecorder: aggregates finished runs into the `Metrics` snapshot the server sends to clients. Every store is
 * bounded whatever the number of runs: totals are running sums, durations for percentiles and recent runs live in
 * ring buffers, and the per-minute window keeps one counter per distinct millisecond inside the window.
 */
import { STATUSES } from './protocol';
import type { CacheStats, Metrics, PoolStatus, RunRecord, RunStatus, WorkerMetrics } from './protocol';

export interface MetricsOptions {
  /** Clock in ms, on the same time base as `RunRecord.finishedAt` (epoch ms). Default `Date.now`. */
  now?: () => number;
  /** How many recent runs a snapshot lists (default 20). */
  historySize?: number;
  /** How many of the latest durations are kept for p50/p95 (default 1000). */
  sampleSize?: number;
}

/** What `snapshot` needs from the pool; ResourcePool satisfies it, tests can pass a stub. */
export interface PoolView {
  status(): PoolStatus;
  workers(): WorkerMetrics[];
  readonly peakConcurrency: number;
}

const WINDOW_MS = 60_000;

/** Fixed-capacity ring buffer; `push` overwrites the oldest item once full. */
class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;

  constructor(readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }

  get length(): number {
    return this.items.length;
  }

  /** Items newest first. */
  newestFirst(): T[] {
    const out: T[] = [];
    for (let i = 1; i <= this.items.length; i++) {
      out.push(this.items[(this.next - i + this.items.length * 2) % this.items.length]);
    }
    return out;
  }

  values(): readonly T[] {
    return this.items;
  }

  clear(): void {
    this.items.length = 0;
    this.next = 0;
  }
}

/** Nearest-rank percentile of an ascending array: the smallest value with at least p% of the values at or below. */
function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

function checkPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
}

function zeroByStatus(): Record<RunStatus, number> {
  return Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
}

export class MetricsRecorder {
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly recent: Ring<RunRecord>;
  private readonly durations: Ring<number>;
  private runsTotal = 0;
  private byStatus = zeroByStatus();
  private durationSum = 0;
  private durationMax = 0;
  private peakMemory = 0;
  /** Per-minute window: [finishedAt, runs finished at that ms], ascending by time, live from `windowHead` on.
   *  One pair per distinct ms caps it at ~60 000 pairs however many runs finish. */
  private window: [number, number][] = [];
  private windowHead = 0;

  constructor(opts: MetricsOptions = {}) {
    const historySize = opts.historySize ?? 20;
    const sampleSize = opts.sampleSize ?? 1000;
    checkPositiveInt('historySize', historySize);
    checkPositiveInt('sampleSize', sampleSize);
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.recent = new Ring(historySize);
    this.durations = new Ring(sampleSize);
  }

  record(run: RunRecord): void {
    this.runsTotal++;
    this.byStatus[run.status]++;
    this.durationSum += run.durationMs;
    if (run.durationMs > this.durationMax) this.durationMax = run.durationMs;
    if (run.peakMemoryBytes > this.peakMemory) this.peakMemory = run.peakMemoryBytes;
    this.durations.push(run.durationMs);
    this.recent.push({ ...run }); // a copy, so the caller mutating its record cannot rewrite history
    this.countInWindow(run.finishedAt);
  }

  snapshot(pool: PoolView, cache: CacheStats): Omit<Metrics, 'server'> {
    const now = this.now();
    const sorted = Float64Array.from(this.durations.values()).sort();
    const status = pool.status();
    return {
      uptimeMs: Math.max(0, now - this.startedAt),
      runsTotal: this.runsTotal,
      runsByStatus: { ...this.byStatus },
      durationMs: {
        avg: this.runsTotal === 0 ? 0 : this.durationSum / this.runsTotal,
        p50: nearestRank(sorted, 50),
        p95: nearestRank(sorted, 95),
        max: this.durationMax,
      },
      runsPerMinute: this.runsPerMinute(now),
      peakConcurrency: pool.peakConcurrency,
      peakMemoryBytes: this.peakMemory,
      queueLength: status.queued,
      pool: status,
      workers: pool.workers(),
      cache: { ...cache },
      recentRuns: this.recent.newestFirst().map((r) => ({ ...r })),
    };
  }

  /** Forgets every recorded run (uptime still counts from construction). */
  reset(): void {
    this.runsTotal = 0;
    this.byStatus = zeroByStatus();
    this.durationSum = 0;
    this.durationMax = 0;
    this.peakMemory = 0;
    this.durations.clear();
    this.recent.clear();
    this.window = [];
    this.windowHead = 0;
  }

  /** Pairs the per-minute window's array holds, pruned prefix included: what its memory is (for tests of its
   *  bound). */
  get windowEntries(): number {
    return this.window.length;
  }

  /** Durations kept for percentiles (for tests of its bound). */
  get sampleCount(): number {
    return this.durations.length;
  }

  private countInWindow(finishedAt: number): void {
    const now = this.now();
    this.prune(now);
    if (!(now - finishedAt < WINDOW_MS)) return; // already outside the window (or NaN): nothing to keep
    const w = this.window;
    const last = w.length > this.windowHead ? w[w.length - 1] : undefined;
    if (!last || finishedAt > last[0]) {
      w.push([finishedAt, 1]);
      return;
    }
    if (finishedAt === last[0]) {
      last[1]++;
      return;
    }
    // Runs finish roughly in order, so this out-of-order path is rare: binary search for the slot.
    let lo = this.windowHead;
    let hi = w.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (w[mid][0] < finishedAt) lo = mid + 1;
      else hi = mid;
    }
    if (w[lo][0] === finishedAt) w[lo][1]++;
    else w.splice(lo, 0, [finishedAt, 1]);
  }

  /** Drops pairs that left the window; compacts the array once the dead prefix is the larger half. */
  private prune(now: number): void {
    const w = this.window;
    while (this.windowHead < w.length && now - w[this.windowHead][0] >= WINDOW_MS) this.windowHead++;
    if (this.windowHead > 64 && this.windowHead * 2 > w.length) {
      this.window = w.slice(this.windowHead);
      this.windowHead = 0;
    }
  }

  /** Runs whose finishedAt lies in (now - 60 s, now]. */
  private runsPerMinute(now: number): number {
    this.prune(now);
    let count = 0;
    for (let i = this.windowHead; i < this.window.length; i++) {
      const [t, n] = this.window[i];
      if (t > now) break;
      count += n;
    }
    return count;
  }
}
