/**
 * A token bucket: `burst` tokens at most, refilled at `perSecond` tokens a second; each request takes one (or `n`).
 * A request that finds too few tokens is refused with how long until there will be enough, and takes nothing.
 * `perSecond: 0` turns the limit off (every take succeeds). The clock is injectable so tests never sleep.
 */

export interface TokenBucketOptions {
  /** Tokens added per second; 0 means unlimited. */
  perSecond: number;
  /** Most tokens the bucket holds (and so the most requests at once); at least 1 when limited. */
  burst: number;
  /** Milliseconds from any fixed origin (default `performance.now`, which never goes backwards). */
  now?: () => number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

/** Fractional tokens accumulate with rounding error; this much short of `n` still counts as `n`. */
const EPSILON = 1e-9;

function check(perSecond: number, burst: number): void {
  if (!Number.isFinite(perSecond) || perSecond < 0) throw new RangeError(`perSecond must be a finite number >= 0, got ${perSecond}`);
  if (perSecond > 0 && (!Number.isFinite(burst) || burst < 1)) {
    throw new RangeError(`burst must be a finite number >= 1, got ${burst}`);
  }
}

export class TokenBucket {
  private rate: number;
  private capacity: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  constructor(opts: TokenBucketOptions) {
    check(opts.perSecond, opts.burst);
    this.rate = opts.perSecond;
    this.capacity = opts.burst;
    this.now = opts.now ?? (() => performance.now());
    this.tokens = this.capacity; // a new bucket is full: the first `burst` requests go through at once
    this.last = this.now();
  }

  get perSecond(): number {
    return this.rate;
  }

  get burst(): number {
    return this.capacity;
  }

  /** Tokens there now (fractional); Infinity when unlimited. */
  available(): number {
    if (this.rate === 0) return Number.POSITIVE_INFINITY;
    this.refill();
    return this.tokens;
  }

  /**
   * Takes `n` tokens if they are all there. Otherwise takes none and says how long until `n` will be there
   * (whole ms, rounded up, at least 1). `n` above `burst` can never be granted: RangeError (count items one by one).
   */
  take(n = 1): TakeResult {
    if (!Number.isFinite(n) || n < 0) throw new RangeError(`n must be a finite number >= 0, got ${n}`);
    if (this.rate === 0 || n === 0) return { ok: true };
    if (n > this.capacity) throw new RangeError(`cannot take ${n} tokens from a bucket of ${this.capacity}`);
    this.refill();
    if (this.tokens + EPSILON >= n) {
      this.tokens = Math.max(0, this.tokens - n);
      return { ok: true };
    }
    const retryAfterMs = Math.max(1, Math.ceil(((n - this.tokens) * 1000) / this.rate));
    return { ok: false, retryAfterMs };
  }

  /**
   * Changes the rate and/or the burst. Tokens earned so far at the old rate are kept (capped at the new burst); a
   * bucket that was unlimited starts full.
   */
  configure(opts: { perSecond?: number; burst?: number }): void {
    const perSecond = opts.perSecond ?? this.rate;
    const burst = opts.burst ?? this.capacity;
    check(perSecond, burst);
    const wasUnlimited = this.rate === 0;
    if (!wasUnlimited) this.refill();
    this.rate = perSecond;
    this.capacity = burst;
    this.last = this.now();
    this.tokens = wasUnlimited ? burst : Math.min(this.tokens, burst);
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.last;
    this.last = t;
    if (elapsed > 0) this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.rate) / 1000);
  }
}
