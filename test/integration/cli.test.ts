/**
 * End-to-end tests of the `sbx` CLI: the BUILT dist/cli.js, spawned as a real process, starting the real server
 * (dist/server.js), running real programs. Nothing is mocked. Run `npm run build` first (`npm test` does).
 *
 *   node --import tsx --test test/integration/cli.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findingLines, summaryLine } from '../../cli/format';
import type { ExecutionResult, LanguagesResult, Metrics, BatchSummary } from '../../server/protocol';
import { sampleResult } from '../helpers/results';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
/** Fixture paths as the user would type them from the repository root (the CLI runs with cwd = ROOT). */
const fx = (...parts: string[]) => path.posix.join('test/fixtures/cli', ...parts);

/** Every field of an ExecutionResult, `message` aside (optional). */
const RESULT_FIELDS = [
  'runId',
  'language',
  'status',
  'exitCode',
  'signal',
  'stdout',
  'stderr',
  'stdoutTruncated',
  'stderrTruncated',
  'durationMs',
  'cpuMs',
  'peakMemoryBytes',
  'cached',
  'workerId',
  'isolation',
];

/** No single CLI invocation here should take long; past this it is killed and the test fails. */
const INVOCATION_LIMIT_MS = 30_000;

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Streams and exit of a spawned CLI, collected. */
function collect(child: ChildProcess, started: number): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const limit = setTimeout(() => child.kill('SIGKILL'), INVOCATION_LIMIT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}

/** Runs `node dist/cli.js ...args` from the repository root; `stdin` is fed to it (else stdin is closed). */
function sbx(args: string[], stdin?: string): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  return collect(child, started);
}

/** The last line of stderr: the summary line of `run`. */
function summaryOf(outcome: Outcome): string {
  return outcome.stderr.trimEnd().split('\n').at(-1) ?? '';
}

function assertNoStackTrace(outcome: Outcome): void {
  assert.ok(!outcome.stderr.includes('    at '), `a stack trace on stderr:\n${outcome.stderr}`);
  assert.ok(!outcome.stdout.includes('    at '), `a stack trace on stdout:\n${outcome.stdout}`);
}

function assertResultShape(result: ExecutionResult): void {
  for (const field of RESULT_FIELDS) assert.ok(field in result, `result lacks "${field}"`);
  assert.equal(typeof result.runId, 'string');
  assert.equal(typeof result.language, 'string');
  assert.equal(typeof result.status, 'string');
  assert.ok(result.exitCode === null || Number.isInteger(result.exitCode));
  assert.ok(result.signal === null || typeof result.signal === 'string');
  assert.equal(typeof result.stdout, 'string');
  assert.equal(typeof result.stderr, 'string');
  assert.equal(typeof result.stdoutTruncated, 'boolean');
  assert.equal(typeof result.stderrTruncated, 'boolean');
  for (const n of ['durationMs', 'cpuMs', 'peakMemoryBytes'] as const) {
    assert.ok(typeof result[n] === 'number' && result[n] >= 0, `${n} = ${result[n]}`);
  }
  assert.equal(typeof result.cached, 'boolean');
  assert.ok(result.workerId === null || typeof result.workerId === 'string');
  assert.ok(['process', 'bwrap'].includes(result.isolation));
}

/** Polls `condition` until it holds or `timeoutMs` passes (for things with no event to wait on, like /proc). */
async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/** A process is gone when /proc no longer has it, or it is a zombie (dead, waiting to be reaped). */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Pids of live processes whose command line is exactly `argv`. */
function processesRunning(argv: string[]): number[] {
  const wanted = argv.join('\0') + '\0';
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted) found.push(Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

/** The parent pid of `pid`, from /proc, or undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Pids of the direct children of `parent`. */
function childrenOf(parent: number): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e) && parentOf(Number(e)) === parent).map(Number);
}

before(() => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run "npm run build" first`);
  assert.ok(existsSync(path.join(ROOT, 'dist', 'server.js')), 'dist/server.js is missing: run "npm run build" first');
});

describe('sbx run', () => {
  test('runs a program: its stdout and stderr streamed, a summary line on stderr, exit 0', async () => {
    const out = await sbx(['run', fx('hello.py')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'hello from sbx\n');
    assert.ok(out.stderr.startsWith('a line on stderr\n'), out.stderr);
    assert.match(summaryOf(out), /^sbx: ok · exit 0 · \d+ ms · cpu \d+ ms · peak \d+\.\d MiB · isolation (process|bwrap)$/);
    assert.equal(out.stderr.trimEnd().split('\n').length, 2, 'the program\'s stderr line and the summary');
  });

  test("passes the program's exit code through", async () => {
    const out = await sbx(['run', fx('exit3.sh')]);
    assert.equal(out.code, 3, out.stderr);
    assert.equal(out.stdout, 'about to exit 3\n');
    assert.match(summaryOf(out), /^sbx: runtime_error · exit 3 · /);
  });

  test('a program killed by a signal exits 128 + the signal number', async () => {
    const out = await sbx(['run', fx('self-signal.sh')]);
    assert.equal(out.code, 128 + constants.signals.SIGUSR1, out.stderr);
    assert.match(summaryOf(out), /killed by SIGUSR1/);
  });

  test('a program past --timeout is killed: exit 124, well within a bound', async () => {
    const out = await sbx(['run', fx('sleep.py'), '--timeout', '500']);
    assert.equal(out.code, 124, out.stderr);
    assert.equal(out.stdout, 'sleeping\n');
    assert.match(summaryOf(out), /^sbx: timeout · /);
    assert.ok(out.elapsedMs < 10_000, `took ${out.elapsedMs} ms for a 500 ms timeout`);
  });

  test('output past the limit: exit 125, the output truncated and said so', async () => {
    const out = await sbx(['--config', fx('config/small-output.json'), 'run', fx('big-output.py')]);
    assert.equal(out.code, 125, out.stderr);
    assert.ok(out.stdout.length <= 1000, `${out.stdout.length} bytes of stdout`);
    assert.match(summaryOf(out), /^sbx: output_limit · .*\(stdout truncated at \d+ bytes\)/);
  });

  test('--stdin FILE feeds the file to the program', async () => {
    const out = await sbx(['run', fx('upper.py'), '--stdin', fx('input.txt')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'TEXT FROM A FILE\n');
  });

  test("--stdin - feeds the CLI's own stdin to the program", async () => {
    const out = await sbx(['run', fx('upper.py'), '--stdin', '-'], 'from the pipe\n');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'FROM THE PIPE\n');
  });

  test('--json prints the whole ExecutionResult, nothing streamed and no summary', async () => {
    const out = await sbx(['run', fx('hello.py'), '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, '');
    const result = JSON.parse(out.stdout) as ExecutionResult;
    assertResultShape(result);
    assert.equal(result.language, 'python');
    assert.equal(result.status, 'ok');
    assert.equal(result.exitCode, 0);
    assert.equal(result.signal, null);
    assert.equal(result.stdout, 'hello from sbx\n');
    assert.equal(result.stderr, 'a line on stderr\n');
    assert.equal(result.cached, false);
    assert.ok(result.peakMemoryBytes > 0);
  });

  test('--json keeps the exit code of the verdict', async () => {
    const out = await sbx(['run', fx('exit3.sh'), '--json']);
    assert.equal(out.code, 3);
    const result = JSON.parse(out.stdout) as ExecutionResult;
    assert.equal(result.status, 'runtime_error');
    assert.equal(result.exitCode, 3);
  });

  test('--lang overrides the extension', async () => {
    const out = await sbx(['run', fx('python-code.txt'), '--lang', 'python']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'python despite the .txt\n');
  });

  test('a compile error exits 1 and shows the compiler message', async () => {
    const out = await sbx(['run', fx('compile-error.c')]);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, /error/);
    assert.match(summaryOf(out), /^sbx: compile_error/);
    assertNoStackTrace(out);
  });

  test('a program past --memory exits 137', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'sbx-cli-')), 'hog.py');
    writeFileSync(file, 'x = bytearray(400 * 1024 * 1024)\nprint(len(x))\n');
    try {
      const out = await sbx(['run', file, '--memory', '64', '--json']);
      assert.equal(out.code, 137, out.stdout);
      assert.equal((JSON.parse(out.stdout) as ExecutionResult).status, 'memory_limit');
    } finally {
      rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  test("SIGINT cancels the run: exit 130, the program's processes are gone", async () => {
    // A unique `sleep` length makes the program's child findable in /proc, whatever its pid namespace.
    const duration = `${20 + Math.floor(Math.random() * 9)}.${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, 'run', fx('wait-for-signal.sh'), '--stdin', '-'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const done = collect(child, started);
    child.stdin!.end(`${duration}\n`);
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      child.stdout!.on('data', (chunk: string) => {
        seen += chunk;
        if (seen.includes('pid ')) resolve();
      });
      child.once('close', () => reject(new Error(`the CLI ended before the program started: ${seen}`)));
    });
    // The program printed once its `sleep` was started; /proc may lag a moment behind. The pids come from /proc,
    // not from the program, so they are right whatever pid namespace the sandbox uses.
    assert.ok(await eventually(() => processesRunning(['sleep', duration]).length > 0, 5_000), 'sleep never started');
    const [sleepPid] = processesRunning(['sleep', duration]);
    const shellPid = parentOf(sleepPid);
    assert.ok(shellPid !== undefined && readFileSync(`/proc/${shellPid}/cmdline`, 'utf8').includes('sh'));
    child.kill('SIGINT');
    const out = await done;
    assert.equal(out.code, 130, out.stderr);
    assert.match(summaryOf(out), /^sbx: cancelled/);
    assert.ok(!out.stdout.includes('never printed'));
    assert.ok(await eventually(() => processesRunning(['sleep', duration]).length === 0, 2_000), 'the sleep survived');
    assert.ok(await eventually(() => processGone(shellPid), 2_000), `the program's shell (pid ${shellPid}) survived`);
    assert.ok(out.elapsedMs < 15_000);
  });
});

describe('a server that dies', () => {
  test('mid-run: one sentence on stderr, exit 70', async () => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, 'run', fx('sleep.py')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const done = collect(child, started);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: string) => {
        if (chunk.includes('sleeping')) resolve();
      });
      child.once('close', () => reject(new Error('the CLI ended before the program started')));
    });
    const server = childrenOf(child.pid!).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server.js'));
    assert.ok(server, 'the server process was not found');
    process.kill(server, 'SIGKILL');
    const out = await done;
    assert.equal(out.code, 70, out.stderr);
    assertNoStackTrace(out);
    assert.match(out.stderr, /^sbx: the sandbox server stopped unexpectedly \(killed by SIGKILL\)[^\n]*\n$/);
  });
});

describe('the cache through the CLI', () => {
  // Every `sbx` command has its own server (and in-memory cache): identical programs within one batch share it.
  test('the second identical program is served from the cache when it is on', async () => {
    const out = await sbx(['batch', fx('cache'), '--concurrency', '1', '--json', '--config', fx('config/cache-on.json')]);
    assert.equal(out.code, 0, out.stderr);
    const { results, summary } = JSON.parse(out.stdout) as { results: ExecutionResult[]; summary: BatchSummary };
    assert.deepEqual(
      results.map((r) => r.cached),
      [false, true],
    );
    assert.equal(results[1].stdout, results[0].stdout);
    assert.equal(summary.cached, 1);
  });

  test('--no-cache always runs', async () => {
    const out = await sbx(['--config', fx('config/cache-on.json'), 'batch', fx('cache'), '--concurrency', '1', '--no-cache', '--json']);
    assert.equal(out.code, 0, out.stderr);
    const { results } = JSON.parse(out.stdout) as { results: ExecutionResult[] };
    assert.deepEqual(
      results.map((r) => r.cached),
      [false, false],
    );
    assert.ok(results.every((r) => r.workerId !== null));
  });
});

describe('sbx batch', () => {
  const expectedFiles = ['a_ok.py', 'b_fail.sh', 'c_ok.js', 'd_ok.c', 'nested/e_ok.sh'].map((f) => fx('batch', f));

  test('a directory: a table in file order, a failing item, exit 1', async () => {
    const out = await sbx(['batch', fx('batch')]);
    assert.equal(out.code, 1, out.stderr);
    assert.equal(out.stderr, '', 'no progress bar when stderr is not a terminal');
    const lines = out.stdout.split('\n');
    assert.match(lines[0], /^file\s+status\s+time \(ms\)\s+memory \(MiB\)\s+cached$/);
    const rows = lines.slice(1, 6).map((l) => l.split(/\s+/));
    assert.deepEqual(
      rows.map((r) => r[0]),
      expectedFiles,
    );
    assert.deepEqual(
      rows.map((r) => r[1]),
      ['ok', 'runtime_error', 'ok', 'ok', 'ok'],
    );
    assert.equal(lines[6], '', 'a blank line after the table');
    for (const row of rows) {
      assert.match(row[2], /^\d+$/);
      assert.match(row[3], /^\d+\.\d$/);
      assert.equal(row[4], 'no');
    }
    assert.ok(!out.stdout.includes('notes.txt'), 'a file of no known language is skipped');
    assert.match(out.stdout, /^5 files · 4 ok · 1 failed \(runtime_error 1\) · 0 cached · wall \d+ ms/m);
    assert.match(out.stdout, /b_fail\.sh: runtime_error \(exit 4\) — b: failing on purpose/);
    assert.match(out.stdout, /^pool \d+ workers · runs \d+ · cache hit rate \d+% · p50 \d+ ms · p95 \d+ ms · peak memory/m);
    assert.match(out.stdout, /^workers: /m);
  });

  test('--json: {results, summary, metrics}, results in order, one failure not affecting the others', async () => {
    const out = await sbx(['batch', fx('batch'), '--json']);
    assert.equal(out.code, 1, out.stderr);
    const json = JSON.parse(out.stdout) as {
      results: (ExecutionResult & { file: string })[];
      summary: BatchSummary;
      metrics: Metrics;
    };
    assert.deepEqual(Object.keys(json).sort(), ['metrics', 'results', 'summary']);
    assert.deepEqual(
      json.results.map((r) => r.file),
      expectedFiles,
    );
    json.results.forEach(assertResultShape);
    assert.deepEqual(
      json.results.map((r) => [r.language, r.status]),
      [
        ['python', 'ok'],
        ['shell', 'runtime_error'],
        ['javascript', 'ok'],
        ['c', 'ok'],
        ['shell', 'ok'],
      ],
    );
    assert.equal(json.results[1].exitCode, 4);
    assert.equal(json.results[1].stderr, 'b: failing on purpose\n');
    assert.deepEqual(
      [json.results[0].stdout, json.results[2].stdout, json.results[3].stdout, json.results[4].stdout],
      ['a: ok\n', 'c: ok\n', 'd: ok\n', 'e: ok, found in a subdirectory\n'],
    );
    assert.equal(new Set(json.results.map((r) => r.runId)).size, 5);
    assert.equal(json.summary.total, 5);
    assert.equal(json.summary.ok, 4);
    assert.equal(json.summary.failed, 1);
    assert.equal(json.summary.byStatus.runtime_error, 1);
    assert.ok(json.metrics.runsTotal >= 5);
    assert.ok(json.metrics.pool.size >= 1);
    assert.ok(Array.isArray(json.metrics.workers));
    assert.equal(typeof json.metrics.cache.hitRate, 'number');
  });

  test('globs and files, all ok: exit 0', async () => {
    const out = await sbx(['batch', fx('batch', '*.py'), fx('batch', 'c_ok.js'), '--concurrency', '2', '--json']);
    assert.equal(out.code, 0, out.stderr);
    const { results } = JSON.parse(out.stdout) as { results: (ExecutionResult & { file: string })[] };
    assert.deepEqual(
      results.map((r) => [r.file, r.status]),
      [
        [fx('batch', 'a_ok.py'), 'ok'],
        [fx('batch', 'c_ok.js'), 'ok'],
      ],
    );
  });

  test('examples/: every example in every language ends ok', async () => {
    const out = await sbx(['batch', 'examples/', '--json']);
    assert.equal(out.code, 0, out.stdout);
    const { results } = JSON.parse(out.stdout) as { results: (ExecutionResult & { file: string })[] };
    assert.deepEqual(new Set(results.map((r) => r.language)), new Set(['python', 'javascript', 'typescript', 'shell', 'c', 'cpp']));
    for (const r of results) assert.equal(r.status, 'ok', `${r.file}: ${r.status} ${r.message ?? r.stderr}`);
  });
});

describe('sbx languages', () => {
  test('a table of the languages', async () => {
    const out = await sbx(['languages']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^id\s+available\s+version\s+binary\s+extensions$/m);
    for (const id of ['python', 'javascript', 'typescript', 'shell', 'c', 'cpp']) {
      assert.match(out.stdout, new RegExp(`^${id}\\s+(yes|no)\\s`, 'm'));
    }
    assert.match(out.stdout, /^isolation: (process|bwrap)$/m);
  });

  test('--json prints the LanguagesResult', async () => {
    const out = await sbx(['languages', '--json']);
    assert.equal(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout) as LanguagesResult;
    assert.ok(['process', 'bwrap'].includes(result.isolation));
    const python = result.languages.find((l) => l.id === 'python');
    assert.ok(python);
    assert.ok(python.extensions.includes('.py'));
    for (const l of result.languages) {
      assert.equal(typeof l.available, 'boolean');
      assert.ok(Array.isArray(l.extensions));
      assert.ok(['builtin', 'executorMap'].includes(l.source));
    }
  });
});

describe('sbx languages: the sandbox', () => {
  test('prints the isolation mode and its reason, as the --json result has them', async () => {
    const json = await sbx(['languages', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const { sandbox } = JSON.parse(json.stdout) as LanguagesResult;
    assert.ok(sandbox, 'the LanguagesResult has no sandbox');
    assert.ok(['bwrap', 'process'].includes(sandbox.isolation));
    assert.equal(typeof sandbox.reason, 'string');
    assert.ok(sandbox.reason.length > 0);

    const out = await sbx(['languages']);
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.split('\n');
    const isolation = lines.filter((l) => l.startsWith('isolation:'));
    assert.deepEqual(isolation, [`isolation: ${sandbox.isolation}`]);
    assert.ok(lines.includes(`reason: ${sandbox.reason}`), out.stdout);
    assert.ok(lines.includes(`cgroup: ${sandbox.cgroup ?? 'none writable (rlimits only)'}`), out.stdout);
    assert.ok(lines.includes('enforced by:'), out.stdout);
    for (const [what, by] of Object.entries(sandbox.enforcement)) {
      assert.match(out.stdout, new RegExp(`^  ${what} +${by.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    assert.match(out.stdout, /^max limits: timeoutMs \d+ · cpuMs \d+ · memoryMb \d+ · outputBytes \d+ · processes \d+ · fileSizeMb \d+ · openFiles \d+ · diskMb \d+$/m);
    assert.ok(lines.includes(`max limits: ${Object.entries(sandbox.maxLimits).map(([k, v]) => `${k} ${v}`).join(' · ')}`));
    if (sandbox.isolation === 'bwrap') {
      assert.ok(lines.includes(`bwrap: ${sandbox.bwrap}`), out.stdout);
      assert.doesNotMatch(out.stdout, /NOT sandboxed/);
      // Who runs the programs on the host, and the seccomp filter, rule by rule.
      assert.ok(lines.includes(`runs as: ${sandbox.hostUser?.description}`), out.stdout);
      assert.ok(sandbox.seccomp.length > 50, `${sandbox.seccomp.length} seccomp rules`);
      assert.match(out.stdout, new RegExp(`^seccomp: ${sandbox.seccomp.length} rules, refused with EPERM: ptrace, .*keyctl, .*clone3 \\(ENOSYS\\)`, 'm'));
    } else {
      assert.match(out.stdout, /^warning: runs are NOT sandboxed/m);
    }
  });

  test('with isolation "process" says plainly that runs are not sandboxed, and why', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sbx-cli-'));
    try {
      writeFileSync(path.join(dir, 'process.json'), '{ "isolation": "process" }');
      const out = await sbx(['--config', path.join(dir, 'process.json'), 'languages']);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /^isolation: process$/m);
      assert.match(out.stdout, /^warning: runs are NOT sandboxed: .*read and write .* files and reach the network$/m);
      assert.match(out.stdout, /^reason: chosen by the isolation setting$/m);
      assert.doesNotMatch(out.stdout, /^bwrap:/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sbx run: security scan findings', () => {
  test('counts the findings in the summary and prints each on stderr above it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sbx-cli-'));
    try {
      const file = path.join(dir, 'net.py');
      writeFileSync(file, 'import socket\nprint("still runs")\n');
      const json = JSON.parse((await sbx(['run', file, '--json'])).stdout) as ExecutionResult;
      assert.ok(json.findings.length > 0, 'the scan found nothing in a program that imports socket');
      const out = await sbx(['run', file]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout, 'still runs\n');
      const n = json.findings.length;
      assert.match(summaryOf(out), new RegExp(`^sbx: ok · .* · ${n} findings?$`));
      const lines = out.stderr.trimEnd().split('\n');
      assert.equal(lines.length, n + 1, out.stderr);
      assert.match(lines[0]!, /^sbx: finding at line 1: network — .*socket/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a run the scan blocks (scanPolicy "block") is rejected: exit 2, the findings named once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sbx-cli-'));
    try {
      const file = path.join(dir, 'net.py');
      writeFileSync(file, 'import socket\nprint("never printed")\n');
      writeFileSync(path.join(dir, 'block.json'), '{ "scanPolicy": "block" }');
      const out = await sbx(['--config', path.join(dir, 'block.json'), 'run', file]);
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stdout, '');
      assert.match(summaryOf(out), /^sbx: rejected: blocked by the security scan .* · 1 finding$/);
      assert.equal(out.stderr.match(/line 1: network/g)?.length, 1, out.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('summaryLine and findingLines: counts, retry after a rate limit, findings not repeated', () => {
    const net = { ruleId: 'network', message: 'opens a socket', line: 3, severity: 'warning' as const };
    assert.equal(summaryLine(sampleResult({ findings: [net] })), 'sbx: ok · exit 0 · 12 ms · cpu 10 ms · peak 1.0 MiB · isolation process · 1 finding');
    assert.match(summaryLine(sampleResult({ findings: [net, { ...net, line: 4 }] })), / · 2 findings$/);
    assert.doesNotMatch(summaryLine(sampleResult()), /finding/);
    const limited = sampleResult({
      status: 'rejected',
      exitCode: null,
      retryAfterMs: 199.7,
      message: 'rate limit: too many requests from this client; retry in 200 ms (rateLimit setting)',
    });
    // The server's message says when already: not said twice. A message that doesn't gets it added.
    assert.equal(summaryLine(limited), 'sbx: rejected: rate limit: too many requests from this client; retry in 200 ms (rateLimit setting)');
    assert.equal(summaryLine({ ...limited, message: 'rate limit' }), 'sbx: rejected: rate limit · retry in 200 ms');
    assert.equal(summaryLine({ ...limited, message: undefined }), 'sbx: rejected: the server refused to run the program · retry in 200 ms');
    assert.deepEqual(findingLines(sampleResult({ findings: [net] })), ['sbx: finding at line 3: network — opens a socket']);
    assert.deepEqual(findingLines(sampleResult({ findings: [net], message: 'blocked:\nline 3: network — opens a socket' })), []);
  });
});

describe('global options', () => {
  test('--version and --help exit 0', async () => {
    const version = await sbx(['--version']);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);
    const help = await sbx(['--help']);
    assert.equal(help.code, 0);
    for (const command of ['run', 'batch', 'languages']) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));
  });

  test("--verbose (before the command) shows the server's log on stderr", async () => {
    const out = await sbx(['--verbose', 'run', fx('hello.py')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'hello from sbx\n');
    assert.match(out.stderr, /^server: /m);
    const quiet = await sbx(['run', fx('hello.py')]);
    assert.doesNotMatch(quiet.stderr, /^server: /m);
  });
});

describe('bad input: exit 2, one sentence on stderr, no stack trace', { concurrency: 4 }, () => {
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'sbx-cli-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  const cases: [name: string, args: string[], expected: RegExp][] = [
    ['a missing file', ['run', fx('no-such-file.py')], /no-such-file\.py.*no such file/],
    ['a directory as the file', ['run', fx('batch')], /directory/],
    ['no file at all', ['run'], /missing required argument/],
    ['an unknown language', ['run', fx('hello.py'), '--lang', 'cobol'], /cobol.*python/],
    ['an unknown extension', ['run', fx('program.xyz')], /program\.xyz.*--lang/],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['an unknown flag', ['run', fx('hello.py'), '--bogus'], /unknown option '--bogus'/],
    ['an unknown global flag', ['--bogus', 'languages'], /unknown option '--bogus'/],
    ['--timeout without a value', ['run', fx('hello.py'), '--timeout'], /--timeout.*missing/],
    ['--timeout abc', ['run', fx('hello.py'), '--timeout', 'abc'], /^sbx: --timeout must be a positive whole number of milliseconds, got "abc"/],
    ['--timeout 0', ['run', fx('hello.py'), '--timeout', '0'], /--timeout must be a positive whole number/],
    ['--timeout -5', ['run', fx('hello.py'), '--timeout', '-5'], /--timeout must be a positive whole number/],
    ['--timeout 1.5', ['run', fx('hello.py'), '--timeout', '1.5'], /--timeout must be a positive whole number/],
    ['--memory abc', ['run', fx('hello.py'), '--memory', 'abc'], /--memory must be a positive whole number of MiB/],
    ['--memory in batch', ['batch', fx('batch'), '--memory', '-1'], /--memory must be a positive whole number/],
    ['--concurrency 0', ['batch', fx('batch'), '--concurrency', '0'], /--concurrency must be a positive whole number/],
    ['--concurrency x', ['batch', fx('batch'), '--concurrency', 'x'], /--concurrency must be a positive whole number/],
    ['a missing --stdin file', ['run', fx('upper.py'), '--stdin', fx('no-such-input.txt')], /--stdin file.*no such file/],
    ['a missing --config file', ['--config', fx('config/nope.json'), 'languages'], /config file.*no such file/],
    ['a --config file of bad JSON', ['--config', fx('config/not-json.json'), 'languages'], /not valid JSON/],
    ['a --config file holding an array', ['--config', fx('config/array.json'), 'languages'], /JSON object/],
    ['a --config file with a typo', ['--config', fx('config/typo.json'), 'languages'], /unknown field "poolsize"/],
    ['a --config file with a wrong type', ['run', fx('hello.py'), '--config', fx('config/wrong-type.json')], /limits\.timeoutMs/],
    ['batch over a missing path', ['batch', fx('no-such-dir')], /cannot find/],
    ['batch over a glob matching nothing', ['batch', fx('batch', '*.rb')], /matches no file/],
    ['batch over a file of unknown language', ['batch', fx('batch', 'a_ok.py'), fx('program.xyz')], /program\.xyz/],
    ['batch with no path', ['batch'], /missing required argument/],
  ];

  for (const [name, args, expected] of cases) {
    test(name, async () => {
      const out = await sbx(args);
      assert.equal(out.code, 2, `exit ${out.code}; stderr: ${out.stderr}`);
      assert.equal(out.stdout, '');
      assertNoStackTrace(out);
      assert.ok(out.stderr.endsWith('\n'));
      const lines = out.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `more than one line:\n${out.stderr}`);
      assert.match(lines[0], /^sbx: /);
      assert.match(lines[0], expected);
    });
  }

  test('an unreadable file', { skip: process.getuid?.() === 0 ? 'root reads every file' : false }, async () => {
    const file = path.join(scratch, 'secret.py');
    writeFileSync(file, 'print("secret")\n');
    chmodSync(file, 0o000);
    const out = await sbx(['run', file]);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /^sbx: cannot read the file .*permission denied\n$/);
  });

  test('bad input is refused before the server starts (fast)', async () => {
    const out = await sbx(['run', fx('no-such-file.py'), '--config', fx('config/cache-on.json')]);
    assert.equal(out.code, 2);
    assert.ok(out.elapsedMs < 5_000, `${out.elapsedMs} ms`);
  });
});
