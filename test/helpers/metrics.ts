/** A Metrics snapshot with known figures, for tests of what the client shows. */
import { STATUSES, type Metrics } from '../../server/protocol';

export function sampleMetrics(over: Partial<Metrics> = {}): Metrics {
  return {
    uptimeMs: 61_000,
    runsTotal: 4,
    runsByStatus: { ...Object.fromEntries(STATUSES.map((s) => [s, 0])), ok: 3, timeout: 1 } as Metrics['runsByStatus'],
    durationMs: { avg: 40, p50: 30, p95: 90, max: 100 },
    runsPerMinute: 4,
    peakConcurrency: 2,
    peakMemoryBytes: 20 * 1024 * 1024,
    queueLength: 0,
    pool: { size: 2, busy: 1, idle: 1, queued: 3, queueLimit: 256 },
    workers: [
      { id: 'w1', busy: true, runs: 4, failures: 1, busyMs: 160, utilisation: 0.25 },
      { id: 'w2', busy: false, runs: 0, failures: 0, busyMs: 0, utilisation: 0 },
    ],
    cache: { enabled: true, hits: 1, misses: 3, hitRate: 0.25, entries: 3, bytes: 1024 * 1024, evictions: 2, maxEntries: 500, maxBytes: 64 * 1024 * 1024, ttlMs: 600000 },
    recentRuns: [
      { runId: 'r4', language: 'python', status: 'timeout', durationMs: 100, cpuMs: 1, peakMemoryBytes: 1048576, cached: false, workerId: 'w1', finishedAt: 0 },
      { runId: 'r3', language: 'shell', status: 'ok', durationMs: 3, cpuMs: 1, peakMemoryBytes: 2 * 1048576, cached: true, workerId: null, finishedAt: 0 },
    ],
    server: { pid: 42, rssBytes: 50 * 1024 * 1024, heapUsedBytes: 10 * 1024 * 1024 },
    ...over,
  };
}
