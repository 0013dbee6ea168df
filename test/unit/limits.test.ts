import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, DEFAULT_MAX_LIMITS, LANGUAGE_LIMITS, LimitError, resolveLimits, resolveMaxLimits } from '../../server/limits';

void describe('resolveLimits', () => {
  void it('takes built-in defaults, then the language, then the configured defaults, then the request', () => {
    const shell = resolveLimits('shell', undefined, undefined, DEFAULT_MAX_LIMITS);
    assert.equal(shell.processes, LANGUAGE_LIMITS.shell!.processes);
    assert.equal(shell.memoryMb, DEFAULT_LIMITS.memoryMb);
    const configured = resolveLimits('shell', { processes: 40, memoryMb: 300 }, undefined, DEFAULT_MAX_LIMITS);
    assert.equal(configured.processes, 40);
    assert.equal(configured.memoryMb, 300);
    const requested = resolveLimits('shell', { processes: 40, memoryMb: 300 }, { memoryMb: 100 }, DEFAULT_MAX_LIMITS);
    assert.equal(requested.memoryMb, 100);
    assert.equal(requested.processes, 40);
  });

  void it('lets cpuMs follow timeoutMs unless someone set it', () => {
    assert.equal(resolveLimits('python', undefined, { timeoutMs: 30_000 }, DEFAULT_MAX_LIMITS).cpuMs, 30_000);
    assert.equal(resolveLimits('python', { timeoutMs: 20_000 }, undefined, DEFAULT_MAX_LIMITS).cpuMs, 20_000);
    assert.equal(resolveLimits('python', { cpuMs: 2_000 }, { timeoutMs: 30_000 }, DEFAULT_MAX_LIMITS).cpuMs, 2_000);
    assert.equal(resolveLimits('python', undefined, { timeoutMs: 30_000, cpuMs: 500 }, DEFAULT_MAX_LIMITS).cpuMs, 500);
  });

  void it('lets a request lower a limit below the defaults', () => {
    const l = resolveLimits('python', undefined, { memoryMb: 16, processes: 2, diskMb: 1, openFiles: 8 }, DEFAULT_MAX_LIMITS);
    assert.deepEqual([l.memoryMb, l.processes, l.diskMb, l.openFiles], [16, 2, 1, 8]);
  });

  void it('rejects a request above a maximum, naming the limit and the maximum', () => {
    const max = resolveMaxLimits({ memoryMb: 1024 });
    assert.throws(() => resolveLimits('python', undefined, { memoryMb: 2048 }, max), (e: unknown) => {
      assert.ok(e instanceof LimitError);
      assert.match(e.message, /limits\.memoryMb 2048 is above .*maxLimits\.memoryMb = 1024/);
      return true;
    });
    // Up to the maximum itself is allowed.
    assert.equal(resolveLimits('python', undefined, { memoryMb: 1024 }, max).memoryMb, 1024);
  });

  void it('brings configured defaults above a maximum down to it', () => {
    const max = resolveMaxLimits({ timeoutMs: 5_000 });
    const l = resolveLimits('python', { timeoutMs: 60_000 }, undefined, max);
    assert.equal(l.timeoutMs, 5_000);
    assert.equal(l.cpuMs, 5_000);
  });

  void it('has a default and a maximum for every limit, defaults within the maxima', () => {
    for (const [name, value] of Object.entries(DEFAULT_LIMITS)) {
      const max = DEFAULT_MAX_LIMITS[name as keyof typeof DEFAULT_MAX_LIMITS];
      assert.ok(value <= max, `${name}: default ${value} > max ${max}`);
    }
    assert.deepEqual(Object.keys(DEFAULT_MAX_LIMITS).sort(), Object.keys(DEFAULT_LIMITS).sort());
  });
});
