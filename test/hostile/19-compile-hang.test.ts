/**
 * Hostile case 19, compile-time hang: the compiler is the first reader of untrusted input. `#include "/dev/random"`
 * never ends, `#include </dev/zero>` and macro or template bombs blow up time and memory. The compile step runs in
 * the sandbox too, under the run's wall limit (and its own memory limit): the verdict is `compile_error` or
 * `timeout` within the limit, no compiler process is left, and the worker is free again (metrics: nothing busy,
 * and the next run is served).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer, type RunOutcome } from './harness';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { runProcessesOf } from '../helpers/processes';
import { workRootOf } from '../helpers/server';
import { MetricsRequest, type ExecuteParams, type RunStatus } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;
const LIMIT_MS = 2000;
const limits = { timeoutMs: LIMIT_MS, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 6 });
});
after(async () => {
  await h?.close();
});

/** 10 levels of 10-fold macro expansion: 10^10 tokens. */
const MACRO_BOMB = [
  '#define A0 (1+1+1+1+1+1+1+1+1+1)',
  ...Array.from({ length: 9 }, (_, i) => `#define A${i + 1} (${Array(10).fill(`A${i}`).join('+')})`),
  'long x = A9;',
  'int main(void) { return x & 1; }',
  '',
].join('\n');

/** 2^26 distinct instantiations, none deeper than 26: no depth limit stops it. */
const TEMPLATE_BOMB = `template <int N, long M> struct X { static const long v = X<N - 1, 2 * M>::v + X<N - 1, 2 * M + 1>::v; };
template <long M> struct X<0, M> { static const long v = M; };
int main() { return X<26, 1>::v & 1; }
`;

const CONSTEXPR_LOOP = `constexpr long f() { long s = 0; for (long i = 0; i < (1L << 62); i++) s += i; return s; }
constexpr long x = f();
int main() { return x & 1; }
`;

const variants: { name: string; params: ExecuteParams; status: RunStatus | RunStatus[]; says?: RegExp }[] = [
  { name: 'C: #include "/dev/random" never ends: timeout', params: { language: 'c', code: '#include "/dev/random"\nint main(void) { return 0; }\n' }, status: 'timeout', says: /compilation took longer than 2000 ms/ },
  { name: 'C: #include </dev/zero> eats memory', params: { language: 'c', code: '#include </dev/zero>\nint main(void) { return 0; }\n' }, status: ['compile_error', 'timeout'] },
  { name: 'C: a macro bomb (10^10 tokens)', params: { language: 'c', code: MACRO_BOMB }, status: ['compile_error', 'timeout'] },
  { name: 'C++: #include "/dev/random"', params: { language: 'cpp', code: '#include "/dev/random"\nint main() { return 0; }\n' }, status: 'timeout', says: /compilation took longer than 2000 ms/ },
  { name: 'C++: 2^26 template instantiations', params: { language: 'cpp', code: TEMPLATE_BOMB }, status: ['compile_error', 'timeout'] },
  { name: 'C++: a constexpr loop of 2^62 steps', params: { language: 'cpp', code: CONSTEXPR_LOOP }, status: ['compile_error', 'timeout'] },
];

void describe('compile-time hangs: compile_error or timeout within the limit, the worker freed', { timeout: SUITE_TIMEOUT_MS }, () => {
  let runs: RunOutcome[] = [];
  before(async () => {
    runs = await Promise.all(variants.map((v) => hostileRun(h, { ...v.params, limits })));
  });

  variants.forEach((v, i) => {
    test(v.name, async () => {
      const run = runs[i]!;
      await assertContained(h, run, { status: v.status, limitMs: LIMIT_MS });
      if (v.says) assert.match(run.result.message ?? '', v.says);
      assert.ok(run.result.message, 'a compile error or a compile timeout says what happened');
      assert.equal(run.result.stdout, '', 'the program never ran');
    });
  });

  test('afterwards: no compiler (nor anything else) below the server, and no worker busy', async () => {
    assert.deepEqual(runProcessesOf(h.server.proc.pid!), []);
    const m = await h.server.conn.sendRequest(MetricsRequest.type);
    assert.equal(m.pool.busy, 0, `busy workers: ${JSON.stringify(m.pool)}`);
    assert.equal(m.queueLength, 0);
    assert.equal(m.pool.idle, m.pool.size);
  });
});

void describe('tiny sources, huge binaries: what the server keeps of compiled programs is bounded', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('six sources of a line each compile to 48 MiB binaries: the server keeps at most 256 MiB of them', async () => {
    const one = await hostileServer({ poolSize: 1 });
    try {
      const sizes: number[] = [];
      for (let i = 0; i < 6; i++) {
        const code = `__asm__(".data\\n.globl blob\\nblob: .fill ${48 << 20},1,${i + 1}\\n");\nint main(void) { return 0; }\n`;
        const run = await hostileRun(one, { language: 'c', code, limits: { timeoutMs: 20_000, memoryMb: 256 } });
        await assertContained(one, run, { status: 'ok', limitMs: 20_000 });
        const bin = path.join(workRootOf(one.server.proc.pid!)!, 'bin');
        sizes.push(readdirSync(bin).reduce((n, f) => n + statSync(path.join(bin, f)).size, 0));
      }
      assert.ok(Math.max(...sizes) <= 256 * 1024 * 1024, `the server kept ${sizes.map((s) => Math.round(s / 1048576)).join(', ')} MiB of binaries`);
      assert.ok(sizes[4]! >= 4 * 48 * 1024 * 1024, `the cache kept less than it may: ${sizes.map((s) => Math.round(s / 1048576)).join(', ')} MiB`);
    } finally {
      await one.close();
    }
  });
});
