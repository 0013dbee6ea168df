/**
 * ResourcePool: a fixed number of logical workers (slots) that runs hold while they execute, with a bounded FIFO
 * queue for the requests that find every worker busy. The pool owns no processes; it only bounds concurrency and
 * keeps per-worker accounting for the metrics.
 */
import type { PoolStatus, WorkerMetrics } from './protocol';

export interface PoolOptions {
  size: number;
  queueLimit: number;
  /** Clock in ms; injectable so tests can check time arithmetic without sleeping. Default `Date.now`. */
  now?: () => number;
}

/** Thrown (as a rejection) by `acquire` when the wait queue is already at `queueLimit`. */
export class QueueFullError extends Error {
  /** How many requests were waiting when this one was turned away. */
  readonly queued: number;

  constructor(queued: number) {
    super(`queue full: ${queued} requests are already waiting for a worker`);
    this.name = 'QueueFullError';
    this.queued = queued;
  }
}

/** A worker held by one run. `release` hands it back; calling it again is a no-op. */
export interface Lease {
  readonly workerId: string;
  release(failed: boolean): void;
}

interface Worker {
  readonly id: string;
  readonly createdAt: number;
  busy: boolean;
  /** When the current busy stretch began (meaningful only while busy). */
  busySince: number;
  /** Busy time of finished stretches; the current one is added on read. */
  busyMs: number;
  runs: number;
  failures: number;
}

interface Waiter {
  resolve(lease: Lease): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be an integer >= 1, got ${size}`);
}

function checkQueueLimit(queueLimit: number): void {
  if (!Number.isInteger(queueLimit) || queueLimit < 0) {
    throw new RangeError(`queue limit must be an integer >= 0, got ${queueLimit}`);
  }
}

export class ResourcePool {
  /** Called synchronously after every state change (acquire, release, enqueue, dequeue, resize). */
  onChange?: () => void;

  private readonly now: () => number;
  private size: number;
  private queueLimit: number;
  /** Live workers in creation order. May briefly exceed `size` after a shrink, until busy extras are released. */
  private readonly pool = new Map<string, Worker>();
  /** Waiters in arrival order; a Set so an aborted waiter leaves in O(1) and iteration stays FIFO. */
  private readonly queue = new Set<Waiter>();
  private nextId = 1;
  private busyCount = 0;
  private peak = 0;

  constructor(opts: PoolOptions) {
    checkSize(opts.size);
    checkQueueLimit(opts.queueLimit);
    this.now = opts.now ?? Date.now;
    this.size = opts.size;
    this.queueLimit = opts.queueLimit;
    for (let i = 0; i < opts.size; i++) this.addWorker();
  }

  /** Most workers busy at once since the pool was created. */
  get peakConcurrency(): number {
    return this.peak;
  }

  /**
   * Resolves with a lease on an idle worker, or waits in a FIFO queue. Rejects at once with QueueFullError when
   * queueLimit requests already wait. If `signal` aborts while waiting, the request leaves the queue and the
   * promise rejects with signal.reason (an abort never takes a worker). Once the promise has resolved, the caller
   * owns the lease and must release it, even if the signal aborts later.
   */
  acquire(signal?: AbortSignal): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(signal.reason);

    const idle = this.queue.size === 0 ? this.firstIdle() : undefined;
    if (idle) {
      const lease = this.grant(idle);
      this.notify();
      return Promise.resolve(lease);
    }
    if (this.queue.size >= this.queueLimit) return Promise.reject(new QueueFullError(this.queue.size));

    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          // The listener is removed when the waiter is served, so reaching here means it is still queued.
          this.queue.delete(waiter);
          reject(signal.reason);
          this.notify();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.add(waiter);
      this.notify();
    });
  }

  /**
   * Change size/queueLimit at run time: growing serves the queue at once; shrinking retires idle workers now and
   * busy ones when released. A lower queueLimit only affects new requests; requests already waiting stay queued.
   */
  resize(size: number, queueLimit: number = this.queueLimit): void {
    checkSize(size);
    checkQueueLimit(queueLimit);
    this.size = size;
    this.queueLimit = queueLimit;

    if (this.pool.size > size) {
      // Retire the newest idle workers first so the low ids (w1, w2, …) stay stable across resizes.
      const idle = [...this.pool.values()].filter((w) => !w.busy).reverse();
      for (const w of idle) {
        if (this.pool.size <= size) break;
        this.pool.delete(w.id);
      }
    }
    while (this.pool.size < size) this.addWorker();
    this.serveQueue();
    this.notify();
  }

  status(): PoolStatus {
    return {
      size: this.size,
      busy: this.busyCount,
      idle: this.pool.size - this.busyCount,
      queued: this.queue.size,
      queueLimit: this.queueLimit,
    };
  }

  /** Per-worker accounting; busyMs includes the stretch in progress, utilisation is busyMs / age, clamped to 0..1. */
  workers(): WorkerMetrics[] {
    const now = this.now();
    return [...this.pool.values()].map((w) => {
      const busyMs = w.busyMs + (w.busy ? Math.max(0, now - w.busySince) : 0);
      const age = now - w.createdAt;
      const utilisation = age > 0 ? Math.min(1, Math.max(0, busyMs / age)) : 0;
      return { id: w.id, busy: w.busy, runs: w.runs, failures: w.failures, busyMs, utilisation };
    });
  }

  private addWorker(): void {
    const id = `w${this.nextId++}`;
    this.pool.set(id, {
      id,
      createdAt: this.now(),
      busy: false,
      busySince: 0,
      busyMs: 0,
      runs: 0,
      failures: 0,
    });
  }

  private firstIdle(): Worker | undefined {
    for (const w of this.pool.values()) if (!w.busy) return w;
    return undefined;
  }

  /** Marks `w` busy and returns a fresh lease: each lease has its own `released` flag, so a stale lease can never
   *  release a worker that has since been handed to someone else. */
  private grant(w: Worker): Lease {
    w.busy = true;
    w.busySince = this.now();
    this.busyCount++;
    if (this.busyCount > this.peak) this.peak = this.busyCount;
    let released = false;
    return {
      workerId: w.id,
      release: (failed: boolean) => {
        if (released) return;
        released = true;
        this.release(w, failed);
      },
    };
  }

  private release(w: Worker, failed: boolean): void {
    w.busy = false;
    w.busyMs += Math.max(0, this.now() - w.busySince);
    w.runs++;
    if (failed) w.failures++;
    this.busyCount--;
    // After a shrink the pool holds more workers than `size`; the first ones released are the ones that retire.
    if (this.pool.size > this.size) this.pool.delete(w.id);
    else this.serveQueue();
    this.notify();
  }

  /** Hands idle workers to waiters in arrival order. */
  private serveQueue(): void {
    for (const waiter of this.queue) {
      const w = this.firstIdle();
      if (!w) return;
      this.queue.delete(waiter);
      if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(this.grant(w));
    }
  }

  /** A throwing listener must not leave the pool half-updated or lose a lease, so its error becomes a warning. */
  private notify(): void {
    if (!this.onChange) return;
    try {
      this.onChange();
    } catch (err) {
      const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.emitWarning(`ResourcePool onChange listener threw: ${detail}`, 'ResourcePoolWarning');
    }
  }
}
