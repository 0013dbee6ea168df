import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  batchSummaryLine,
  runNotification,
  statusBarText,
  statusBarTooltip,
  summaryLine,
} from '../../client/format';
import { STATUSES, type ExecutionResult, type Metrics } from '../../server/protocol';
import { sampleMetrics } from '../helpers/metrics';

function result(over: Partial<ExecutionResult> = {}): ExecutionResult {
  return {
    runId: 'r1',
    language: 'python',
    status: 'ok',
    exitCode: 0,
    signal: null,
    stdout: 'hi\n',
    stderr: '',
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMs: 23.4,
    cpuMs: 20,
    peakMemoryBytes: 9.8 * 1024 * 1024,
    cached: false,
    workerId: 'w1',
    isolation: 'process',
    ...over,
  };
}

const metrics: Metrics = sampleMetrics({
  pool: { size: 4, busy: 1, idle: 3, queued: 0, queueLimit: 256 },
  workers: [{ id: 'w1', busy: true, runs: 4, failures: 1, busyMs: 160, utilisation: 0.25 }],
  cache: { enabled: true, hits: 1, misses: 3, hitRate: 0.25, entries: 3, bytes: 1024, evictions: 0, maxEntries: 500, maxBytes: 67108864, ttlMs: 600000 },
  recentRuns: [{ runId: 'r4', language: 'python', status: 'timeout', durationMs: 100, cpuMs: 1, peakMemoryBytes: 1048576, cached: false, workerId: 'w1', finishedAt: 0 }],
  server: { pid: 42, rssBytes: 50 * 1024 * 1024, heapUsedBytes: 1 },
});

describe('summaryLine', () => {
  it('names verdict, exit, time, CPU, peak memory, cache and isolation', () => {
    assert.equal(
      summaryLine(result(), 'hello.py'),
      '[sandbox] hello.py: ok · exit 0 · 23 ms · cpu 20 ms · peak 9.8 MiB · not cached · isolation process',
    );
  });

  it('says plainly that a cached result was not run again', () => {
    assert.match(summaryLine(result({ cached: true, workerId: null }), 'a.py'), / · cached \(not run again\) · /);
  });

  it('leaves out measurements of a program that never ran, and adds a one-line message', () => {
    const line = summaryLine(
      result({ status: 'rejected', exitCode: null, durationMs: 0, cpuMs: 0, peakMemoryBytes: 0, message: 'unknown language "x"' }),
      'a.x',
    );
    assert.equal(line, '[sandbox] a.x: rejected · not cached · isolation process · unknown language "x"');
  });

  it('keeps a multi-line compiler message out of the line', () => {
    const line = summaryLine(result({ status: 'compile_error', exitCode: null, durationMs: 0, cpuMs: 0, peakMemoryBytes: 0, message: 'a.c:1: error\n  int x' }), 'a.c');
    assert.equal(line, '[sandbox] a.c: compile_error · not cached · isolation process');
  });

  it('names the signal and truncated streams', () => {
    const line = summaryLine(result({ status: 'timeout', exitCode: null, signal: 'SIGKILL', stdoutTruncated: true }), 'loop.sh');
    assert.match(line, /timeout · killed by SIGKILL · .* · stdout truncated/);
  });
});

describe('runNotification', () => {
  it('stays quiet for a fresh ok run', () => {
    assert.equal(runNotification(result(), 'a.py'), undefined);
  });

  it('says a cached ok result was not run again', () => {
    const n = runNotification(result({ cached: true }), 'a.py');
    assert.equal(n?.severity, 'info');
    assert.match(n!.text, /from the cache — the program was not run again/);
  });

  it('has words for every verdict but ok', () => {
    for (const status of STATUSES.filter((s) => s !== 'ok')) {
      const n = runNotification(result({ status, exitCode: status === 'runtime_error' ? 3 : null }), 'a.py');
      assert.ok(n, status);
      assert.match(n.text, /^a\.py \w/);
      assert.ok(n.text.endsWith('.'), n.text);
    }
  });

  it('gives the exit code and the first line of a message', () => {
    assert.equal(runNotification(result({ status: 'runtime_error', exitCode: 3 }), 'a.py')?.text, 'a.py failed with a runtime error (exit 3).');
    assert.equal(
      runNotification(result({ status: 'compile_error', exitCode: null, message: '\na.c:1:1: error: x\nmore' }), 'a.c')?.text,
      'a.c did not compile: a.c:1:1: error: x.',
    );
    assert.equal(runNotification(result({ status: 'cancelled', exitCode: null }), 'a.py')?.severity, 'info');
    assert.equal(runNotification(result({ status: 'internal_error', exitCode: null }), 'a.py')?.severity, 'error');
  });
});

describe('status bar', () => {
  it('shows pool busy/size, cache hit rate and a warning for process isolation', () => {
    assert.equal(statusBarText(metrics, 'process'), '$(beaker) 1/4 busy cache 25% $(warning) process');
    assert.equal(statusBarText(metrics, 'bwrap'), '$(beaker) 1/4 busy cache 25% $(shield) bwrap');
    assert.equal(statusBarText({ ...metrics, pool: { ...metrics.pool, queued: 2 } }, undefined), '$(beaker) 1/4 busy +2 queued cache 25%');
    assert.equal(statusBarText({ ...metrics, cache: { ...metrics.cache, enabled: false } }, undefined), '$(beaker) 1/4 busy cache off');
    assert.equal(statusBarText(undefined, undefined), '$(beaker) –');
  });

  it('explains in the tooltip that process isolation is not a sandbox', () => {
    assert.match(statusBarTooltip(metrics, 'process'), /NOT a sandbox/);
    assert.match(statusBarTooltip(undefined, undefined), /Waiting/);
  });
});

describe('batchSummaryLine', () => {
  it('closes a batch with totals and the failing verdicts', () => {
    const line = batchSummaryLine({
      results: [],
      summary: { total: 3, ok: 2, failed: 1, cached: 1, byStatus: { ok: 2, timeout: 1 }, wallMs: 812.3, totalDurationMs: 900 },
    });
    assert.equal(line, '[sandbox] batch: 3 runs · 2 ok · 1 failed (timeout 1) · 1 cached · 812 ms');
  });
});
