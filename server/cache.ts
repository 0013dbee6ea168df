/**
 * ExecutionCache: results of earlier runs keyed by everything that can change a run's outcome, so running the same
 * program with the same inputs on the same runtime answers without spawning anything. Bounded by entry count,
 * by bytes and by age (lru-cache does the bookkeeping).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { UNCACHEABLE_STATUSES } from './protocol';
import type { CacheStats, ExecutionResult, IsolationMode, Limits } from './protocol';

export interface CacheOptions {
  enabled: boolean;
  /** Most entries kept (integer >= 1). */
  maxEntries: number;
  /** Most bytes kept, counted as the UTF-8 length of each result's JSON (integer >= 1). */
  maxBytes: number;
  /** Age in ms after which an entry is treated as missing; 0 means entries never expire (lru-cache's meaning). */
  ttlMs: number;
}

export interface CacheKeyParts {
  language: string;
  /** The resolved runtime binary, so switching interpreters never serves another one's result. */
  binary: string;
  version: string;
  code: string;
  stdin: string | null;
  args: string[];
  limits: Limits;
  isolation: IsolationMode;
}

/**
 * sha256 (hex) over a canonical encoding of every part. The encoding is the JSON of an array in a fixed field
 * order: JSON quoting keeps part boundaries unambiguous (["a b"] vs ["a","b"], null vs ""), and listing the limit
 * fields explicitly keeps the key independent of the property order of the object passed in.
 */
export function cacheKey(parts: CacheKeyParts): string {
  const canonical = JSON.stringify([
    parts.language,
    parts.binary,
    parts.version,
    parts.code,
    parts.stdin,
    parts.args,
    [parts.limits.timeoutMs, parts.limits.memoryMb, parts.limits.outputBytes],
    parts.isolation,
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** What the LRU holds: the result as JSON (immutable, so nobody can mutate a stored result) and when it was stored
 *  (so entries keep their age when `configure` moves them to a cache with new limits). */
interface Entry {
  json: string;
  storedAt: number;
}

function checkOptions(opts: CacheOptions): void {
  for (const name of ['maxEntries', 'maxBytes'] as const) {
    if (!Number.isInteger(opts[name]) || opts[name] < 1) {
      throw new RangeError(`cache ${name} must be an integer >= 1, got ${opts[name]}`);
    }
  }
  if (!Number.isInteger(opts.ttlMs) || opts.ttlMs < 0) {
    throw new RangeError(`cache ttlMs must be an integer >= 0, got ${opts.ttlMs}`);
  }
}

export class ExecutionCache {
  private opts: CacheOptions;
  private readonly now: () => number;
  /** null while the cache is disabled, so a disabled cache holds no memory. */
  private lru: LRUCache<string, Entry> | null = null;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  /** `now` (ms) drives TTL expiry; injectable so tests need not sleep. Default `performance.now` (monotonic). */
  constructor(opts: CacheOptions, now: () => number = () => performance.now()) {
    checkOptions(opts);
    // lru-cache treats a start time of exactly 0 as "no TTL", so an entry stored when an injected clock reads 0
    // would never expire; the smallest positive number stands in for 0 and changes no age by a measurable amount.
    this.now = () => now() || Number.MIN_VALUE;
    this.opts = { ...opts };
    if (opts.enabled) this.lru = this.createLru(opts);
  }

  /** A copy of the stored result with cached: true, or undefined. Counts a hit or a miss (nothing when disabled). */
  lookup(key: string): ExecutionResult | undefined {
    if (!this.lru) return undefined;
    const entry = this.lru.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    const result = JSON.parse(entry.json) as ExecutionResult;
    result.cached = true;
    return result;
  }

  /**
   * Stores a copy (cached flag false in storage). Returns false, storing nothing, when disabled, when the status is
   * in UNCACHEABLE_STATUSES, or when the entry alone is bigger than maxBytes (an older entry under the same key is
   * then left as it was).
   */
  store(key: string, result: ExecutionResult): boolean {
    if (!this.lru || UNCACHEABLE_STATUSES.has(result.status)) return false;
    const json = JSON.stringify({ ...result, cached: false });
    const size = Buffer.byteLength(json, 'utf8');
    if (size > this.opts.maxBytes) return false;
    // Passing the size we already have spares lru-cache a second byte count through sizeCalculation.
    this.lru.set(key, { json, storedAt: this.now() }, { size });
    return true;
  }

  /** Drops every entry; answers how many (unexpired) entries were dropped. Hit/miss/eviction counters are kept. */
  clear(): number {
    if (!this.lru) return 0;
    this.lru.purgeStale();
    const dropped = this.lru.size;
    this.lru.clear();
    return dropped;
  }

  /**
   * Applies new limits. lru-cache's bounds are fixed at construction, so the entries move (least recently used
   * first, keeping their age) into a new LRU; those that no longer fit are evicted and counted as evictions.
   * Disabling drops all entries; counters are kept.
   */
  configure(opts: CacheOptions): void {
    checkOptions(opts);
    const old = this.lru;
    this.opts = { ...opts };
    if (!opts.enabled) {
      this.lru = null;
      return;
    }
    const next = this.createLru(opts);
    if (old) {
      for (const [key, entry] of old.rentries() as Generator<[string, Entry]>) {
        const size = Buffer.byteLength(entry.json, 'utf8');
        if (size > opts.maxBytes) continue; // lru-cache would refuse it anyway; it is dropped, not evicted
        next.set(key, entry, { size, start: entry.storedAt });
      }
      next.purgeStale(); // a shorter TTL may have expired some; they must not count toward entries or bytes
    }
    this.lru = next;
  }

  stats(): CacheStats {
    this.lru?.purgeStale(); // expired entries linger in lru-cache until touched; they must not count
    const lookups = this.hits + this.misses;
    return {
      enabled: this.opts.enabled,
      hits: this.hits,
      misses: this.misses,
      hitRate: lookups === 0 ? 0 : this.hits / lookups,
      entries: this.lru?.size ?? 0,
      bytes: this.lru?.calculatedSize ?? 0,
      evictions: this.evictions,
      maxEntries: this.opts.maxEntries,
      maxBytes: this.opts.maxBytes,
      ttlMs: this.opts.ttlMs,
    };
  }

  private createLru(opts: CacheOptions): LRUCache<string, Entry> {
    const ttl = opts.ttlMs;
    return new LRUCache<string, Entry>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (entry) => Buffer.byteLength(entry.json, 'utf8'),
      ttl,
      // Read the clock on every staleness check: the default (1 ms) caches it behind a timer, which makes injected
      // clocks lag and leaves timers behind.
      ttlResolution: 0,
      perf: { now: this.now },
      dispose: (entry, _key, reason) => {
        // lru-cache reports an expired entry pushed out by the bounds as 'evict' too; only live ones count.
        if (reason === 'evict' && !(ttl > 0 && this.now() - entry.storedAt > ttl)) this.evictions++;
      },
    });
  }
}
