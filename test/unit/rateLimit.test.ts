import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../server/rateLimit';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

/** A manual clock: tests move time explicitly instead of sleeping. */
function clock(start = 5_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Takes one token `times` times and counts the successes. */
function takeMany(b: TokenBucket, times: number): number {
  let ok = 0;
  for (let i = 0; i < times; i++) if (b.take().ok) ok++;
  return ok;
}

void describe('TokenBucket', () => {
  void it('starts full: exactly `burst` requests pass at once, the next is refused', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 5, burst: 10, now: c.now });
    assert.equal(takeMany(b, 10), 10);
    const r = b.take();
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.retryAfterMs === 200, `one token at 5/s is 200 ms away, got ${JSON.stringify(r)}`);
  });

  void it('perSecond 0 is unlimited', () => {
    const b = new TokenBucket({ perSecond: 0, burst: 1, now: clock().now });
    assert.equal(takeMany(b, 10_000), 10_000);
    assert.deepEqual(b.take(1_000_000), { ok: true });
    assert.equal(b.available(), Number.POSITIVE_INFINITY);
  });

  void it('refills at perSecond, never above burst', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 10, burst: 3, now: c.now });
    assert.equal(takeMany(b, 3), 3);
    assert.equal(b.take().ok, false);
    c.advance(100); // one token
    assert.equal(takeMany(b, 5), 1);
    c.advance(60_000); // far more than burst
    assert.equal(b.available(), 3);
    assert.equal(takeMany(b, 5), 3);
  });

  void it('retryAfterMs is the time until n tokens are there, rounded up: waiting that long is enough', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 3, burst: 4, now: c.now });
    assert.equal(takeMany(b, 4), 4);
    const r = b.take(2);
    assert.ok(!r.ok);
    assert.equal(r.retryAfterMs, 667, '2 tokens at 3/s: 666.67 ms, rounded up');
    c.advance(r.retryAfterMs - 1);
    assert.equal(b.take(2).ok, false, 'one ms short is still too early');
    c.advance(1);
    assert.equal(b.take(2).ok, true);
  });

  void it('a refusal takes nothing, and partial tokens count toward the wait', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 4, burst: 2, now: c.now });
    assert.equal(takeMany(b, 2), 2);
    c.advance(125); // half a token
    const r = b.take();
    assert.ok(!r.ok);
    assert.equal(r.retryAfterMs, 125);
    for (let i = 0; i < 100; i++) assert.equal(b.take().ok, false); // refusals do not dig a deeper hole
    c.advance(125);
    assert.equal(b.take().ok, true);
  });

  void it('retryAfterMs is at least 1 ms, even when the shortfall is tiny', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 1_000_000, burst: 1, now: c.now });
    assert.equal(b.take().ok, true);
    const r = b.take();
    assert.ok(!r.ok);
    assert.equal(r.retryAfterMs, 1);
  });

  void it('many small steps add up to whole tokens (no rounding drift)', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 10, burst: 1, now: c.now });
    assert.equal(b.take().ok, true);
    for (let i = 0; i < 10; i++) c.advance(10); // 10 × 0.1 tokens in floating point
    assert.equal(b.take().ok, true);
  });

  void it('a clock that steps back refills nothing and breaks nothing', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 1, burst: 1, now: c.now });
    assert.equal(b.take().ok, true);
    c.advance(-10_000);
    assert.equal(b.take().ok, false);
    c.advance(1000);
    assert.equal(b.take().ok, true);
  });

  void it('n: 0 always passes, n above burst is a RangeError, bad numbers are RangeErrors', () => {
    const b = new TokenBucket({ perSecond: 1, burst: 2, now: clock().now });
    assert.equal(takeMany(b, 2), 2);
    assert.deepEqual(b.take(0), { ok: true });
    assert.throws(() => b.take(3), RangeError);
    assert.throws(() => b.take(-1), RangeError);
    assert.throws(() => b.take(Number.NaN), RangeError);
    assert.throws(() => new TokenBucket({ perSecond: -1, burst: 1 }), RangeError);
    assert.throws(() => new TokenBucket({ perSecond: Number.POSITIVE_INFINITY, burst: 1 }), RangeError);
    assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }), RangeError);
    assert.doesNotThrow(() => new TokenBucket({ perSecond: 0, burst: 0 }), 'burst does not matter when unlimited');
  });

  void it('configure: a lower burst caps the tokens; earned tokens are kept; a new rate applies from now', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 10, burst: 10, now: c.now });
    b.configure({ burst: 2 });
    assert.equal(b.burst, 2);
    assert.equal(b.perSecond, 10);
    assert.equal(takeMany(b, 5), 2);
    c.advance(100); // 1 token at the old rate
    b.configure({ perSecond: 1 });
    assert.equal(takeMany(b, 5), 1, 'the token earned before the change is kept');
    c.advance(100); // 0.1 token at the new rate
    const r = b.take();
    assert.ok(!r.ok);
    assert.equal(r.retryAfterMs, 900);
    assert.throws(() => b.configure({ perSecond: -5 }), RangeError);
    assert.equal(b.perSecond, 1, 'a bad configure changes nothing');
  });

  void it('configure: unlimited → limited starts full; limited → unlimited lets everything through', () => {
    const c = clock();
    const b = new TokenBucket({ perSecond: 0, burst: 1, now: c.now });
    assert.equal(takeMany(b, 100), 100);
    b.configure({ perSecond: 2, burst: 3 });
    assert.equal(takeMany(b, 10), 3);
    b.configure({ perSecond: 0 });
    assert.equal(takeMany(b, 100), 100);
  });

  void it('uses a real monotonic clock by default', () => {
    const b = new TokenBucket({ perSecond: 1, burst: 1 });
    assert.equal(b.take().ok, true);
    const r = b.take();
    assert.ok(!r.ok && r.retryAfterMs >= 1 && r.retryAfterMs <= 1000);
  });
});
