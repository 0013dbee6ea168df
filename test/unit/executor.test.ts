/**
 * The executor and the launcher, with real processes: how runs end, what the kernel accounted, that nothing of a
 * run outlives it. (The launcher binary comes from `npm run build`.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Executor, parseLaunchReport, signalName, type ExecSpec } from '../../server/executor';
import { membersOf, parseStat, privateMemoryBytes } from '../../server/processTree';
import { LAUNCHER, processesWith, waitFor } from '../helpers/server';

const executor = new Executor({ launcher: LAUNCHER, socketDir: mkdtempSync(path.join(os.tmpdir(), 'sbx-unit-sock-')) });
const base: Omit<ExecSpec, 'command' | 'args'> = {
  cwd: '/tmp',
  env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
  stdin: null,
  timeoutMs: 5000,
  memoryBytes: 512 * 1024 * 1024,
  outputBytes: 1024 * 1024,
};
const sh = (script: string, extra: Partial<ExecSpec> = {}): Promise<Awaited<ReturnType<Executor['run']>>> =>
  executor.run({ ...base, command: 'bash', args: ['-c', script], ...extra });

describe('launch report', () => {
  const report = (text: string, sandboxed = false) => parseLaunchReport(Buffer.from(text, 'latin1'), sandboxed);
  const frame = (inner: string) => `inner ${Buffer.byteLength(inner, 'latin1')}\n${inner}`;

  test('parses exit and rusage', () => {
    assert.deepEqual(report('exit 3\nrusage 1500 500 2048\n'), { exitCode: 3, cpuMs: 2, maxRssBytes: 2048 * 1024 });
  });
  test('parses a signal and an exec error', () => {
    const r = report('exec-error 2 /nope: No such file or directory\nsignal 9\n');
    assert.equal(r.signal, 9);
    assert.equal(r.execError, '/nope: No such file or directory');
    assert.equal(r.invalid, undefined);
  });
  test('takes what pid 1 said only from its frame, and only in a sandbox', () => {
    const r = report(`${frame('started\nsignal 9\nrusage 10 0 4\n')}exit 137\nrusage 20 0 8\n`, true);
    assert.deepEqual(r.inner, { started: true, signal: 9, cpuMs: 0.01, maxRssBytes: 4096 });
    assert.equal(r.exitCode, 137);
    assert.equal(r.invalid, undefined);
    // Outside a sandbox there is no pid 1 to speak: a frame is not a line of ours.
    assert.match(report(frame('exit 0\n')).invalid ?? '', /unexpected line "inner/);
  });
  test('a frame cannot smuggle a line of the launcher out: its bytes are pid 1\'s, counted', () => {
    // pid 1 "says" exit 0 and a second exit; the launcher's own exit follows the frame.
    const r = report(`${frame('exit 1\n')}exit 1\nrusage 0 0 0\n`, true);
    assert.equal(r.inner?.exitCode, 1);
    const forged = report(`${frame('exit 1\nexit 0\n')}exit 1\n`, true);
    assert.match(forged.invalid ?? '', /pid 1 of the sandbox: "exit" said twice/);
  });
  test('forged and unknown lines make the report invalid, never a verdict or a pid to kill', () => {
    for (const bad of ['pid 1\n', 'inner-exit 0\n', 'exit 0 extra\n', 'exit -1\n', 'exit 256\n', 'signal 99\n', 'rusage 1 2\n', 'rusage a b c\n', 'exit 0\nexit 0\n', 'exit 0']) {
      assert.ok(report(bad).invalid, `accepted ${JSON.stringify(bad)}`);
      assert.ok(report(frame(bad), true).invalid, `accepted from pid 1: ${JSON.stringify(bad)}`);
    }
    assert.ok(report(frame('exit 0\nsignal 9\n'), true).invalid, 'both an exit and a signal');
    assert.ok(report(frame('started\nstarted\n'), true).invalid, 'started twice');
    assert.ok(report(frame('started now\n'), true).invalid, 'started with words');
  });
  test('bounded: a frame over 4096 bytes, an overflow mark, a line over 512 bytes, a report over 16 KiB', () => {
    assert.match(report(`inner 5000\n${'x'.repeat(5000)}`, true).invalid ?? '', /a frame of 5000 bytes/);
    assert.match(report(`${frame('exit 0\n')}inner-overflow\n`, true).invalid ?? '', /more than 4096 bytes/);
    assert.match(report(`exec-error 1 ${'x'.repeat(600)}\n`).invalid ?? '', /a line of/);
    assert.match(report('exit 0\n'.repeat(3000)).invalid ?? '', /more than 16384 bytes/);
    assert.match(report(frame(`${'rusage 0 0 0\n'.repeat(9)}`), true).invalid ?? '', /9 lines|said twice/);
  });
  test('names signals', () => {
    assert.equal(signalName(9), 'SIGKILL');
    assert.equal(signalName(11), 'SIGSEGV');
    assert.equal(signalName(64), 'SIG64');
  });
});

describe('process tree', () => {
  test('privateMemoryBytes: a live process holds some memory of its own, less than its RSS; a gone one none', () => {
    const own = privateMemoryBytes(process.pid);
    const rss = process.memoryUsage().rss;
    assert.ok(own !== undefined && own > 1024 * 1024 && own <= rss, `private ${own}, rss ${rss}`);
    assert.equal(privateMemoryBytes(2 ** 30), undefined);
  });
  test('parseStat reads fields after the last parenthesis (names may hold spaces and parentheses)', () => {
    assert.deepEqual(parseStat(10, '10 (a b) c)) S 5 10 10 0 -1'), { pid: 10, ppid: 5, pgid: 10 });
    assert.equal(parseStat(10, 'garbage'), undefined);
  });
  test('membersOf takes the group and every descendant, even one that left the group', () => {
    const table = [
      { pid: 1, ppid: 0, pgid: 1 },
      { pid: 100, ppid: 50, pgid: 100 }, // root
      { pid: 101, ppid: 100, pgid: 100 },
      { pid: 102, ppid: 101, pgid: 102 }, // setsid'd grandchild
      { pid: 103, ppid: 102, pgid: 102 },
      { pid: 104, ppid: 1, pgid: 100 }, // orphan still in the group
      { pid: 200, ppid: 1, pgid: 200 }, // unrelated
    ];
    assert.deepEqual(membersOf(100, table).sort(), [100, 101, 102, 103, 104]);
  });
});

describe('executor', () => {
  test('the launcher was built', () => assert.ok(existsSync(LAUNCHER), `${LAUNCHER} missing: run npm run build`));

  test('exit code, stdout and stderr', async () => {
    const r = await sh('echo out; echo err >&2; exit 3');
    assert.equal(r.end, 'exited');
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, null);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
  });

  test('a program killed by a signal reports the signal', async () => {
    const r = await sh('kill -SEGV $$');
    assert.equal(r.end, 'exited');
    assert.equal(r.signal, 'SIGSEGV');
    assert.equal(r.exitCode, null);
  });

  test('a run that ends before the first sample still reports kernel CPU time and memory', async () => {
    const r = await executor.run({ ...base, command: 'true', args: [] });
    assert.equal(r.exitCode, 0);
    assert.ok(r.durationMs < 50, `true took ${r.durationMs} ms`);
    assert.ok(r.peakMemoryBytes > 100 * 1024, `peak ${r.peakMemoryBytes}`);
    const busy = await sh('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
    assert.ok(busy.cpuMs > 5, `cpu ${busy.cpuMs}`);
    assert.ok(busy.cpuMs <= busy.durationMs * 1.5 + 5, `cpu ${busy.cpuMs} vs wall ${busy.durationMs}`);
  });

  test('timeout kills the whole tree, children and grandchildren', async () => {
    const marker = `sbxexec-${randomUUID()}`;
    const t = performance.now();
    const r = await sh(`(exec -a ${marker} sleep 300) & (bash -c "exec -a ${marker} sleep 300" &) ; exec -a ${marker} sleep 300`, {
      timeoutMs: 300,
    });
    assert.equal(r.end, 'timeout');
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(performance.now() - t < 2300, 'ended soon after the limit');
    assert.deepEqual(await processesWith(marker), []);
  });

  test('background jobs of a program that exits are killed with it', async () => {
    const marker = `sbxbg-${randomUUID()}`;
    const r = await sh(`(exec -a ${marker} sleep 300) & echo done`);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'done\n');
    assert.deepEqual(await processesWith(marker), []);
  });

  test('a daemon (double fork + setsid) of a program that exits is swept with it', async () => {
    const marker = `sbxdaemon-${randomUUID()}`;
    const r = await sh(`(setsid bash -c "exec -a ${marker} sleep 300" &); echo parent-done`);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'parent-done\n');
    assert.deepEqual(await processesWith(marker), []);
  });

  test('streamed output and the result agree, even on invalid UTF-8 at the end', async () => {
    const streamed: string[] = [];
    const r = await sh(`printf 'ok \\xff'`, { onOutput: (_s, chunk) => streamed.push(chunk) });
    assert.equal(r.stdout, 'ok \uFFFD');
    assert.equal(streamed.join(''), r.stdout);
  });

  test('output is capped in bytes, per stream, and ends the run', async () => {
    const r = await sh('while :; do printf "é"; done', { outputBytes: 1001 });
    assert.equal(r.end, 'output_limit');
    assert.ok(r.stdoutTruncated);
    assert.ok(Buffer.byteLength(r.stdout) <= 1001, `stdout is ${Buffer.byteLength(r.stdout)} bytes`);
    const e = await sh('head -c 5000 /dev/zero >&2; echo fine', { outputBytes: 100 });
    assert.equal(e.end, 'output_limit');
    assert.ok(e.stderrTruncated);
    assert.equal(e.stdoutTruncated, false);
  });

  test('stdin is fed when given and closed when not', async () => {
    const fed = await sh('cat', { stdin: 'hello\n' });
    assert.equal(fed.stdout, 'hello\n');
    const closed = await sh('cat; echo eof', { timeoutMs: 2000 });
    assert.equal(closed.end, 'exited');
    assert.equal(closed.stdout, 'eof\n');
  });

  test('the environment is exactly what was given', async () => {
    process.env.SBX_UNIT_SECRET = 'leak';
    try {
      const r = await executor.run({ ...base, command: 'env', args: [] });
      const keys = r.stdout.trim().split('\n').map((l) => l.split('=')[0]);
      assert.deepEqual(keys.sort(), ['LANG', 'PATH']);
    } finally {
      delete process.env.SBX_UNIT_SECRET;
    }
  });

  test('the memory watchdog ends a run whose tree grows past the limit', async () => {
    const r = await executor.run({
      ...base,
      command: 'python3',
      args: ['-c', 'import time\nx=[]\nwhile True:\n  x.append(bytearray(10**7)); time.sleep(0.01)'],
      env: { ...base.env, PATH: process.env.PATH ?? '/usr/bin' },
      memoryBytes: 100 * 1024 * 1024,
    });
    assert.equal(r.end, 'memory_limit');
    assert.ok(r.peakMemoryBytes > 100 * 1024 * 1024);
  });

  test('rlimits apply to the program (address space)', async () => {
    const r = await executor.run({
      ...base,
      command: 'python3',
      args: ['-c', 'x = bytearray(300 * 1024 * 1024)'],
      env: { ...base.env, PATH: process.env.PATH ?? '/usr/bin' },
      rlimits: { as: 200 * 1024 * 1024 },
    });
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /MemoryError/);
  });

  test('cancelling kills the run', async () => {
    const marker = `sbxcancel-${randomUUID()}`;
    const ac = new AbortController();
    const running = sh(`echo started; exec -a ${marker} sleep 300`, { signal: ac.signal, onOutput: () => ac.abort() });
    const r = await running;
    assert.equal(r.end, 'cancelled');
    await waitFor(async () => (await processesWith(marker)).length === 0, 'the cancelled run to be gone');
  });

  test('a command that cannot start is a spawn error with a reason', async () => {
    const notExecutable = path.join(mkdtempSync(path.join(os.tmpdir(), 'sbx-unit-')), 'prog');
    writeFileSync(notExecutable, 'echo hi\n', { mode: 0o644 });
    const r = await executor.run({ ...base, command: notExecutable, args: [] });
    assert.equal(r.end, 'spawn_error');
    assert.equal(r.error, `could not start ${notExecutable}: Permission denied`);
    const missing = await executor.run({ ...base, command: '/nonexistent/prog', args: [] });
    assert.equal(missing.end, 'spawn_error');
    assert.equal(missing.error, 'could not start /nonexistent/prog: No such file or directory');
  });

  test('if the zygote dies, its runs end and leave nothing; the next run starts a new zygote', async () => {
    const marker = `sbxzygote-${randomUUID()}`;
    let started!: () => void;
    const ready = new Promise<void>((r) => (started = r));
    const running = sh(`echo go; exec -a ${marker} sleep 300`, { onOutput: () => started() });
    await ready;
    const zygote = executor.zygotePid;
    assert.ok(zygote, 'a zygote runs');
    process.kill(zygote, 'SIGKILL');
    const r = await running;
    assert.notEqual(r.end, 'spawn_error');
    assert.equal(r.exitCode, null);
    await waitFor(async () => (await processesWith(marker)).length === 0, 'the run of the dead zygote to be gone');
    const next = await sh('echo again');
    assert.equal(next.stdout, 'again\n');
    assert.notEqual(executor.zygotePid, zygote);
  });

  test('killAll ends every run in flight', async () => {
    const marker = `sbxkillall-${randomUUID()}`;
    const started: Promise<void>[] = [];
    const runs = [1, 2].map((i) => {
      let ready!: () => void;
      started.push(new Promise<void>((r) => (ready = r)));
      return sh(`echo go; exec -a ${marker}-${i} sleep 300`, { onOutput: () => ready() });
    });
    await Promise.all(started);
    assert.equal(executor.running, 2);
    executor.killAll();
    const results = await Promise.all(runs);
    assert.deepEqual(results.map((r) => r.end), ['cancelled', 'cancelled']);
    assert.deepEqual(await processesWith(marker), []);
  });
});
