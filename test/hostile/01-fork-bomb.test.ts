/**
 * Hostile case 1: fork and thread bombs. The pids cgroup (RLIMIT_NPROC does not hold for a root server) and the PID
 * namespace hold them: the run ends with a verdict within its wall limit, the host can still start processes while
 * the bomb presses against the limit, and nothing of the run is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecuteParams, RunStatus } from '../../server/protocol';
import { waitFor } from '../helpers/server';
import { assertContained, hostileRun, hostileServer, workerCgroups, type HostileServer, type RunOutcome } from './harness';

const PROCESSES = 32;
const TIMEOUT_MS = 1500;
const LIMITS = { timeoutMs: TIMEOUT_MS, processes: PROCESSES, memoryMb: 256 };

/** How often forks were refused by the server's worker pids cgroups (`max` in pids.events), summed. The count
 *  only grows: a run hit its limit when the sum rose while it ran. */
function pidsRefusals(serverPid: number): number {
  let refused = 0;
  for (const dir of workerCgroups(serverPid).filter((d) => d.split(path.sep).includes('pids'))) {
    try {
      refused += Number(/^max (\d+)$/m.exec(readFileSync(path.join(dir, 'pids.events'), 'utf8'))?.[1] ?? 0);
    } catch {
      // removed meanwhile
    }
  }
  return refused;
}

/**
 * Runs a bomb that keeps pressing: while it runs, waits until its pids cgroup has refused a fork (the bomb really
 * hit the limit), then proves the host can still start a process. Resolves with the run's outcome.
 */
async function sustainedBomb(h: HostileServer, params: ExecuteParams): Promise<RunOutcome> {
  const serverPid = h.server.proc.pid!;
  const before = pidsRefusals(serverPid);
  const running = hostileRun(h, params);
  let ended = false;
  void running.finally(() => (ended = true));
  await waitFor(() => ended || pidsRefusals(serverPid) > before, 'the bomb to hit the pids limit', TIMEOUT_MS);
  assert.ok(!ended, 'the run ended before its pids cgroup refused a fork: the bomb never hit the limit');
  const host = spawnSync('/bin/true', { timeout: 5000 });
  assert.equal(host.status, 0, `the host could not start a process during the bomb: ${host.error?.message ?? host.signal}`);
  return running;
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

  void test('bash :(){ :|:& };: kept alive: hits the pids limit, the host still spawns, timeout', async () => {
    const run = await sustainedBomb(h, { language: 'shell', code: ':(){ :|:& };:\nsleep 30', limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
  });

  void test('bash while true; do sleep 1 & done: hits the pids limit, the host still spawns, timeout', async () => {
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

  void test('python fork loop that survives EAGAIN: hits the pids limit, the host still spawns, timeout', async () => {
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

  void test('C for (;;) fork(): hits the pids limit, the host still spawns, timeout', async () => {
    const code = '#include <unistd.h>\nint main(void) { for (;;) fork(); }\n';
    const run = await sustainedBomb(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'timeout', limitMs: TIMEOUT_MS });
  });
});
