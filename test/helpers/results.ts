/** One sample ExecutionResult for tests that need a result's shape (cache, formatting, test-run interpretation). */
import type { ExecutionResult } from '../../server/protocol';

export function sampleResult(over: Partial<ExecutionResult> = {}): ExecutionResult {
  return {
    runId: 'r1',
    language: 'python',
    status: 'ok',
    exitCode: 0,
    signal: null,
    stdout: 'hello\n',
    stderr: '',
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMs: 12,
    cpuMs: 10,
    peakMemoryBytes: 1_000_000,
    cached: false,
    workerId: 'w1',
    isolation: 'process',
    findings: [],
    ...over,
  };
}
