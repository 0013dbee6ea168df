import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRecorder } from '../../server/metrics';
import type { PoolView } from '../../server/metrics';
import { STATUSES } from '../../server/protocol';
import type { CacheStats, RunRecord } from '../../server/protocol';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

function clock(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

const pool: PoolView = {
  status: () => ({ size: 4, busy: 2, idle: 2, queued: 3, queueLimit: 10 }),
  workers: () => [{ id: 'w1', busy: true, runs: 5, failures: 1, busyMs: 500, utilisation: 0.5 }],
  peakConcurrency: 4,
};

const cacheStats: CacheStats = {
  enabled: true,
  hits: 3,
  misses: 1,
  hitRate: 0.75,
  entries: 2,
  bytes: 300,
  evictions: 0,
  maxEntries: 100,
  maxBytes: 1000,
  ttlMs: 60_000,
};

let seq = 0;
function run(overrides: Partial<RunRecord> = {}): RunRecord {
  seq++;
  return {
    runId: `r${seq}`,
    language: 'python',
    status: 'ok',
    durationMs: 10,
    cpuMs: 8,
    peakMemoryBytes: 1_000,
    cached: false,
    workerId: 'w1',
    finishedAt: 0,
    ...overrides,
  };
}

/** Shuffles deterministically, so order-sensitive bugs show up without making the test flaky. */
function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

void describe('MetricsRecorder', () => {
  void it('starts with zeros, every status present, and passes pool and cache through', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now });
    c.advance(1_234);
    const s = m.snapshot(pool, cacheStats);
    assert.equal(s.uptimeMs, 1_234);
    assert.equal(s.runsTotal, 0);
    assert.deepEqual(Object.keys(s.runsByStatus).sort(), [...STATUSES].sort());
    assert.ok(Object.values(s.runsByStatus).every((n) => n === 0));
    assert.deepEqual(s.durationMs, { avg: 0, p50: 0, p95: 0, max: 0 });
    assert.equal(s.runsPerMinute, 0);
    assert.equal(s.peakMemoryBytes, 0);
    assert.equal(s.peakConcurrency, 4);
    assert.equal(s.queueLength, 3);
    assert.deepEqual(s.pool, pool.status());
    assert.deepEqual(s.workers, pool.workers());
    assert.deepEqual(s.cache, cacheStats);
    assert.deepEqual(s.recentRuns, []);
  });

  void it('computes avg, nearest-rank p50/p95 and max: 1..100 gives 50 and 95', () => {
    const m = new MetricsRecorder({ now: clock().now });
    for (const d of shuffled(Array.from({ length: 100 }, (_, i) => i + 1))) m.record(run({ durationMs: d }));
    assert.deepEqual(m.snapshot(pool, cacheStats).durationMs, { avg: 50.5, p50: 50, p95: 95, max: 100 });
  });

  void it('uses nearest rank on small and uneven samples', () => {
    const cases: [number[], { p50: number; p95: number }][] = [
      [[7], { p50: 7, p95: 7 }],
      [[1, 2], { p50: 1, p95: 2 }],
      [[3, 1, 2], { p50: 2, p95: 3 }],
      [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { p50: 5, p95: 10 }],
      // 0.95 × 11 = 10.45: nearest rank rounds the rank up (11th), not to the nearest (10th).
      [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], { p50: 6, p95: 11 }],
      // A numeric sort, not a string sort: "100" < "9" as strings.
      [[9, 100, 20, 3], { p50: 9, p95: 100 }],
    ];
    for (const [durations, expected] of cases) {
      const m = new MetricsRecorder({ now: clock().now });
      for (const d of durations) m.record(run({ durationMs: d }));
      const { p50, p95 } = m.snapshot(pool, cacheStats).durationMs;
      assert.deepEqual({ p50, p95 }, expected, durations.join(','));
    }
  });

  void it('takes percentiles over the last sampleSize runs, avg and max over all runs', () => {
    const m = new MetricsRecorder({ now: clock().now, sampleSize: 10 });
    m.record(run({ durationMs: 1_000 })); // leaves the sample, stays in avg and max
    for (let d = 1; d <= 10; d++) m.record(run({ durationMs: d }));
    const { avg, p50, p95, max } = m.snapshot(pool, cacheStats).durationMs;
    assert.equal(p50, 5);
    assert.equal(p95, 10);
    assert.equal(max, 1_000);
    assert.equal(avg, (1_000 + 55) / 11);
  });

  void it('counts runs by status and tracks peak memory', () => {
    const m = new MetricsRecorder({ now: clock().now });
    m.record(run({ status: 'ok', peakMemoryBytes: 10 }));
    m.record(run({ status: 'ok', peakMemoryBytes: 5_000 }));
    m.record(run({ status: 'timeout', peakMemoryBytes: 20 }));
    m.record(run({ status: 'internal_error' }));
    const s = m.snapshot(pool, cacheStats);
    assert.equal(s.runsTotal, 4);
    assert.deepEqual(s.runsByStatus, {
      ok: 2,
      runtime_error: 0,
      timeout: 1,
      memory_limit: 0,
      output_limit: 0,
      compile_error: 0,
      rejected: 0,
      cancelled: 0,
      internal_error: 1,
    });
    assert.equal(s.peakMemoryBytes, 5_000);
    // The snapshot is a copy: changing it does not change the recorder.
    s.runsByStatus.ok = 99;
    assert.equal(m.snapshot(pool, cacheStats).runsByStatus.ok, 2);
  });

  void it('counts runs per minute over the 60 s before now() on the injected clock', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now });
    const t0 = c.now();
    m.record(run({ finishedAt: t0 - 60_000 })); // exactly 60 s old: outside
    m.record(run({ finishedAt: t0 - 59_999 }));
    m.record(run({ finishedAt: t0 - 30_000 }));
    m.record(run({ finishedAt: t0 }));
    m.record(run({ finishedAt: t0 }));
    const rpm = () => m.snapshot(pool, cacheStats).runsPerMinute;
    assert.equal(rpm(), 4);
    c.advance(1);
    assert.equal(rpm(), 3, 'the run at t0-59999 has left the window');
    c.advance(30_000);
    assert.equal(rpm(), 2);
    m.record(run({ finishedAt: c.now() }));
    assert.equal(rpm(), 3);
    c.advance(60_000);
    assert.equal(rpm(), 0);
    assert.equal(m.snapshot(pool, cacheStats).runsTotal, 6, 'the window does not affect the total');
  });

  void it('does not count a run stamped after now() until the clock reaches it', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now });
    m.record(run({ finishedAt: c.now() + 5_000 }));
    const rpm = () => m.snapshot(pool, cacheStats).runsPerMinute;
    assert.equal(rpm(), 0);
    c.advance(5_000);
    assert.equal(rpm(), 1);
  });

  void it('counts runs recorded out of finishing order in the right place of the window', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now });
    const t0 = c.now();
    for (const offset of [0, -50_000, -10_000, -50_000, -30_000, -10_000, -1]) {
      m.record(run({ finishedAt: t0 + offset }));
    }
    const rpm = () => m.snapshot(pool, cacheStats).runsPerMinute;
    assert.equal(rpm(), 7);
    c.advance(10_001); // the two at -50 000 leave
    assert.equal(rpm(), 5);
    c.advance(20_000); // the one at -30 000 leaves
    assert.equal(rpm(), 4);
    c.advance(20_000); // the two at -10 000 leave
    assert.equal(rpm(), 2);
  });

  void it('lists recent runs newest first, at most historySize, as copies', () => {
    const m = new MetricsRecorder({ now: clock().now, historySize: 3 });
    const records = [1, 2, 3, 4, 5].map((n) => run({ runId: `run${n}` }));
    for (const r of records.slice(0, 2)) m.record(r);
    assert.deepEqual(
      m.snapshot(pool, cacheStats).recentRuns.map((r) => r.runId),
      ['run2', 'run1'],
    );
    for (const r of records.slice(2)) m.record(r);
    const recent = m.snapshot(pool, cacheStats).recentRuns;
    assert.deepEqual(
      recent.map((r) => r.runId),
      ['run5', 'run4', 'run3'],
    );
    assert.deepEqual(recent[0], records[4]);
    records[4].status = 'timeout';
    recent[1].status = 'timeout';
    const again = m.snapshot(pool, cacheStats).recentRuns;
    assert.equal(again[0].status, 'ok');
    assert.equal(again[1].status, 'ok');
  });

  void it('keeps 20 recent runs by default', () => {
    const m = new MetricsRecorder({ now: clock().now });
    for (let i = 0; i < 25; i++) m.record(run({ runId: `run${i}` }));
    const recent = m.snapshot(pool, cacheStats).recentRuns;
    assert.equal(recent.length, 20);
    assert.equal(recent[0].runId, 'run24');
    assert.equal(recent[19].runId, 'run5');
  });

  void it('keeps its stores bounded however many runs are recorded', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now, sampleSize: 1_000 });
    for (let i = 0; i < 200_000; i++) {
      // 10 runs per ms, so 20 s of clock time: the window keeps one entry per ms, not per run.
      if (i % 10 === 0) c.advance(1);
      m.record(run({ durationMs: i % 1_000, finishedAt: c.now() }));
    }
    assert.equal(m.sampleCount, 1_000);
    assert.equal(m.windowEntries, 20_000);
    let s = m.snapshot(pool, cacheStats);
    assert.equal(s.runsTotal, 200_000);
    assert.equal(s.runsPerMinute, 200_000);
    assert.equal(s.recentRuns.length, 20);

    // Another 200 000 runs spread over 200 s: pruning caps the window at 60 s of entries.
    for (let i = 0; i < 200_000; i++) {
      c.advance(1);
      m.record(run({ durationMs: 1, finishedAt: c.now() }));
    }
    assert.equal(m.sampleCount, 1_000);
    // At most one pair per ms of the window, plus a pruned prefix no longer than the live part.
    assert.ok(m.windowEntries <= 2 * 60_000, `window holds ${m.windowEntries}`);
    s = m.snapshot(pool, cacheStats);
    assert.equal(s.runsPerMinute, 59_999 + 1); // (now - 60 s, now]
    assert.equal(s.durationMs.p95, 1);
  });

  void it('reset forgets recorded runs but not uptime', () => {
    const c = clock();
    const m = new MetricsRecorder({ now: c.now });
    m.record(run({ status: 'timeout', durationMs: 50, peakMemoryBytes: 9, finishedAt: c.now() }));
    c.advance(500);
    m.reset();
    const s = m.snapshot(pool, cacheStats);
    assert.equal(s.uptimeMs, 500);
    assert.equal(s.runsTotal, 0);
    assert.equal(s.runsByStatus.timeout, 0);
    assert.deepEqual(s.durationMs, { avg: 0, p50: 0, p95: 0, max: 0 });
    assert.equal(s.runsPerMinute, 0);
    assert.equal(s.peakMemoryBytes, 0);
    assert.deepEqual(s.recentRuns, []);
  });

  void it('rejects non-positive history and sample sizes', () => {
    assert.throws(() => new MetricsRecorder({ historySize: 0 }), RangeError);
    assert.throws(() => new MetricsRecorder({ sampleSize: 0 }), RangeError);
    assert.throws(() => new MetricsRecorder({ sampleSize: 2.5 }), RangeError);
  });
});
