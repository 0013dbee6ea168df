/**
 * Hostile case 12, CPU spin: a program that only burns CPU. The wall-clock timer ends it at its limit; with a CPU
 * limit below the wall limit, RLIMIT_CPU ends it first (SIGXCPU) and the message says which limit it was. A program
 * that ignores SIGXCPU runs on to the hard limit, where the kernel's SIGKILL ends it: still `timeout`, still the
 * CPU limit (not a `runtime_error`). Threads share one process's CPU limit; processes each have their own, so a
 * forking burner is held by the wall timer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer, type RunOutcome } from './harness';
import type { ExecuteParams } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 6 });
});
after(async () => {
  await h?.close();
});

interface Variant {
  name: string;
  params: ExecuteParams & { limits: { timeoutMs: number } };
  /** The message of the verdict. */
  says: RegExp;
  signal?: string;
  /** Ended by the CPU limit: before the wall timer could fire. */
  byCpu?: boolean;
}

/** Runs every variant at once (each is ended by a limit; none needs a CPU to itself to be judged), then checks each
 *  on its own: all are done before the first check looks for leftover processes. */
function group(title: string, variants: Variant[]): void {
  void describe(title, { timeout: SUITE_TIMEOUT_MS }, () => {
    let runs: RunOutcome[] = [];
    before(async () => {
      runs = await Promise.all(variants.map((v) => hostileRun(h, v.params)));
    });
    variants.forEach((v, i) => {
      test(v.name, async () => {
        const run = runs[i]!;
        const limitMs = v.params.limits.timeoutMs;
        await assertContained(h, run, { status: 'timeout', limitMs });
        assert.match(run.result.message ?? '', v.says);
        if (v.signal) assert.equal(run.result.signal, v.signal);
        if (v.byCpu) assert.ok(run.result.durationMs < limitMs, `the CPU limit, not the wall timer, ended it (${run.result.durationMs} ms)`);
        else assert.ok(run.result.durationMs >= limitMs, `ended after ${run.result.durationMs} ms, before its ${limitMs} ms wall limit`);
      });
    });
  });
}

const WALL_MS = 1500;
/** CPU limit far above the wall limit: only the wall timer can end these. */
const wall = { timeoutMs: WALL_MS, cpuMs: 60_000, memoryMb: 128 };
const byWall = /wall-clock limit of 1500 ms/;
group('wall-clock limited: timeout at the limit, not before', [
  { name: 'python while True: pass', params: { language: 'python', code: 'while True:\n    pass\n', limits: wall }, says: byWall, signal: 'SIGKILL' },
  { name: 'C for(;;);', params: { language: 'c', code: 'int main(void) { for (;;); }\n', limits: wall }, says: byWall, signal: 'SIGKILL' },
  { name: 'node while(true){}', params: { language: 'javascript', code: 'while (true) {}\n', limits: wall }, says: byWall, signal: 'SIGKILL' },
  { name: 'bash while :; do :; done', params: { language: 'shell', code: 'while :; do :; done\n', limits: wall }, says: byWall, signal: 'SIGKILL' },
  {
    // Each process has a CPU limit of its own (RLIMIT_CPU): four processes may burn 4 x cpuMs, but never past the
    // wall limit. Whichever limit ends it, the verdict is timeout within the wall limit.
    name: 'python multiprocessing, parent and three children burning, cpuMs 1000 each',
    params: {
      language: 'python',
      code: [
        'import multiprocessing as mp',
        'def burn():',
        '    while True:',
        '        pass',
        "if __name__ == '__main__':",
        '    for _ in range(3):',
        '        mp.Process(target=burn).start()',
        '    burn()',
        '',
      ].join('\n'),
      limits: { ...wall, cpuMs: 1000, processes: 32 },
    },
    says: /CPU time limit of 1000 ms|wall-clock limit of 1500 ms/,
  },
]);

/** A CPU limit below the wall limit. */
const cpu = { timeoutMs: 6000, cpuMs: 1000, memoryMb: 128 };
const byCpu = /CPU time limit of 1000 ms/;
const C_THREADS = `#include <pthread.h>
static void *burn(void *arg) { (void)arg; for (;;); return 0; }
int main(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, burn, 0);
  burn(0);
}
`;
group('CPU limited (cpuMs 1000 < timeoutMs): RLIMIT_CPU ends it before the wall timer, and the message says so', [
  { name: 'python while True: pass: SIGXCPU', params: { language: 'python', code: 'while True:\n    pass\n', limits: cpu }, says: byCpu, signal: 'SIGXCPU', byCpu: true },
  {
    // The CPU time of a process is that of all its threads: four burning threads reach the limit together.
    name: 'C, four threads burning: SIGXCPU',
    params: { language: 'c', code: C_THREADS, limits: { ...cpu, processes: 32 } },
    says: byCpu,
    signal: 'SIGXCPU',
    byCpu: true,
  },
  {
    // Past the soft limit the kernel sends SIGXCPU each second, and SIGKILL at the hard limit (soft + 1 s): still
    // the CPU limit, not a runtime error.
    name: 'python ignoring SIGXCPU: SIGKILL at the hard limit',
    params: { language: 'python', code: 'import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n', limits: cpu },
    says: byCpu,
    signal: 'SIGKILL',
    byCpu: true,
  },
  {
    name: 'C ignoring SIGXCPU: SIGKILL at the hard limit',
    params: { language: 'c', code: '#include <signal.h>\nint main(void) { signal(SIGXCPU, SIG_IGN); for (;;); }\n', limits: cpu },
    says: byCpu,
    signal: 'SIGKILL',
    byCpu: true,
  },
]);
