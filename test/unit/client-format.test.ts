import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  batchSummaryLine,
  findingLines,
  findingsCount,
  runNotification,
  sandboxDetails,
  sandboxSummary,
  statusBarText,
  statusBarTooltip,
  summaryLine,
} from '../../client/format';
import { STATUSES, type ExecutionResult, type Finding, type Metrics, type SandboxInfo } from '../../server/protocol';
import { sampleMetrics } from '../helpers/metrics';
import { sampleResult } from '../helpers/results';

function result(over: Partial<ExecutionResult> = {}): ExecutionResult {
  return sampleResult({ stdout: 'hi\n', durationMs: 23.4, cpuMs: 20, peakMemoryBytes: 9.8 * 1024 * 1024, ...over });
}

const metrics: Metrics = sampleMetrics({
  pool: { size: 4, busy: 1, idle: 3, queued: 0, queueLimit: 256 },
  workers: [{ id: 'w1', busy: true, runs: 4, failures: 1, busyMs: 160, utilisation: 0.25 }],
  cache: { enabled: true, hits: 1, misses: 3, hitRate: 0.25, entries: 3, bytes: 1024, evictions: 0, maxEntries: 500, maxBytes: 67108864, ttlMs: 600000 },
  recentRuns: [{ runId: 'r4', language: 'python', status: 'timeout', durationMs: 100, cpuMs: 1, peakMemoryBytes: 1048576, cached: false, workerId: 'w1', finishedAt: 0 }],
  server: { pid: 42, rssBytes: 50 * 1024 * 1024, heapUsedBytes: 1 },
});

const network: Finding = { ruleId: 'network', message: 'opens a network connection (socket.socket)', line: 3, column: 1, severity: 'warning' };
const subprocess: Finding = { ruleId: 'subprocess', message: 'starts another program\n(subprocess.run)', line: 7, severity: 'warning' };

const bwrapInfo: SandboxInfo = {
  isolation: 'bwrap',
  reason: 'bubblewrap 0.9.0 works here',
  bwrap: '/usr/bin/bwrap',
  cgroup: 'v2',
  hostUser: { mode: 'dedicated', description: 'uid 1900000000+ / gid 1900000000+, one per pool worker' },
  seccomp: ['deny ptrace: tracing', 'deny keyctl: kernel keyrings', 'enosys clone3: flags'],
  enforcement: {
    memory: 'memory cgroup',
    processes: 'pids cgroup',
    cpu: 'RLIMIT_CPU',
    wall: 'timer kills the whole sandbox (PID namespace)',
    disk: 'tmpfs size',
  },
  maxLimits: { timeoutMs: 600000, cpuMs: 600000, memoryMb: 8192, outputBytes: 67108864, processes: 1024, fileSizeMb: 1024, openFiles: 4096, diskMb: 1024 },
};
const processInfo: SandboxInfo = {
  ...bwrapInfo,
  isolation: 'process',
  reason: 'bwrap (Debian package bubblewrap) was not found on PATH',
  bwrap: null,
  cgroup: null,
  hostUser: null,
  seccomp: [],
  enforcement: { memory: 'RLIMIT_AS + RSS watchdog', processes: 'RLIMIT_NPROC', cpu: 'RLIMIT_CPU', wall: 'timer', disk: 'none' },
};

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

  it('counts the findings of the security scan', () => {
    assert.equal(
      summaryLine(result({ findings: [network] }), 'net.py'),
      '[sandbox] net.py: ok · exit 0 · 23 ms · cpu 20 ms · peak 9.8 MiB · not cached · isolation process · 1 finding',
    );
    assert.match(summaryLine(result({ findings: [network, subprocess] }), 'a.py'), / · isolation process · 2 findings$/);
    assert.doesNotMatch(summaryLine(result({ findings: [] }), 'a.py'), /finding/);
    assert.equal(findingsCount(0), '0 findings');
  });

  it('says when a rate-limited run may be retried', () => {
    const line = summaryLine(
      result({ status: 'rejected', exitCode: null, durationMs: 0, cpuMs: 0, peakMemoryBytes: 0, retryAfterMs: 249.6, message: 'rate limit: too many requests' }),
      'a.py',
    );
    assert.equal(line, '[sandbox] a.py: rejected · not cached · isolation process · retry in 250 ms · rate limit: too many requests');
    // The server's own message says when already: not said twice.
    assert.equal(
      summaryLine(result({ status: 'rejected', exitCode: null, durationMs: 0, cpuMs: 0, peakMemoryBytes: 0, retryAfterMs: 40, message: 'rate limit: too many requests; retry in 40 ms (rateLimit setting)' }), 'a.py'),
      '[sandbox] a.py: rejected · not cached · isolation process · rate limit: too many requests; retry in 40 ms (rateLimit setting)',
    );
    // Only a rejection has a retry.
    assert.doesNotMatch(summaryLine(result({ retryAfterMs: 5 }), 'a.py'), /retry/);
  });

  it('names the signal and truncated streams', () => {
    const line = summaryLine(result({ status: 'timeout', exitCode: null, signal: 'SIGKILL', stdoutTruncated: true }), 'loop.sh');
    assert.match(line, /timeout · killed by SIGKILL · .* · stdout truncated/);
  });
});

describe('findingLines', () => {
  it('gives one indented line per finding: line, rule and message on one line', () => {
    assert.deepEqual(findingLines(result({ findings: [network, subprocess] })), [
      '  line 3: network — opens a network connection (socket.socket)',
      '  line 7: subprocess — starts another program (subprocess.run)',
    ]);
    assert.deepEqual(findingLines(result()), []);
  });

  it('does not repeat findings a blocked run\'s message already lists', () => {
    const blocked = result({
      status: 'rejected',
      findings: [network, { ...network, line: 9, ruleId: 'dynamic-eval', message: 'runs text as code (eval)' }],
      message: 'blocked by the security scan (scanPolicy "block"):\nline 3: network — opens a network connection (socket.socket)',
    });
    assert.deepEqual(findingLines(blocked), ['  line 9: dynamic-eval — runs text as code (eval)']);
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

  it('shows in the tooltip how runs are sandboxed: mode and why, cgroup, what holds memory, processes and disk', () => {
    const tip = statusBarTooltip(metrics, 'bwrap', bwrapInfo).split('\n');
    assert.ok(tip.includes('Isolation: bwrap — bubblewrap 0.9.0 works here'), tip.join('\n'));
    assert.ok(tip.includes('cgroup: v2'));
    assert.ok(tip.includes('Memory: memory cgroup'));
    assert.ok(tip.includes('Processes: pids cgroup'));
    assert.ok(tip.includes('Disk: tmpfs size'));
    assert.ok(!tip.join('\n').includes('NOT'));
    assert.equal(tip.at(-1), 'Click to show metrics.');
  });

  it('says in the tooltip plainly, with the reason, that process-mode runs are not sandboxed', () => {
    const tip = statusBarTooltip(metrics, 'process', processInfo);
    assert.match(tip, /NOT a sandbox/);
    assert.match(tip, /^Why not sandboxed: bwrap \(Debian package bubblewrap\) was not found on PATH\.$/m);
    assert.match(tip, /^cgroup: none writable \(rlimits only\)$/m);
    assert.match(tip, /^Memory: RLIMIT_AS \+ RSS watchdog$/m);
    // The status bar text keeps its warning icon.
    assert.match(statusBarText(metrics, processInfo.isolation), /\$\(warning\) process$/);
  });

  it('leaves the sandbox out of the tooltip while no server is running', () => {
    assert.doesNotMatch(statusBarTooltip(undefined, undefined, undefined), /cgroup|Isolation/);
  });
});

describe('sandboxSummary and sandboxDetails', () => {
  it('puts the sandbox on one line for the log', () => {
    assert.equal(
      sandboxSummary(bwrapInfo),
      'sandbox: bwrap (bubblewrap 0.9.0 works here) · runs as uid 1900000000+ / gid 1900000000+, one per pool worker · seccomp 3 rules · cgroup v2 · memory: memory cgroup · processes: pids cgroup · disk: tmpfs size · cpu: RLIMIT_CPU · wall: timer kills the whole sandbox (PID namespace)',
    );
    assert.match(sandboxSummary(processInfo), /^sandbox: process — runs are NOT sandboxed \(bwrap \(Debian package bubblewrap\) was not found on PATH\)/);
    assert.match(sandboxSummary(undefined), /did not describe/);
  });

  it('warns when sandboxed programs run as the server\'s own uid', () => {
    const own = { ...bwrapInfo, hostUser: { mode: 'server' as const, description: "the server's own uid 1000: no range for me in /etc/subuid" } };
    assert.equal(sandboxDetails(own)[0], "Warning: runs as the server's own uid 1000: no range for me in /etc/subuid");
  });

  it('lists who runs the programs, the seccomp filter, the cgroup version and every enforced limit', () => {
    assert.deepEqual(sandboxDetails(bwrapInfo), [
      'Runs as: uid 1900000000+ / gid 1900000000+, one per pool worker',
      'Seccomp: 3 rules (ptrace, keyctl, clone3)',
      'cgroup: v2',
      'Memory: memory cgroup',
      'Processes: pids cgroup',
      'Disk: tmpfs size',
      'CPU time: RLIMIT_CPU',
      'Wall time: timer kills the whole sandbox (PID namespace)',
    ]);
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
