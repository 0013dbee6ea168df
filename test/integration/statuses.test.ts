/**
 * Every verdict for every built-in language, through the real server over stdio: real programs, real processes,
 * real limits. Each language gets one server; programs get a unique marker as their last argument, so that
 * `processesWith(marker)` can prove a killed run left no process behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { runProcessesOf } from '../helpers/processes';
import { outputContaining, processesWith, startServer, stopServer, waitFor, type TestServer } from '../helpers/server';
import { ExecuteRequest, MetricsRequest, type ExecuteParams, type ExecutionResult } from '../../server/protocol';

/** A hang fails the suite instead of stalling the run. */
const SUITE_TIMEOUT_MS = 60_000;

const MiB = 1024 * 1024;
const TWO_MIB = 2 * MiB;

type Lang = 'python' | 'javascript' | 'typescript' | 'shell' | 'c' | 'cpp';

interface Programs {
  /** Prints `hello <lang>` and exits 0. */
  ok: string;
  /** Exits with code 3. */
  exit3: string;
  /** Raises an exception / crashes: the exit code and a stderr pattern that names the error. */
  exception: { code: string; exitCode: number | null; signal: string | null; stderr: RegExp; stdout?: string };
  /** Spins forever. */
  spin: string;
  /** Allocates and touches 10 MB chunks forever. */
  hog: string;
  /** Prints forever. */
  flood: string;
  /** Prints "started", then sleeps forever. */
  sleeper: string;
  /** A line comment, to pad a program past the size limit. */
  comment: string;
  /** A program that does not compile, and what the diagnostic must say. */
  compileError?: { code: string; says: RegExp[] };
}

const C_SLEEPER = '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("started\\n"); fflush(stdout); for (;;) sleep(1000); }\n';
const C_SPIN = 'int main(void) { volatile unsigned long i = 0; for (;;) i++; }\n';
const C_FLOOD = '#include <stdio.h>\nint main(void) { for (;;) puts("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"); }\n';

const PROGRAMS: Record<Lang, Programs> = {
  python: {
    ok: 'print("hello python")',
    exit3: 'import sys\nsys.exit(3)',
    exception: { code: 'raise ValueError("boom-py")', exitCode: 1, signal: null, stderr: /ValueError: boom-py/ },
    spin: 'while True:\n    pass',
    hog: 'chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))',
    flood: 'while True:\n    print("y" * 50)',
    sleeper: 'import time\nprint("started", flush=True)\nwhile True:\n    time.sleep(1000)',
    comment: '#',
  },
  javascript: {
    ok: 'console.log("hello javascript")',
    exit3: 'process.exit(3)',
    exception: { code: 'throw new Error("boom-js")', exitCode: 1, signal: null, stderr: /Error: boom-js/ },
    spin: 'for (;;) {}',
    hog: 'const chunks = [];\nfor (;;) chunks.push(Buffer.alloc(1e7, 1));',
    flood: 'for (;;) process.stdout.write("y".repeat(50) + "\\n");',
    sleeper: 'console.log("started");\nsetInterval(() => {}, 1000);',
    comment: '//',
  },
  typescript: {
    ok: 'const greeting: string = "hello typescript";\nconsole.log(greeting);',
    exit3: 'const code: number = 3;\nprocess.exit(code);',
    exception: { code: 'const e: Error = new Error("boom-ts");\nthrow e;', exitCode: 1, signal: null, stderr: /Error: boom-ts/ },
    spin: 'let i: number = 0;\nfor (;;) { i++; }',
    hog: 'const chunks: Buffer[] = [];\nfor (;;) chunks.push(Buffer.alloc(1e7, 1));',
    flood: 'const line: string = "y".repeat(50) + "\\n";\nfor (;;) process.stdout.write(line);',
    sleeper: 'console.log("started" as string);\nsetInterval((): void => {}, 1000);',
    comment: '//',
    compileError: { code: 'const x: number = ;\nconsole.log(x);', says: [/main\.ts:1:\d+/, /error/] },
  },
  shell: {
    ok: 'echo "hello shell"',
    exit3: 'exit 3',
    exception: { code: 'no_such_command_sbx\necho still-here\nexit 1', exitCode: 1, signal: null, stderr: /no_such_command_sbx: command not found/, stdout: 'still-here\n' },
    spin: 'while true; do :; done',
    hog: 'x=a; while true; do x="$x$x"; done',
    flood: 'while true; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done',
    sleeper: 'echo started\nsleep 1000',
    comment: '#',
  },
  c: {
    ok: '#include <stdio.h>\nint main(void) { printf("hello c\\n"); return 0; }\n',
    exit3: 'int main(void) { return 3; }\n',
    exception: {
      code: 'int main(void) { volatile int *p = 0; *p = 1; return 0; }\n',
      exitCode: null,
      signal: 'SIGSEGV',
      stderr: /^$/,
    },
    spin: C_SPIN,
    hog: '#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(10 << 20); memset(p, 1, 10 << 20); } }\n',
    flood: C_FLOOD,
    sleeper: C_SLEEPER,
    comment: '//',
    compileError: {
      code: 'int main(void) { return undeclared_variable_c; }\n',
      says: [/main\.c:1:\d+/, /error/, /undeclared_variable_c/],
    },
  },
  cpp: {
    ok: '#include <iostream>\nint main() { std::cout << "hello cpp" << std::endl; return 0; }\n',
    exit3: 'int main() { return 3; }\n',
    exception: {
      code: '#include <stdexcept>\nint main() { throw std::runtime_error("boom-cpp"); }\n',
      exitCode: null,
      signal: 'SIGABRT',
      stderr: /boom-cpp/,
    },
    spin: C_SPIN,
    hog: '#include <cstring>\n#include <vector>\nint main() { std::vector<char *> v; for (;;) { char *p = new char[10 << 20]; std::memset(p, 1, 10 << 20); v.push_back(p); } }\n',
    flood: C_FLOOD,
    sleeper: C_SLEEPER,
    comment: '//',
    compileError: {
      code: 'int main() { return undeclared_variable_cpp; }\n',
      says: [/main\.cpp:1:\d+/, /error/, /undeclared_variable_cpp/],
    },
  },
};

const LANGS = Object.keys(PROGRAMS) as Lang[];

function execute(s: TestServer, params: ExecuteParams, cts?: CancellationTokenSource): Promise<ExecutionResult> {
  return s.conn.sendRequest(ExecuteRequest.type, params, cts?.token);
}

/** A fresh marker; passed as the program's last argument, it shows up in the command line of the run's process. */
const marker = (): string => `sbxmark-${randomUUID()}`;

for (const lang of LANGS) {
  const p = PROGRAMS[lang];
  void describe(`${lang}: every status`, { timeout: SUITE_TIMEOUT_MS }, () => {
    let s: TestServer;
    before(async () => {
      s = await startServer({ poolSize: 2 });
    });
    after(async () => {
      await stopServer(s);
    });

    void test('ok: stdout, exit code 0, and kernel-accounted cpu and memory even for a short run', async () => {
      const r = await execute(s, { language: lang, code: p.ok, cache: false });
      assert.equal(r.status, 'ok', r.stderr);
      assert.equal(r.stdout, `hello ${lang}\n`);
      assert.equal(r.stderr, '');
      assert.equal(r.exitCode, 0);
      assert.equal(r.signal, null);
      assert.equal(r.language, lang);
      assert.equal(r.cached, false);
      assert.equal(r.isolation, 'bwrap');
      assert.match(r.workerId ?? '', /^w\d+$/);
      assert.ok(r.cpuMs > 0, `cpuMs ${r.cpuMs} should be > 0`);
      // What the run's memory cgroup was charged: a C hello world's few hundred KiB up to an interpreter's MiBs.
      assert.ok(r.peakMemoryBytes > 100_000, `peakMemoryBytes ${r.peakMemoryBytes} should be > 100 kB`);
      assert.ok(r.durationMs > 0, `durationMs ${r.durationMs}`);
    });

    void test('runtime_error: exit code 3', async () => {
      const r = await execute(s, { language: lang, code: p.exit3, cache: false });
      assert.equal(r.status, 'runtime_error');
      assert.equal(r.exitCode, 3);
      assert.equal(r.signal, null);
    });

    void test('runtime_error: an uncaught error', async () => {
      const r = await execute(s, { language: lang, code: p.exception.code, cache: false });
      assert.equal(r.status, 'runtime_error', r.stderr);
      assert.equal(r.exitCode, p.exception.exitCode);
      assert.equal(r.signal, p.exception.signal);
      assert.match(r.stderr, p.exception.stderr);
      assert.equal(r.stdout, p.exception.stdout ?? '');
    });

    void test('timeout: an endless loop is killed with SIGKILL soon after the limit', async () => {
      const m = marker();
      const timeoutMs = 500;
      const started = performance.now();
      const r = await execute(s, { language: lang, code: p.spin, args: [m], limits: { timeoutMs }, cache: false });
      const elapsed = performance.now() - started;
      assert.equal(r.status, 'timeout');
      assert.equal(r.signal, 'SIGKILL');
      assert.equal(r.exitCode, null);
      assert.ok(elapsed < timeoutMs + 2000, `the request took ${elapsed} ms`);
      assert.ok(r.durationMs >= timeoutMs - 10, `durationMs ${r.durationMs} ran less than the limit`);
      assert.ok(r.cpuMs > 100, `an endless loop burns CPU; cpuMs ${r.cpuMs}`);
      assert.deepEqual(await processesWith(m), []);
    });

    void test('memory_limit: allocating 10 MB chunks forever under a 128 MiB limit', async () => {
      const started = performance.now();
      const r = await execute(s, { language: lang, code: p.hog, limits: { memoryMb: 128, timeoutMs: 15_000 }, cache: false });
      assert.equal(r.status, 'memory_limit', `exit ${r.exitCode} signal ${r.signal} stderr ${r.stderr.slice(-300)}`);
      assert.ok(r.peakMemoryBytes > 64 * MiB, `peakMemoryBytes ${r.peakMemoryBytes}: the program did allocate`);
      assert.ok(r.exitCode !== 0, 'a program stopped for memory did not succeed');
      assert.ok(performance.now() - started < 15_000);
    });

    void test('output_limit: printing forever is stopped at the byte cap', async () => {
      const outputBytes = 1000;
      const r = await execute(s, { language: lang, code: p.flood, limits: { outputBytes, timeoutMs: 15_000 }, cache: false });
      assert.equal(r.status, 'output_limit');
      assert.equal(r.stdoutTruncated, true);
      assert.equal(r.stderrTruncated, false);
      const bytes = Buffer.byteLength(r.stdout);
      assert.ok(bytes <= outputBytes, `stdout holds ${bytes} bytes`);
      assert.ok(bytes > outputBytes / 2, `stdout holds what came before the cap (${bytes} bytes)`);
      assert.match(r.stdout, /^y+\n/);
    });

    void test('cancelled: $/cancelRequest after the program started kills it', async () => {
      const m = marker();
      const runId = `cancel-${lang}-${randomUUID()}`;
      const cts = new CancellationTokenSource();
      const pending = execute(s, { language: lang, code: p.sleeper, args: [m], runId, cache: false }, cts);
      await outputContaining(s, runId, 'started');
      assert.ok((await processesWith(m)).length > 0, 'the program is running before the cancel');
      const cancelledAt = performance.now();
      cts.cancel();
      const r = await pending;
      assert.equal(r.status, 'cancelled');
      assert.equal(r.runId, runId);
      assert.equal(r.signal, 'SIGKILL');
      assert.match(r.stdout, /^started\n/);
      assert.ok(performance.now() - cancelledAt < 2000, 'the cancel took effect at once');
      assert.deepEqual(await processesWith(m), []);
      cts.dispose();
    });

    void test('rejected: a program larger than 2 MiB', async () => {
      const runId = `big-${lang}-${randomUUID()}`;
      const code = `${p.ok}\n${p.comment} ${'x'.repeat(TWO_MIB)}\n`;
      const r = await execute(s, { language: lang, code, runId, cache: false });
      assert.equal(r.status, 'rejected');
      assert.match(r.message ?? '', /larger than/);
      assert.equal(r.workerId, null);
      assert.equal(r.stdout, '');
      assert.equal(r.exitCode, null);
      assert.equal(s.outputOf(runId), '', 'a rejected program never ran');
      // Just under the limit is fine: the limit is on the size, not on something else about this program.
      const fits = `${p.ok}\n${p.comment} ${'x'.repeat(TWO_MIB - Buffer.byteLength(p.ok) - p.comment.length - 4)}\n`;
      const r2 = await execute(s, { language: lang, code: fits, cache: false });
      assert.equal(r2.status, 'ok', r2.message ?? r2.stderr);
      assert.equal(r2.stdout, `hello ${lang}\n`);
    });

    const ce = p.compileError;
    if (ce) {
      void test('compile_error: the diagnostic is the message and the stderr', async () => {
        const r = await execute(s, { language: lang, code: ce.code, cache: false });
        assert.equal(r.status, 'compile_error');
        for (const re of ce.says) {
          assert.match(r.message ?? '', re);
          assert.match(r.stderr, re);
        }
        assert.equal(r.exitCode, null);
        assert.equal(r.stdout, '');
        assert.doesNotMatch(r.message ?? '', /\/tmp\/sbx-|\/run-/, 'diagnostics name the file relatively, not by a server path');
      });
    }
  });
}

void describe('internal_error: a runtime that cannot be started', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  let dir: string;
  let notExecutable: string;
  before(async () => {
    // /etc/hostname is not a safe choice: on some machines it is mode 755 (and then execvp runs it with /bin/sh).
    dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-test-noexec-'));
    notExecutable = path.join(dir, 'not-an-interpreter');
    writeFileSync(notExecutable, 'just text\n', { mode: 0o644 });
    const executorMap = Object.fromEntries(LANGS.map((l) => [l, { command: notExecutable }]));
    s = await startServer({ executorMap });
  });
  after(async () => {
    await stopServer(s);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const lang of LANGS) {
    void test(`${lang}: internal_error with a message`, async () => {
      const r = await execute(s, { language: lang, code: PROGRAMS[lang].ok, cache: false });
      assert.equal(r.status, 'internal_error');
      assert.ok(r.message, 'an internal_error carries a message');
      assert.ok(r.message.includes(notExecutable), `the message names the command: ${r.message}`);
      assert.match(r.message, /permission denied/i);
      assert.equal(r.stdout, '');
      assert.equal(r.exitCode, null);
    });
  }
});

void describe('compiled languages: the limits hold while compiling', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  /** Takes g++ several seconds: constant evaluation of 4e10 steps (it fails in the end, far past any limit here). */
  const slowToCompile = (tag: string): string =>
    `// ${tag}\nconstexpr long f() { long s = 0; for (long i = 0; i < 200000; i++) for (long j = 0; j < 200000; j++) s += i ^ j; return s; }\n` +
    'static_assert(f() != 1, "slow");\nint main() { return 0; }\n';
  before(async () => {
    s = await startServer({ poolSize: 2 });
  });
  // The compiler runs sandboxed (its cwd is the sandbox's own /work): it is found as a process below the server.
  const compilers = (): number[] => runProcessesOf(s.proc.pid!);
  after(async () => {
    await stopServer(s);
  });

  void test('timeout: a compile that runs past timeoutMs ends the run as timeout', async () => {
    const timeoutMs = 800;
    const started = performance.now();
    const r = await execute(s, { language: 'cpp', code: slowToCompile(randomUUID()), limits: { timeoutMs }, cache: false });
    const elapsed = performance.now() - started;
    assert.equal(r.status, 'timeout');
    assert.match(r.message ?? '', /compil/);
    assert.ok(elapsed < timeoutMs + 2000, `the request took ${elapsed} ms`);
    assert.deepEqual(compilers(), [], 'the compiler is gone');
  });

  void test('cancelled: cancelling while the compiler runs ends the run at once', async () => {
    const cts = new CancellationTokenSource();
    const pending = execute(s, { language: 'cpp', code: slowToCompile(randomUUID()), limits: { timeoutMs: 20_000 }, cache: false }, cts);
    await waitFor(async () => (compilers()).length > 0, 'the compiler to run');
    const cancelledAt = performance.now();
    cts.cancel();
    const r = await pending;
    assert.equal(r.status, 'cancelled');
    assert.match(r.message ?? '', /compil/);
    assert.ok(performance.now() - cancelledAt < 2000, 'the cancel took effect at once');
    assert.deepEqual(compilers(), [], 'the compiler is gone');
    assert.equal((await s.conn.sendRequest(MetricsRequest.type)).runsByStatus.cancelled, 1);
    cts.dispose();
  });
});
