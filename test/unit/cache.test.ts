import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExecutionCache, cacheKey } from '../../server/cache';
import type { CacheKeyParts, CacheOptions } from '../../server/cache';
import { STATUSES, UNCACHEABLE_STATUSES } from '../../server/protocol';
import type { ExecutionResult, RunStatus } from '../../server/protocol';
import { sampleResult } from '../helpers/results';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

function clock(start = 1_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

function result(overrides: Partial<ExecutionResult> = {}): ExecutionResult {
  return sampleResult(overrides);
}

/** The bytes an entry occupies: the UTF-8 length of its stored JSON (cached flag false). */
const sizeOf = (r: ExecutionResult) => Buffer.byteLength(JSON.stringify({ ...r, cached: false }), 'utf8');

const OPTS: CacheOptions = { enabled: true, maxEntries: 100, maxBytes: 1_000_000, ttlMs: 60_000 };

void describe('ExecutionCache', () => {
  void it('counts misses and hits, computes hitRate, and flags hits cached: true', () => {
    const cache = new ExecutionCache(OPTS);
    assert.equal(cache.stats().hitRate, 0, 'no lookups yet');
    assert.equal(cache.lookup('k'), undefined);
    assert.equal(cache.store('k', result()), true);
    const hit = cache.lookup('k');
    assert.deepEqual(hit, result({ cached: true }));
    cache.lookup('k');
    cache.lookup('other');
    const s = cache.stats();
    assert.equal(s.hits, 2);
    assert.equal(s.misses, 2);
    assert.equal(s.hitRate, 0.5);
    assert.equal(s.entries, 1);
    assert.equal(s.bytes, sizeOf(result()));
  });

  void it('stores with cached: false and returns copies that callers cannot use to change the cache', () => {
    const cache = new ExecutionCache(OPTS);
    const original = result({ cached: true, stdout: 'abc' });
    cache.store('k', original);
    original.stdout = 'mutated after store';
    const first = cache.lookup('k');
    assert.ok(first);
    assert.equal(first.stdout, 'abc');
    first.stdout = 'mutated after lookup';
    first.cached = false;
    const second = cache.lookup('k');
    assert.equal(second?.stdout, 'abc');
    assert.equal(second?.cached, true);
    assert.notEqual(first, second);
    assert.equal(cache.stats().bytes, sizeOf(result({ stdout: 'abc' })));
  });

  void it('keeps every field through a round trip, including a message and null exit code', () => {
    const cache = new ExecutionCache(OPTS);
    const r = result({ status: 'compile_error', exitCode: null, signal: 'SIGKILL', message: 'bad ✓ input' });
    cache.store('k', r);
    assert.deepEqual(cache.lookup('k'), { ...r, cached: true });
  });

  void it('expires entries after ttlMs on the injected clock, without counting an eviction', () => {
    const c = clock();
    const cache = new ExecutionCache({ ...OPTS, ttlMs: 1_000 }, c.now);
    cache.store('k', result());
    c.advance(1_000);
    assert.ok(cache.lookup('k'), 'still fresh at exactly ttlMs');
    c.advance(1);
    assert.equal(cache.lookup('k'), undefined);
    const s = cache.stats();
    assert.equal(s.entries, 0);
    assert.equal(s.bytes, 0);
    assert.equal(s.evictions, 0);
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
  });

  void it('does not count expired entries in stats even before they are looked up', () => {
    const c = clock();
    const cache = new ExecutionCache({ ...OPTS, ttlMs: 100 }, c.now);
    cache.store('a', result());
    c.advance(50);
    cache.store('b', result());
    c.advance(51);
    assert.equal(cache.stats().entries, 1);
    assert.equal(cache.stats().bytes, sizeOf(result()));
  });

  void it('expires entries stored while the injected clock reads 0', () => {
    // lru-cache takes a start time of 0 to mean "no TTL"; the cache must not inherit that.
    const c = clock(0);
    const cache = new ExecutionCache({ ...OPTS, ttlMs: 10 }, c.now);
    cache.store('k', result());
    c.advance(11);
    assert.equal(cache.lookup('k'), undefined);
  });

  void it('never expires entries when ttlMs is 0', () => {
    const c = clock();
    const cache = new ExecutionCache({ ...OPTS, ttlMs: 0 }, c.now);
    cache.store('k', result());
    c.advance(365 * 24 * 3600_000);
    assert.ok(cache.lookup('k'));
  });

  void it('evicts the least recently used entry past maxEntries and counts it', () => {
    const cache = new ExecutionCache({ ...OPTS, maxEntries: 2 });
    cache.store('a', result());
    cache.store('b', result());
    cache.lookup('a'); // a is now more recent than b
    cache.store('c', result());
    assert.ok(cache.lookup('a'));
    assert.equal(cache.lookup('b'), undefined);
    assert.ok(cache.lookup('c'));
    const s = cache.stats();
    assert.equal(s.entries, 2);
    assert.equal(s.evictions, 1);
  });

  void it('evicts by bytes past maxBytes and counts each eviction', () => {
    const one = result();
    const size = sizeOf(one);
    const maxBytes = size * 2 + Math.floor(size / 2); // room for two entries, not three
    const cache = new ExecutionCache({ ...OPTS, maxBytes });
    cache.store('a', one);
    cache.store('b', one);
    assert.equal(cache.stats().bytes, size * 2);
    cache.store('c', one);
    assert.equal(cache.lookup('a'), undefined);
    assert.ok(cache.lookup('b'));
    assert.ok(cache.lookup('c'));
    let s = cache.stats();
    assert.equal(s.entries, 2);
    assert.equal(s.bytes, size * 2);
    assert.equal(s.evictions, 1);

    // An entry too big to share the space with even one small entry pushes out both.
    const big = result({ stdout: 'x'.repeat(size) });
    assert.ok(sizeOf(big) + size > maxBytes && sizeOf(big) <= maxBytes);
    assert.equal(cache.store('big', big), true);
    s = cache.stats();
    assert.equal(s.entries, 1);
    assert.equal(s.bytes, sizeOf(big));
    assert.equal(s.evictions, 3);
  });

  void it('measures bytes as UTF-8, not UTF-16 code units', () => {
    const cache = new ExecutionCache(OPTS);
    const r = result({ stdout: 'é€😀' });
    cache.store('k', r);
    const json = JSON.stringify(r);
    assert.notEqual(json.length, Buffer.byteLength(json));
    assert.equal(cache.stats().bytes, Buffer.byteLength(json, 'utf8'));
  });

  void it('refuses an entry bigger than maxBytes on its own, keeping what is there', () => {
    const small = result();
    const cache = new ExecutionCache({ ...OPTS, maxBytes: sizeOf(small) + 10 });
    assert.equal(cache.store('a', small), true);
    assert.equal(cache.store('huge', result({ stdout: 'x'.repeat(100) })), false);
    assert.equal(cache.store('a', result({ stdout: 'x'.repeat(100) })), false);
    assert.deepEqual(cache.lookup('a'), { ...small, cached: true });
    assert.equal(cache.lookup('huge'), undefined);
    assert.equal(cache.stats().evictions, 0);
    // Exactly maxBytes fits.
    const exact = new ExecutionCache({ ...OPTS, maxBytes: sizeOf(small) });
    assert.equal(exact.store('a', small), true);
  });

  void it('does not store uncacheable statuses, and stores every other status', () => {
    const cache = new ExecutionCache(OPTS);
    for (const status of STATUSES) {
      const stored = cache.store(status, result({ status }));
      assert.equal(stored, !UNCACHEABLE_STATUSES.has(status), status);
      assert.equal(cache.lookup(status) !== undefined, stored, status);
    }
    const never: RunStatus[] = ['timeout', 'cancelled', 'internal_error', 'rejected'];
    for (const status of never) assert.equal(cache.store('x', result({ status })), false);
    assert.equal(cache.stats().entries, STATUSES.length - never.length);
  });

  void it('when disabled, stores nothing and counts nothing', () => {
    const cache = new ExecutionCache({ ...OPTS, enabled: false });
    assert.equal(cache.store('k', result()), false);
    assert.equal(cache.lookup('k'), undefined);
    assert.deepEqual(cache.stats(), {
      enabled: false,
      hits: 0,
      misses: 0,
      hitRate: 0,
      entries: 0,
      bytes: 0,
      evictions: 0,
      maxEntries: 100,
      maxBytes: 1_000_000,
      ttlMs: 60_000,
    });
    assert.equal(cache.clear(), 0);
  });

  void it('clear drops every entry, answers how many, and keeps the counters', () => {
    const cache = new ExecutionCache(OPTS);
    cache.store('a', result());
    cache.store('b', result());
    cache.lookup('a');
    assert.equal(cache.clear(), 2);
    assert.equal(cache.lookup('a'), undefined);
    const s = cache.stats();
    assert.equal(s.entries, 0);
    assert.equal(s.bytes, 0);
    assert.equal(s.evictions, 0, 'clearing is not evicting');
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
    assert.equal(cache.clear(), 0);
  });

  void it('configure: disabling drops everything, re-enabling starts empty', () => {
    const cache = new ExecutionCache(OPTS);
    cache.store('a', result());
    cache.configure({ ...OPTS, enabled: false });
    assert.equal(cache.stats().enabled, false);
    assert.equal(cache.stats().entries, 0);
    assert.equal(cache.lookup('a'), undefined);
    cache.configure(OPTS);
    assert.equal(cache.lookup('a'), undefined);
    assert.equal(cache.store('a', result()), true);
    assert.ok(cache.lookup('a'));
  });

  void it('configure: a smaller maxEntries keeps the most recently used entries and counts the rest as evictions', () => {
    const cache = new ExecutionCache(OPTS);
    for (const k of ['a', 'b', 'c', 'd']) cache.store(k, result());
    cache.lookup('a'); // recency, oldest first: b c d a
    cache.configure({ ...OPTS, maxEntries: 2 });
    const s = cache.stats();
    assert.equal(s.maxEntries, 2);
    assert.equal(s.entries, 2);
    assert.equal(s.evictions, 2);
    assert.equal(cache.lookup('b'), undefined);
    assert.equal(cache.lookup('c'), undefined);
    assert.ok(cache.lookup('d'));
    assert.ok(cache.lookup('a'));
  });

  void it('configure: a smaller maxBytes drops what no longer fits', () => {
    const size = sizeOf(result());
    const cache = new ExecutionCache(OPTS);
    cache.store('a', result());
    cache.store('b', result());
    cache.store('c', result());
    cache.configure({ ...OPTS, maxBytes: size });
    const s = cache.stats();
    assert.equal(s.entries, 1);
    assert.equal(s.bytes, size);
    assert.equal(s.maxBytes, size);
    assert.ok(cache.lookup('c'));
  });

  void it('configure: entries keep their age under a new TTL', () => {
    const c = clock();
    const cache = new ExecutionCache({ ...OPTS, ttlMs: 10_000 }, c.now);
    cache.store('old', result());
    c.advance(600);
    cache.store('new', result());
    c.advance(100); // old is 700 ms old, new is 100 ms old
    cache.configure({ ...OPTS, ttlMs: 500 });
    assert.equal(cache.stats().ttlMs, 500);
    assert.equal(cache.lookup('old'), undefined, 'already past the new TTL');
    assert.ok(cache.lookup('new'));
    c.advance(401);
    assert.equal(cache.lookup('new'), undefined);
    assert.equal(cache.stats().evictions, 0);
  });

  void it('an expired entry pushed out by the count bound is not counted as an eviction', () => {
    const c = clock();
    const cache = new ExecutionCache({ ...OPTS, maxEntries: 1, ttlMs: 100 }, c.now);
    cache.store('a', result());
    c.advance(101);
    cache.store('b', result());
    assert.equal(cache.stats().evictions, 0);
    c.advance(50);
    cache.store('c', result());
    assert.equal(cache.stats().evictions, 1);
  });

  void it('rejects invalid limits', () => {
    assert.throws(() => new ExecutionCache({ ...OPTS, maxEntries: 0 }), RangeError);
    assert.throws(() => new ExecutionCache({ ...OPTS, maxBytes: 0 }), RangeError);
    assert.throws(() => new ExecutionCache({ ...OPTS, ttlMs: -1 }), RangeError);
    const cache = new ExecutionCache(OPTS);
    assert.throws(() => cache.configure({ ...OPTS, maxEntries: 1.5 }), RangeError);
    assert.equal(cache.stats().maxEntries, 100, 'a rejected configure changes nothing');
  });
});

void describe('cacheKey', () => {
  const base: CacheKeyParts = {
    language: 'python',
    binary: '/usr/bin/python3.12',
    version: '3.12.3',
    code: 'print(input())',
    stdin: 'x',
    args: ['a', 'b'],
    limits: { timeoutMs: 5_000, cpuMs: 5_000, memoryMb: 256, outputBytes: 1_048_576, processes: 64, fileSizeMb: 64, openFiles: 256, diskMb: 64 },
    isolation: 'process',
  };

  void it('is a sha256 hex digest, equal for equal parts', () => {
    const key = cacheKey(base);
    assert.match(key, /^[0-9a-f]{64}$/);
    const copy: CacheKeyParts = structuredClone(base);
    assert.equal(cacheKey(copy), key);
    // Property order of the inputs does not matter.
    const reordered: CacheKeyParts = {
      isolation: 'process',
      limits: { diskMb: 64, openFiles: 256, fileSizeMb: 64, processes: 64, outputBytes: 1_048_576, memoryMb: 256, cpuMs: 5_000, timeoutMs: 5_000 },
      args: ['a', 'b'],
      stdin: 'x',
      code: 'print(input())',
      version: '3.12.3',
      binary: '/usr/bin/python3.12',
      language: 'python',
    };
    assert.equal(cacheKey(reordered), key);
  });

  const variants: [string, CacheKeyParts][] = [
    ['language', { ...base, language: 'python3' }],
    ['binary', { ...base, binary: '/usr/bin/python3.11' }],
    ['version', { ...base, version: '3.12.4' }],
    ['code', { ...base, code: 'print(input()) ' }],
    ['stdin', { ...base, stdin: 'y' }],
    ['stdin null', { ...base, stdin: null }],
    ['stdin empty', { ...base, stdin: '' }],
    ['first arg', { ...base, args: ['A', 'b'] }],
    ['second arg', { ...base, args: ['a', 'B'] }],
    ['extra arg', { ...base, args: ['a', 'b', ''] }],
    ['no args', { ...base, args: [] }],
    ['arg boundary', { ...base, args: ['a b'] }],
    ['arg boundary without space', { ...base, args: ['ab'] }],
    ['timeoutMs', { ...base, limits: { ...base.limits, timeoutMs: 5_001 } }],
    ['memoryMb', { ...base, limits: { ...base.limits, memoryMb: 257 } }],
    ['outputBytes', { ...base, limits: { ...base.limits, outputBytes: 1_048_577 } }],
    ['isolation', { ...base, isolation: 'bwrap' }],
  ];

  for (const [name, parts] of variants) {
    void it(`changes when ${name} changes`, () => {
      assert.notEqual(cacheKey(parts), cacheKey(base));
    });
  }

  void it('gives every variant a distinct key', () => {
    const keys = new Set([base, ...variants.map(([, p]) => p)].map(cacheKey));
    assert.equal(keys.size, variants.length + 1);
  });

  void it('distinguishes null stdin from empty stdin and from the string "null"', () => {
    const keys = [null, '', 'null'].map((stdin) => cacheKey({ ...base, stdin }));
    assert.equal(new Set(keys).size, 3);
  });

  void it('keeps part boundaries unambiguous across neighbouring fields', () => {
    // Moving characters between adjacent fields must not collide.
    const a = cacheKey({ ...base, language: 'py', binary: 'thon' });
    const b = cacheKey({ ...base, language: 'pyt', binary: 'hon' });
    assert.notEqual(a, b);
    const c = cacheKey({ ...base, code: 'x', stdin: 'y' });
    const d = cacheKey({ ...base, code: 'xy', stdin: '' });
    assert.notEqual(c, d);
    const e = cacheKey({ ...base, args: ['a","b'] });
    const f = cacheKey({ ...base, args: ['a', 'b'] });
    assert.notEqual(e, f);
  });
});
