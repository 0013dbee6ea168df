/**
 * Hostile case 1: fork and thread bombs. The processes limit holds them twice over: RLIMIT_NPROC of the sandbox user
 * (its own host uid, never root, whom the kernel would exempt) and, where one is writable, the pids cgroup; the PID
 * namespace takes them all down. The run ends with a verdict within its wall limit, the host can still start
 * processes while the bomb presses against the limit, and nothing of the run is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { ExecuteParams, RunStatus } from '../../server/protocol';
import { sandboxProcesses } from '../helpers/processes';
import { waitFor } from '../helpers/server';
import { assertContained, hostileRun, hostileServer, marker, type HostileServer, type RunOutcome } from './harness';

const PROCESSES = 32;
const TIMEOUT_MS = 1500;
const LIMITS = { timeoutMs: TIMEOUT_MS, processes: PROCESSES, memoryMb: 256 };

/**
 * Runs a bomb that keeps pressing: while it runs, waits until its sandbox holds as many processes as the limit allows
 * (seen from the host: pid 1 and the program's tree; the bomb really hit the limit), then proves the host can still
 * start a process. Resolves with the run's outcome.
 */
async function sustainedBomb(h: HostileServer, params: ExecuteParams): Promise<RunOutcome> {
  const m = marker();
  const running = hostileRun(h, params, undefined, m);
  let ended = false;
  let most = 0;
  void running.finally(() => (ended = true));
  await waitFor(() => ended || (most = Math.max(most, sandboxProcesses(m).length)) >= PROCESSES, 'the bomb to hit the processes limit', TIMEOUT_MS);
  assert.ok(!ended, `the run ended before it reached the processes limit (at most ${most} processes seen): the bomb never hit it`);
  const host = spawnSync('/bin/true', { timeout: 5000 });
  assert.equal(host.status, 0, `the host could not start a process during the bomb: ${host.error?.message ?? host.signal}`);
  const run = await running;
  assert.ok(most <= PROCESSES + 1, `${most} processes in the sandbox, limit ${PROCESSES} (+ pid 1)`);
  return run;
}

void describe('hostile 01: fork / thread bomb', { timeout: 90_000 }, () => {
  let h: HostileServer;
  before(async () => {
    h = await hostileServer();
  });
  after(async () => {
    await h?.close();
  });

  void test('bash :(){ :|:& };: (the script itself returns at once): contained, whatever its verdict', async () => {
    const run = await hostileRun(h, { language: 'shell', code: ':(){ :|:& };:', limits: LIMITS });
    await assertContained(h, run, { status: ['ok', 'runtime_error', 'timeout'], limitMs: TIMEOUT_MS });
  });

  void test('bash :(){ :|:& };: kept alive: hits the processes limit, the host still spawns, timeout', async () => {
    const run = await sustainedBomb(h, { language: 'shell', code: ':(){ :|:& };:\nsleep 30', limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
  });

  void test('bash while true; do sleep 1 & done: hits the processes limit, the host still spawns, timeout', async () => {
    const run = await sustainedBomb(h, { language: 'shell', code: 'while true; do sleep 1 & done', limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
    assert.match(run.result.stderr, /fork: (retry: )?Resource temporarily unavailable/, 'bash saw its forks refused');
  });

  void test('python while True: os.fork(): forks refused inside (EAGAIN), contained', async () => {
    const run = await hostileRun(h, { language: 'python', code: 'import os\nwhile True:\n    os.fork()\n', limits: LIMITS });
    const allowed: RunStatus[] = ['runtime_error', 'timeout'];
    await assertContained(h, run, { status: allowed, limitMs: TIMEOUT_MS });
    if (run.result.status === 'runtime_error') assert.match(run.result.stderr, /BlockingIOError|Resource temporarily unavailable/);
  });

  void test('python fork loop that survives EAGAIN: hits the processes limit, the host still spawns, timeout', async () => {
    const code = 'import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n';
    const run = await sustainedBomb(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
  });

  void test('python 10k threads: refused below the processes limit, contained', async () => {
    const code = [
      'import threading, time',
      'n = 0',
      'try:',
      '    for _ in range(10_000):',
      '        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()',
      '        n += 1',
      'except RuntimeError as e:',
      '    print("refused after", n, e, flush=True)',
      'import os; os._exit(0)',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    const n = Number(/refused after (\d+)/.exec(run.result.stdout)?.[1]);
    assert.ok(Number.isInteger(n), `the thread bomb was not refused: ${run.result.stdout}`);
    assert.ok(n < PROCESSES, `${n} threads started, limit ${PROCESSES}`);
  });

  void test('C for (;;) fork(): hits the processes limit, the host still spawns, timeout', async () => {
    const code = '#include <unistd.h>\nint main(void) { for (;;) fork(); }\n';
    const run = await sustainedBomb(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
  });
});
