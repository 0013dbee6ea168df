/**
 * The server's protocol end to end, through the real bundled server over real stdio: languages, cache, pool,
 * process trees, output, stdin/args/env/work dirs, program files, compiled binaries, batches, metrics and
 * malformed requests. One server per describe block; programs carry unique markers so `processesWith` can prove
 * that nothing of a run is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import {
  collectLogMessages,
  outputContaining,
  processesWith,
  ROOT,
  startServer,
  startServerWithEnv,
  workRootOf,
  stopServer,
  waitFor,
  type TestServer,
} from '../helpers/server';
import {
  ClearCacheRequest,
  ConfigureRequest,
  ExecuteBatchRequest,
  ExecuteRequest,
  LanguagesRequest,
  MetricsRequest,
  STATUSES,
  type ExecuteBatchParams,
  type ExecuteBatchResult,
  type ExecuteParams,
  type ExecutionResult,
  type Metrics,
  type RunStatus,
} from '../../server/protocol';

/** A hang fails the suite instead of stalling the run. */
const SUITE_TIMEOUT_MS = 60_000;

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'server');
const BUILTINS = ['python', 'javascript', 'typescript', 'shell', 'c', 'cpp'];

function execute(s: TestServer, params: ExecuteParams, cts?: CancellationTokenSource): Promise<ExecutionResult> {
  return s.conn.sendRequest(ExecuteRequest.type, params, cts?.token);
}

function executeBatch(s: TestServer, params: ExecuteBatchParams, cts?: CancellationTokenSource): Promise<ExecuteBatchResult> {
  return s.conn.sendRequest(ExecuteBatchRequest.type, params, cts?.token);
}

const metricsOf = (s: TestServer): Promise<Metrics> => s.conn.sendRequest(MetricsRequest.type);

const marker = (): string => `sbxmark-${randomUUID()}`;

/** SIGKILLs whatever carries `m` (cleanup after a test that found an escapee). */
async function killAll(m: string): Promise<void> {
  for (const pid of await processesWith(m)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** The JSON-RPC error a request ends with; fails when it succeeds. */
async function rpcError(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    assert.equal(typeof err.code, 'number', `a JSON-RPC error, got ${String(e)}`);
    return { code: err.code as number, message: String(err.message) };
  }
  return assert.fail('expected an error response, got a result');
}

const INVALID_PARAMS = -32602;
const METHOD_NOT_FOUND = -32601;
const SERVER_NOT_INITIALIZED = -32002;

// ---------------------------------------------------------------------------------------------------------------

void describe('sandbox/languages', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer();
  });
  after(async () => {
    await stopServer(s);
  });

  void test('the six built-ins are available with real, absolute binaries and versions', async () => {
    const r = await s.conn.sendRequest(LanguagesRequest.type);
    assert.equal(r.isolation, 'bwrap');
    for (const id of BUILTINS) {
      const info = r.languages.find((l) => l.id === id);
      assert.ok(info, `${id} is listed`);
      assert.equal(info.available, true, `${id}: ${info.message}`);
      assert.equal(info.source, 'builtin');
      assert.ok(info.binary && path.isAbsolute(info.binary), `${id}: binary ${info.binary} is absolute`);
      assert.ok(!info.binary.includes('/shims/'), `${id}: ${info.binary} is a shim`);
      assert.equal(realpathSync(info.binary), info.binary, `${id}: links are followed`);
      assert.ok(info.version && /\d/.test(info.version), `${id}: version ${info.version}`);
      assert.ok(info.extensions.length > 0 && info.extensions.every((e) => e.startsWith('.')), `${id}: extensions`);
      assert.ok(info.name.length > 0);
    }
    assert.deepEqual(
      r.languages.find((l) => l.id === 'python')?.extensions,
      ['.py'],
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

void describe('stdin, args, work dirs, program files, output', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  let tmp: string;
  before(async () => {
    s = await startServer();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'sbx-test-files-'));
  });
  after(async () => {
    await stopServer(s);
    rmSync(tmp, { recursive: true, force: true });
  });

  void test('stdin: the given text is what the program reads (python and shell)', async () => {
    const text = 'line one\nline two é\n';
    const py = await execute(s, { language: 'python', code: 'import sys\nsys.stdout.write(sys.stdin.read())', stdin: text, cache: false });
    assert.equal(py.status, 'ok', py.stderr);
    assert.equal(py.stdout, text);
    const sh = await execute(s, { language: 'shell', code: 'cat', stdin: 'from cat\n', cache: false });
    assert.equal(sh.status, 'ok', sh.stderr);
    assert.equal(sh.stdout, 'from cat\n');
  });

  void test('stdin: a large input is delivered whole', async () => {
    const big = 'z'.repeat(1024 * 1024 + 7);
    const r = await execute(s, { language: 'shell', code: 'wc -c', stdin: big, cache: false });
    assert.equal(r.status, 'ok', r.stderr);
    assert.equal(r.stdout.trim(), String(big.length));
  });

  void test('stdin: without stdin the program sees end-of-file at once', async () => {
    const r = await execute(s, {
      language: 'python',
      code: 'import sys\nprint(repr(sys.stdin.read()))',
      limits: { timeoutMs: 5000 },
      cache: false,
    });
    assert.equal(r.status, 'ok', r.stderr);
    assert.equal(r.stdout, "''\n");
    assert.ok(r.durationMs < 2000, `reading stdin took ${r.durationMs} ms`);
    const sh = await execute(s, { language: 'shell', code: 'cat; echo "eof:$?"', limits: { timeoutMs: 5000 }, cache: false });
    assert.equal(sh.status, 'ok');
    assert.equal(sh.stdout, 'eof:0\n');
  });

  void test('stdin: a program that never reads a large stdin still ends normally', async () => {
    const r = await execute(s, { language: 'shell', code: 'echo done', stdin: 'q'.repeat(3 * 1024 * 1024), cache: false });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout, 'done\n');
  });

  void test('stdin over 16 MiB and args over 128 KiB are rejected before anything runs', async () => {
    const bigStdin = await execute(s, { language: 'shell', code: 'wc -c', stdin: 'q'.repeat(16 * 1024 * 1024 + 1), cache: false });
    assert.equal(bigStdin.status, 'rejected');
    assert.match(bigStdin.message ?? '', /stdin is larger than/);
    assert.equal(bigStdin.workerId, null);
    const bigArgs = await execute(s, { language: 'shell', code: 'echo "$#"', args: Array.from({ length: 5 }, () => 'a'.repeat(30_000)), cache: false });
    assert.equal(bigArgs.status, 'rejected');
    assert.match(bigArgs.message ?? '', /arguments are larger than/);
    const fine = await execute(s, { language: 'shell', code: 'echo "$#"', args: Array.from({ length: 4 }, () => 'a'.repeat(30_000)), cache: false });
    assert.equal(fine.status, 'ok');
    assert.equal(fine.stdout, '4\n');
  });

  void test('args: passed through verbatim', async () => {
    const args = ['a b', '--flag', 'é', '', '$HOME', '*', "it's"];
    const py = await execute(s, {
      language: 'python',
      code: 'import json, sys\nprint(json.dumps(sys.argv[1:], ensure_ascii=False))',
      args,
      cache: false,
    });
    assert.equal(py.status, 'ok', py.stderr);
    assert.deepEqual(JSON.parse(py.stdout), args);
    const sh = await execute(s, { language: 'shell', code: 'printf "[%s]" "$@"', args, cache: false });
    assert.equal(sh.stdout, args.map((a) => `[${a}]`).join(''));
  });

  void test('work dir: cwd = HOME = /work, TMPDIR = /tmp, both empty tmpfs of the sandbox, fresh per run', async () => {
    const code = [
      'pwd',
      'echo "$HOME"',
      'echo "$TMPDIR"',
      'ls -A | tr "\\n" " "; echo',
      'ls -A /tmp | tr "\\n" " "; echo',
      'echo secret > left-behind.txt; echo secret > /tmp/left-behind.txt',
      'ls -A | tr "\\n" " "; echo',
      'df --output=fstype,size -B1 . /tmp | tail -n 2 | tr -s " " | tr "\\n" ";"',
    ].join('\n');
    const root = workRootOf(s.proc.pid!);
    assert.ok(root, 'the server has a work root');
    for (let i = 0; i < 2; i++) {
      const r = await execute(s, { language: 'shell', code, cache: false, limits: { diskMb: 3 } });
      assert.equal(r.status, 'ok', r.stderr);
      const [cwd, home, tmpdir, before, tmpBefore, afterWrite, df] = r.stdout.split('\n');
      assert.equal(cwd, '/work');
      assert.equal(home, '/work');
      assert.equal(tmpdir, '/tmp');
      // The second run sees nothing of the first one's files, here or in /tmp.
      assert.equal(before?.trim(), 'main.sh', 'a run starts with nothing but its program');
      assert.equal(tmpBefore?.trim(), '', '/tmp starts empty');
      assert.equal(afterWrite?.trim(), 'left-behind.txt main.sh');
      assert.equal(df, 'tmpfs 3145728;tmpfs 3145728;', 'both are tmpfs of limits.diskMb');
    }
    // On the host, the runs' own dirs are gone; the work root lives as long as the server.
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('run-')), []);
  });

  void test('file: a fixture file runs', async () => {
    const file = path.join(FIXTURES, 'hello.py');
    const r = await execute(s, { language: 'python', file, args: ['x'], cache: false });
    assert.equal(r.status, 'ok', r.message ?? r.stderr);
    assert.equal(r.stdout, "hello from the fixture file ['x']\n");
  });

  void test('file: missing, relative, symlink and directory are rejected', async () => {
    const missing = path.join(FIXTURES, `missing-${randomUUID()}.py`);
    const rm = await execute(s, { language: 'python', file: missing });
    assert.equal(rm.status, 'rejected');
    assert.ok(rm.message?.includes(missing), `the message names the file: ${rm.message}`);

    const rel = await execute(s, { language: 'python', file: 'test/fixtures/server/hello.py' });
    assert.equal(rel.status, 'rejected');
    assert.match(rel.message ?? '', /absolute/);
    assert.equal(rel.stdout, '');

    const link = path.join(tmp, 'link.py');
    symlinkSync(path.join(FIXTURES, 'hello.py'), link);
    const rl = await execute(s, { language: 'python', file: link });
    assert.equal(rl.status, 'rejected', 'a symlink is not followed');
    assert.ok(rl.message?.includes(link), rl.message);
    assert.equal(rl.stdout, '');

    const rd = await execute(s, { language: 'python', file: FIXTURES });
    assert.equal(rd.status, 'rejected');
    assert.match(rd.message ?? '', /not a regular file/);
  });

  void test('output caps count bytes, not characters', async () => {
    const runId = `utf8-${randomUUID()}`;
    const r = await execute(s, {
      language: 'python',
      code: 'import sys\nsys.stdout.write("é" * 5000)',
      limits: { outputBytes: 1001 },
      runId,
      cache: false,
    });
    assert.equal(r.status, 'output_limit');
    assert.equal(r.stdoutTruncated, true);
    const bytes = Buffer.byteLength(r.stdout);
    assert.ok(bytes <= 1001, `stdout is ${bytes} bytes, over the 1001-byte cap`);
    assert.ok(bytes >= 1000, `stdout keeps what fits (${bytes} bytes)`);
  });

  void test('output caps: a cut inside a character leaves no replacement character behind', async () => {
    const runId = `utf8-cut-${randomUUID()}`;
    const r = await execute(s, {
      language: 'python',
      code: 'import sys\nsys.stdout.write("é" * 5000)',
      limits: { outputBytes: 1001 },
      runId,
      cache: false,
    });
    assert.equal(r.status, 'output_limit');
    assert.match(r.stdout, /^é+$/, `stdout ends with ${JSON.stringify(r.stdout.slice(-3))}`);
    assert.equal(s.outputOf(runId), r.stdout, 'the streamed output is the output of the result');
  });

  void test('output caps: stdout and stderr are capped separately', async () => {
    // 800 + 800 bytes under a 1001-byte cap per stream: neither stream is over.
    const both = await execute(s, {
      language: 'python',
      code: 'import sys\nsys.stdout.write("o" * 800)\nsys.stderr.write("e" * 800)',
      limits: { outputBytes: 1001 },
      cache: false,
    });
    assert.equal(both.status, 'ok', both.stderr);
    assert.equal(both.stdout, 'o'.repeat(800));
    assert.equal(both.stderr, 'e'.repeat(800));
    assert.equal(both.stdoutTruncated, false);
    assert.equal(both.stderrTruncated, false);

    const errOnly = await execute(s, {
      language: 'python',
      code: 'import sys\nsys.stdout.write("small")\nsys.stdout.flush()\nsys.stderr.write("e" * 5000)',
      limits: { outputBytes: 1001 },
      cache: false,
    });
    assert.equal(errOnly.status, 'output_limit');
    assert.equal(errOnly.stderrTruncated, true);
    assert.equal(errOnly.stdoutTruncated, false);
    assert.equal(errOnly.stdout, 'small');
    assert.ok(Buffer.byteLength(errOnly.stderr) <= 1001);
    assert.match(errOnly.stderr, /^e+$/);
  });

  void test('live streaming: output arrives while the program still runs', async () => {
    const runId = `stream-${randomUUID()}`;
    const pending = execute(s, {
      language: 'python',
      code: 'import time\nprint("first", flush=True)\ntime.sleep(0.4)\nprint("second", flush=True)',
      runId,
      cache: false,
    });
    let respondedAt = 0;
    void pending.then(() => (respondedAt = Date.now()));
    await outputContaining(s, runId, 'first');
    const firstAt = Date.now();
    assert.equal(respondedAt, 0, 'the first chunk came before the response');
    assert.ok(!s.outputOf(runId).includes('second'));
    const r = await pending;
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout, 'first\nsecond\n');
    assert.ok(respondedAt - firstAt >= 300, `the first chunk came only ${respondedAt - firstAt} ms before the response`);
    assert.equal(s.outputOf(runId), 'first\nsecond\n');
    assert.ok(s.output.filter((o) => o.runId === runId).every((o) => o.stream === 'stdout'));
  });
  void test('live streaming: stderr chunks are marked stderr; a server-made runId is the one in the chunks', async () => {
    const before = s.output.length;
    const r = await execute(s, {
      language: 'python',
      code: 'import sys\nsys.stderr.write("to-stderr\\n")\nsys.stderr.flush()\nprint("to-stdout")',
      cache: false,
    });
    assert.equal(r.status, 'ok');
    const mine = s.output.slice(before).filter((o) => o.runId === r.runId);
    assert.ok(mine.length >= 2, 'the chunks carry the runId of the result');
    assert.equal(s.outputOf(r.runId, 'stderr'), 'to-stderr\n');
    assert.equal(s.outputOf(r.runId, 'stdout'), 'to-stdout\n');
    assert.equal(r.stderr, 'to-stderr\n');
  });

  void test(
    'live streaming: the chunks add up to the result even when the output ends inside a character',
    async () => {
      const runId = `cut-${randomUUID()}`;
      const r = await execute(s, { language: 'shell', code: 'printf "abc\\303"', runId, cache: false });
      assert.equal(r.status, 'ok');
      assert.equal(r.stdout, 'abc\uFFFD');
      assert.equal(s.outputOf(runId), r.stdout);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------

void describe('process trees: nothing of a run outlives it', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer();
  });
  after(async () => {
    await stopServer(s);
  });

  void test('timeout kills a shell program with children and grandchildren', async () => {
    const m = marker();
    const runId = `tree-sh-${randomUUID()}`;
    const code = [
      'm="$1"',
      'bash -c "exec -a $m-child sleep 300" &',
      'bash -c "bash -c \'exec -a $m-grandchild sleep 300\' & exec -a $m-middle sleep 300" &',
      'echo started',
      'bash -c "exec -a $m-foreground sleep 300"',
    ].join('\n');
    const pending = execute(s, { language: 'shell', code, args: [m], runId, limits: { timeoutMs: 2000 }, cache: false });
    await outputContaining(s, runId, 'started');
    // main.sh (its argument is the marker), child, middle, grandchild, foreground
    await waitFor(async () => (await processesWith(m)).length >= 5, 'the whole tree to be running', 1900);
    const r = await pending;
    assert.equal(r.status, 'timeout');
    assert.deepEqual(await processesWith(m), []);
  });

  void test('timeout kills what a python program started with subprocess.Popen', async () => {
    const m = marker();
    const runId = `tree-py-${randomUUID()}`;
    const code = [
      'import subprocess, sys, time',
      'm = sys.argv[1]',
      'subprocess.Popen(["bash", "-c", f"exec -a {m}-child sleep 300"])',
      'subprocess.Popen(["bash", "-c", f"bash -c \'exec -a {m}-grandchild sleep 300\' & exec -a {m}-middle sleep 300"])',
      'print("started", flush=True)',
      'time.sleep(300)',
    ].join('\n');
    const pending = execute(s, { language: 'python', code, args: [m], runId, limits: { timeoutMs: 2500 }, cache: false });
    await outputContaining(s, runId, 'started');
    await waitFor(async () => (await processesWith(m)).length >= 4, 'the whole tree to be running', 2000);
    const r = await pending;
    assert.equal(r.status, 'timeout');
    assert.deepEqual(await processesWith(m), []);
  });

  void test('a background process of a program that exits normally is gone after the result', async () => {
    const m = marker();
    const code = [
      '(exec -a "$1-bg" sleep 300) &',
      'pid=$!',
      'for i in $(seq 200); do grep -q -- "$1-bg" /proc/$pid/cmdline 2>/dev/null && break; sleep 0.01; done',
      'tr "\\0" " " < /proc/$pid/cmdline; echo',
      'exit 0',
    ].join('\n');
    const r = await execute(s, { language: 'shell', code, args: [m], cache: false });
    assert.equal(r.status, 'ok', r.stderr);
    assert.equal(r.stdout, `${m}-bg 300 \n`, 'the background process was running when the program exited');
    assert.deepEqual(await processesWith(m), []);
  });

  void test(
    'normal exit: processes that left the process group (setsid daemon, set -m job) are gone after the result',
    async () => {
      const m = marker();
      const code = [
        '(setsid bash -c "exec -a $1-daemon sleep 300" &)',
        'set -m',
        '(exec -a "$1-job" sleep 300) &',
        'for i in $(seq 200); do pgrep -f -- "$1-daemon" >/dev/null && pgrep -f -- "$1-job" >/dev/null && break; sleep 0.01; done',
        'pgrep -f -- "$1-daemon" >/dev/null && echo daemon-running',
        'pgrep -f -- "$1-job" >/dev/null && echo job-running',
        'exit 0',
      ].join('\n');
      try {
        const r = await execute(s, { language: 'shell', code, args: [m], cache: false });
        assert.equal(r.status, 'ok', r.stderr);
        assert.equal(r.stdout, 'daemon-running\njob-running\n');
        assert.deepEqual(await processesWith(m), []);
      } finally {
        await killAll(m); // the suite must not leave an escapee behind, whatever the server does
      }
    },
  );

  void test('normal exit: a python child in a new session (start_new_session=True) is gone after the result', async () => {
    const m = marker();
    const code = [
      'import subprocess, sys, time',
      'm = sys.argv[1]',
      'subprocess.Popen(["bash", "-c", f"exec -a {m}-session sleep 300"], start_new_session=True)',
      'for _ in range(200):',
      '    if subprocess.run(["pgrep", "-f", f"{m}-session"], capture_output=True).returncode == 0:',
      '        print("session-running")',
      '        break',
      '    time.sleep(0.01)',
    ].join('\n');
    try {
      const r = await execute(s, { language: 'python', code, args: [m], cache: false });
      assert.equal(r.status, 'ok', r.stderr);
      assert.equal(r.stdout, 'session-running\n');
      assert.deepEqual(await processesWith(m), []);
    } finally {
      await killAll(m);
    }
  });

  void test(
    'timeout: a daemonized grandchild (setsid, orphaned at once) is killed too',
    async () => {
      const m = marker();
      const runId = `daemon-${randomUUID()}`;
      const code = ['(setsid bash -c "exec -a $1-daemon sleep 300" &)', 'echo started', 'sleep 300'].join('\n');
      try {
        const pending = execute(s, { language: 'shell', code, args: [m], runId, limits: { timeoutMs: 1500 }, cache: false });
        await outputContaining(s, runId, 'started');
        await waitFor(async () => (await processesWith(`${m}-daemon`)).length > 0, 'the daemon to run', 1400);
        const r = await pending;
        assert.equal(r.status, 'timeout');
        assert.deepEqual(await processesWith(m), []);
      } finally {
        await killAll(m);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------

void describe('result cache', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  const tag = randomUUID();
  /** Prints a fresh uuid on every real run: equal stdout of two results means the second came from the cache. */
  const code = `import uuid\nprint(uuid.uuid4())  # ${tag}`;
  const base: ExecuteParams = { language: 'python', code };
  let hits = 0;
  let misses = 0;
  const expectCounters = async (what: string): Promise<Metrics> => {
    const m = await metricsOf(s);
    assert.equal(m.cache.hits, hits, `${what}: hits`);
    assert.equal(m.cache.misses, misses, `${what}: misses`);
    return m;
  };

  before(async () => {
    s = await startServer();
  });
  after(async () => {
    await stopServer(s);
  });

  void test('an identical second request is served from the cache', async () => {
    await expectCounters('fresh server');
    const r1 = await execute(s, base);
    misses++;
    assert.equal(r1.status, 'ok');
    assert.equal(r1.cached, false);
    assert.match(r1.workerId ?? '', /^w\d+$/);
    const r2 = await execute(s, base);
    hits++;
    assert.equal(r2.cached, true);
    assert.equal(r2.workerId, null);
    assert.equal(r2.status, 'ok');
    assert.equal(r2.stdout, r1.stdout);
    assert.notEqual(r2.runId, r1.runId);
    const r3 = await execute(s, { ...base, runId: `mine-${tag}` });
    hits++;
    assert.equal(r3.cached, true);
    assert.equal(r3.runId, `mine-${tag}`, 'a cached result carries the runId of its request');
    assert.equal(r3.stdout, r1.stdout);
    const m = await expectCounters('after one miss and two hits');
    assert.equal(m.cache.entries, 1);
    assert.equal(m.cache.hitRate, 2 / 3);
    assert.ok(m.cache.bytes > 0);
    assert.equal(m.recentRuns[0]?.cached, true);
  });

  void test('cache: false always runs and stores nothing', async () => {
    const other: ExecuteParams = { language: 'python', code: `${code}\n# no-store` };
    const a = await execute(s, { ...other, cache: false });
    const b = await execute(s, { ...other, cache: false });
    assert.equal(a.cached, false);
    assert.equal(b.cached, false);
    assert.notEqual(a.stdout, b.stdout, 'both really ran');
    await expectCounters('cache: false looks nothing up');
    const c = await execute(s, other);
    misses++;
    assert.equal(c.cached, false, 'nothing was stored by the cache: false runs');
    assert.notEqual(c.stdout, a.stdout);
    const d = await execute(s, other);
    hits++;
    assert.equal(d.cached, true);
    assert.equal(d.stdout, c.stdout);
    await expectCounters('after a miss and a hit');
  });

  void test('a change of stdin, args, limits or code is a miss; the same effective limits are a hit', async () => {
    const first = await execute(s, base);
    hits++;
    assert.equal(first.cached, true);
    const variants: ExecuteParams[] = [
      { ...base, stdin: 'x' },
      { ...base, stdin: '' },
      { ...base, args: ['a'] },
      { ...base, limits: { timeoutMs: 9999 } },
      { ...base, limits: { memoryMb: 300 } },
      { ...base, limits: { outputBytes: 12345 } },
      { ...base, code: `${code}\n# changed` },
    ];
    for (const v of variants) {
      const r = await execute(s, v);
      misses++;
      assert.equal(r.cached, false, `miss for ${JSON.stringify({ ...v, code: undefined })}`);
      assert.notEqual(r.stdout, first.stdout);
    }
    // limits equal to the server's defaults are the same run as no limits at all
    const same = await execute(s, { ...base, limits: { timeoutMs: 10_000, memoryMb: 512 } });
    hits++;
    assert.equal(same.cached, true);
    assert.equal(same.stdout, first.stdout);
    await expectCounters('after the variants');
  });

  void test('sandbox/clearCache answers the count and empties the cache', async () => {
    const before = await metricsOf(s);
    assert.ok(before.cache.entries > 1);
    const { cleared } = await s.conn.sendRequest(ClearCacheRequest.type);
    assert.equal(cleared, before.cache.entries);
    const after = await expectCounters('clearing keeps the counters');
    assert.equal(after.cache.entries, 0);
    assert.equal(after.cache.bytes, 0);
    const r = await execute(s, base);
    misses++;
    assert.equal(r.cached, false);
    assert.equal((await s.conn.sendRequest(ClearCacheRequest.type)).cleared, 1);
  });

  void test('a timeout is never cached', async () => {
    const spin: ExecuteParams = { language: 'python', code: `while True:\n    pass  # ${tag}`, limits: { timeoutMs: 300 } };
    const entries = (await metricsOf(s)).cache.entries;
    const a = await execute(s, spin);
    misses++;
    const b = await execute(s, spin);
    misses++;
    assert.equal(a.status, 'timeout');
    assert.equal(b.status, 'timeout');
    assert.equal(b.cached, false);
    assert.notEqual(b.workerId, null);
    const m = await expectCounters('two timeouts');
    assert.equal(m.cache.entries, entries);
  });
  void test('sandbox/configure can turn the cache off: identical runs all run', async () => {
    await s.conn.sendRequest(ConfigureRequest.type, { cache: { enabled: false } });
    const a = await execute(s, base);
    const b = await execute(s, base);
    assert.equal(a.cached, false);
    assert.equal(b.cached, false);
    assert.notEqual(a.stdout, b.stdout, 'both really ran');
    const m = await expectCounters('a disabled cache looks nothing up');
    assert.equal(m.cache.enabled, false);
    assert.equal(m.cache.entries, 0);
  });
});

void describe('result cache and the executor map', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ executorMap: { py: { command: 'python3', args: ['$file'], extension: '.py' } } });
  });
  after(async () => {
    await stopServer(s);
  });

  void test(
    'changing an executor\'s arguments with sandbox/configure never serves the old result',
    async () => {
      const code = `print(__debug__)  # ${randomUUID()}`;
      const plain = await execute(s, { language: 'py', code });
      assert.equal(plain.status, 'ok', plain.message ?? plain.stderr);
      assert.equal(plain.stdout, 'True\n');
      await s.conn.sendRequest(ConfigureRequest.type, {
        executorMap: { py: { command: 'python3', args: ['-O', '$file'], extension: '.py' } },
      });
      const uncached = await execute(s, { language: 'py', code, cache: false });
      assert.equal(uncached.stdout, 'False\n', 'python -O runs now');
      const r = await execute(s, { language: 'py', code });
      assert.equal(r.stdout, 'False\n');
      assert.equal(r.cached, false);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------

void describe('pool: queue limit', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 1, queueLimit: 1 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('with one worker and a queue of one, the third of three runs is rejected; the others run in turn', async () => {
    // Each run prints when it started and ended (ns), to prove the two that ran did not overlap.
    const code = 'date +%s%N\nsleep 0.5\ndate +%s%N';
    const settled: number[] = [];
    const runs = [0, 1, 2].map((i) =>
      execute(s, { language: 'shell', code, cache: false, runId: `q-${i}-${randomUUID()}` }).then((r) => {
        settled.push(i);
        return r;
      }),
    );
    const results = await Promise.all(runs);
    const rejected = results.filter((r) => r.status === 'rejected');
    assert.equal(rejected.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.equal(results[2]?.status, 'rejected', 'the one that found the queue full is the last to arrive');
    assert.match(rejected[0]?.message ?? '', /queue full/);
    assert.equal(rejected[0]?.workerId, null);
    assert.equal(settled[0], 2, 'the rejection is immediate');
    const [a, b] = results as [ExecutionResult, ExecutionResult];
    for (const r of [a, b]) {
      assert.equal(r.status, 'ok', r.stderr);
      assert.equal(r.workerId, 'w1');
    }
    const [aStart, aEnd] = a.stdout.trim().split('\n').map(BigInt);
    const [bStart] = b.stdout.trim().split('\n').map(BigInt);
    assert.ok(aStart !== undefined && aEnd !== undefined && bStart !== undefined);
    assert.ok(bStart >= aEnd, 'the second run started after the first had ended');
    const m = await metricsOf(s);
    assert.equal(m.peakConcurrency, 1);
    assert.equal(m.runsByStatus.rejected, 1);
    assert.equal(m.workers[0]?.runs, 2);
  });
});

void describe('pool: FIFO', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 1, queueLimit: 10 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('queued runs are served in arrival order', async () => {
    const tag = randomUUID();
    const order: string[] = [];
    const track = (name: string, p: Promise<ExecutionResult>) =>
      p.then((r) => {
        order.push(name);
        return r;
      });
    const blockerId = `blocker-${tag}`;
    const blocker = track('blocker', execute(s, { language: 'shell', code: 'echo started\nsleep 1.5', runId: blockerId, cache: false }));
    await outputContaining(s, blockerId, 'started');
    const names = ['A', 'B', 'C'];
    const queued = names.map((n) => track(n, execute(s, { language: 'shell', code: `echo ${n}`, runId: `${n}-${tag}`, cache: false })));
    await waitFor(async () => (await metricsOf(s)).pool.queued === 3, 'A, B and C to be queued behind the blocker', 1400);
    const results = await Promise.all([blocker, ...queued]);
    assert.deepEqual(order, ['blocker', 'A', 'B', 'C']);
    assert.deepEqual(
      results.slice(1).map((r) => r.stdout),
      ['A\n', 'B\n', 'C\n'],
    );
    const m = await metricsOf(s);
    assert.deepEqual(
      m.recentRuns.slice(0, 4).map((r) => r.runId),
      [`C-${tag}`, `B-${tag}`, `A-${tag}`, blockerId],
    );
    const finished = m.recentRuns.slice(0, 4).map((r) => r.finishedAt);
    assert.deepEqual([...finished].sort((x, y) => y - x), finished);
  });
  void test('a queued run that is cancelled leaves the queue at once and never takes a worker', async () => {
    const tag = randomUUID();
    const blockerId = `blocker2-${tag}`;
    let blockerDone = false;
    const blocker = execute(s, { language: 'shell', code: 'echo started\nsleep 1.5', runId: blockerId, cache: false }).then((r) => {
      blockerDone = true;
      return r;
    });
    await outputContaining(s, blockerId, 'started');
    const cts = new CancellationTokenSource();
    const queuedId = `queued-${tag}`;
    const queued = execute(s, { language: 'shell', code: 'echo never', runId: queuedId, cache: false }, cts);
    await waitFor(async () => (await metricsOf(s)).pool.queued === 1, 'the run to be queued', 1400);
    cts.cancel();
    const r = await queued;
    assert.equal(blockerDone, false, 'the cancel did not wait for the worker');
    assert.equal(r.status, 'cancelled');
    assert.equal(r.runId, queuedId);
    assert.equal(r.workerId, null);
    assert.equal(r.stdout, '');
    assert.equal(s.outputOf(queuedId), '');
    assert.equal((await metricsOf(s)).pool.queued, 0);
    assert.equal((await blocker).status, 'ok');
    const next = await execute(s, { language: 'shell', code: 'echo next', cache: false });
    assert.equal(next.stdout, 'next\n', 'the worker is free again');
    assert.equal(next.workerId, 'w1');
    cts.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------------------

void describe('environment allow-list', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  const secret = `xyz-${randomUUID()}`;
  const ALLOWED = /^(PATH|HOME|TMPDIR|LANG|LC_ALL|TERM|PYTHON\w*|PWD|SHLVL|_)$/;
  before(async () => {
    s = await startServerWithEnv({ SBX_SECRET: secret, SBX_OTHER: 'other-value' });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('the server has the variable; a run does not see it', async () => {
    const serverEnv = readFileSync(`/proc/${s.proc.pid}/environ`, 'utf8');
    assert.ok(serverEnv.includes(`SBX_SECRET=${secret}`), 'the test really gave the server the variable');

    const sh = await execute(s, { language: 'shell', code: 'env', cache: false });
    assert.equal(sh.status, 'ok');
    assert.ok(!sh.stdout.includes(secret));
    const keys = sh.stdout
      .trim()
      .split('\n')
      .map((l) => l.slice(0, l.indexOf('=')));
    assert.ok(keys.includes('PATH') && keys.includes('HOME'), keys.join(' '));
    for (const k of keys) assert.match(k, ALLOWED, `${k} is not on the allow-list`);

    const py = await execute(s, { language: 'python', code: 'import json, os\nprint(json.dumps(dict(os.environ)))', cache: false });
    assert.equal(py.status, 'ok', py.stderr);
    const env = JSON.parse(py.stdout) as Record<string, string>;
    assert.equal(env.SBX_SECRET, undefined);
    for (const k of Object.keys(env)) assert.match(k, ALLOWED, `${k} is not on the allow-list`);
    assert.ok(!Object.values(env).includes(secret));
  });
});

// ---------------------------------------------------------------------------------------------------------------

void describe('compiled binaries are cached by source hash', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  let logs: string[];
  before(async () => {
    s = await startServer({ poolSize: 4 });
    logs = collectLogMessages(s);
  });
  after(async () => {
    await stopServer(s);
  });

  void test('the same C program runs twice (cache: false) with one compile', async () => {
    const tag = randomUUID();
    const code = `#include <stdio.h>\nint main(void) { puts("${tag}"); return 0; }\n`;
    const compiles = () => logs.filter((m) => /^c: compiled/.test(m)).length;
    const r1 = await execute(s, { language: 'c', code, cache: false });
    const r2 = await execute(s, { language: 'c', code, cache: false });
    for (const r of [r1, r2]) {
      assert.equal(r.status, 'ok', r.message ?? r.stderr);
      assert.equal(r.stdout, `${tag}\n`);
      assert.equal(r.cached, false);
    }
    assert.equal(compiles(), 1);
    const r3 = await execute(s, { language: 'c', code: code.replace(tag, `${tag}-2`), cache: false });
    assert.equal(r3.stdout, `${tag}-2\n`);
    assert.equal(compiles(), 2, 'other source, other compile');
  });
  void test(
    'concurrent runs of the same C source all succeed',
    async () => {
      for (let round = 0; round < 4; round++) {
        const tag = randomUUID();
        const code = `#include <stdio.h>\nint main(void) { puts("${tag}"); return 0; }\n`;
        const results = await Promise.all([0, 1, 2, 3].map(() => execute(s, { language: 'c', code, cache: false })));
        for (const r of results) {
          assert.equal(r.status, 'ok', r.message);
          assert.equal(r.stdout, `${tag}\n`);
        }
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------

void describe('sandbox/executeBatch', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 2 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('results come in input order, whatever order the items finish in', async () => {
    const tag = randomUUID();
    const sleeps = [0.5, 0, 0.25, 0];
    const items: ExecuteParams[] = sleeps.map((t, i) => ({
      language: 'shell',
      code: `sleep ${t}\necho ${i}`,
      runId: `order-${i}-${tag}`,
      cache: false,
    }));
    const { results, summary } = await executeBatch(s, { items });
    assert.deepEqual(
      results.map((r) => r.stdout),
      ['0\n', '1\n', '2\n', '3\n'],
    );
    assert.deepEqual(
      results.map((r) => r.runId),
      items.map((i) => i.runId),
    );
    assert.equal(summary.ok, 4);
    const finished = new Map((await metricsOf(s)).recentRuns.map((r) => [r.runId, r.finishedAt]));
    assert.ok(finished.get(`order-0-${tag}`)! > finished.get(`order-1-${tag}`)!, 'item 0 finished after item 1');
  });

  void test('only the bad items fail; the summary adds up', async () => {
    const tag = randomUUID();
    const items = [
      { language: 'python', code: `print("py")  # ${tag}` },
      { language: 5 },
      { language: 'cobol', code: 'DISPLAY "X"' },
      { language: 'shell', code: `exit 3  # ${tag}` },
      { language: 'javascript', code: `console.log("js") // ${tag}` },
      { language: 'python' },
    ] as unknown as ExecuteParams[];
    const { results, summary } = await executeBatch(s, { items });
    assert.deepEqual(
      results.map((r) => r.status),
      ['ok', 'rejected', 'rejected', 'runtime_error', 'ok', 'rejected'],
    );
    assert.equal(results[0]?.stdout, 'py\n');
    assert.equal(results[4]?.stdout, 'js\n');
    assert.equal(results[3]?.exitCode, 3);
    assert.match(results[1]?.message ?? '', /item 1: .*language/);
    assert.match(results[2]?.message ?? '', /unknown language "cobol"/);
    assert.match(results[5]?.message ?? '', /item 5: .*exactly one of code and file/);
    assert.equal(results[2]?.language, 'cobol');
    assert.deepEqual(
      { total: summary.total, ok: summary.ok, failed: summary.failed, cached: summary.cached, byStatus: summary.byStatus },
      { total: 6, ok: 2, failed: 4, cached: 0, byStatus: { ok: 2, rejected: 3, runtime_error: 1 } },
    );
    const sum = results.reduce((n, r) => n + r.durationMs, 0);
    assert.ok(Math.abs(summary.totalDurationMs - sum) < 0.02, `${summary.totalDurationMs} vs ${sum}`);
    assert.ok(summary.wallMs > 0);

    const again = await executeBatch(s, { items });
    assert.deepEqual(
      again.results.map((r) => r.cached),
      [true, false, false, true, true, false],
    );
    assert.equal(again.summary.cached, 3);
    assert.deepEqual(again.summary.byStatus, { ok: 2, rejected: 3, runtime_error: 1 });
  });

  void test('an empty batch answers an empty result', async () => {
    const { results, summary } = await executeBatch(s, { items: [] });
    assert.deepEqual(results, []);
    assert.deepEqual(
      { total: summary.total, ok: summary.ok, failed: summary.failed, cached: summary.cached, byStatus: summary.byStatus },
      { total: 0, ok: 0, failed: 0, cached: 0, byStatus: {} },
    );
  });

  void test('cancelling a batch ends every remaining item cancelled and kills what runs', async () => {
    const m = marker();
    const tag = randomUUID();
    const items: ExecuteParams[] = [0, 1, 2, 3, 4].map((i) => ({
      language: 'shell',
      code: `echo started-${i}\nsleep 300`,
      args: [m],
      runId: `cancel-${i}-${tag}`,
      cache: false,
    }));
    const cts = new CancellationTokenSource();
    const pending = executeBatch(s, { items }, cts);
    await outputContaining(s, `cancel-0-${tag}`, 'started-0');
    await outputContaining(s, `cancel-1-${tag}`, 'started-1');
    const cancelledAt = performance.now();
    cts.cancel();
    const { results, summary } = await pending;
    assert.ok(performance.now() - cancelledAt < 3000);
    assert.deepEqual(
      results.map((r) => r.status),
      ['cancelled', 'cancelled', 'cancelled', 'cancelled', 'cancelled'],
    );
    assert.deepEqual(summary.byStatus, { cancelled: 5 });
    assert.equal(summary.ok, 0);
    assert.equal(s.outputOf(`cancel-4-${tag}`), '', 'an item after the cancel never started');
    assert.deepEqual(await processesWith(m), []);
    cts.dispose();
  });
});

void describe('sandbox/executeBatch concurrency', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 2 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('concurrency: 1 runs one item at a time; the default uses the pool', async () => {
    const items = (tag: string): ExecuteParams[] =>
      [0, 1, 2, 3].map((i) => ({ language: 'shell', code: `sleep 0.3 # ${tag} ${i}`, cache: false }));
    assert.equal((await metricsOf(s)).peakConcurrency, 0, 'a fresh server');
    const serial = await executeBatch(s, { items: items('serial'), concurrency: 1 });
    assert.equal(serial.summary.ok, 4);
    assert.equal((await metricsOf(s)).peakConcurrency, 1);
    assert.ok(serial.summary.wallMs >= 1200, `4 × 0.3 s one at a time took ${serial.summary.wallMs} ms`);
    const parallel = await executeBatch(s, { items: items('parallel') });
    assert.equal(parallel.summary.ok, 4);
    assert.equal((await metricsOf(s)).peakConcurrency, 2);
    assert.ok(parallel.summary.wallMs < serial.summary.wallMs - 300, `${parallel.summary.wallMs} vs ${serial.summary.wallMs}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------

void describe('sandbox/metrics', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 2 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('counts, statuses, recent runs and workers add up', async () => {
    const fresh = await metricsOf(s);
    assert.equal(fresh.runsTotal, 0);
    assert.deepEqual(fresh.recentRuns, []);
    const tag = randomUUID();
    const requests: ExecuteParams[] = [
      { language: 'python', code: 'print(1)' },
      { language: 'shell', code: 'echo 2' },
      { language: 'javascript', code: 'console.log(3)' },
      { language: 'shell', code: 'exit 3' },
      { language: 'cobol', code: 'x' },
    ].map((p, i) => ({ ...p, runId: `m-${i}-${tag}`, cache: false }));
    const results: ExecutionResult[] = [];
    for (const p of requests) results.push(await execute(s, p));
    assert.deepEqual(
      results.map((r) => r.status),
      ['ok', 'ok', 'ok', 'runtime_error', 'rejected'],
    );
    const m = await metricsOf(s);
    assert.equal(m.runsTotal, 5);
    const expected = Object.fromEntries(STATUSES.map((st) => [st, 0])) as Record<RunStatus, number>;
    expected.ok = 3;
    expected.runtime_error = 1;
    expected.rejected = 1;
    assert.deepEqual(m.runsByStatus, expected);
    assert.deepEqual(
      m.recentRuns.map((r) => r.runId),
      requests.map((p) => p.runId).reverse(),
    );
    for (let i = 1; i < m.recentRuns.length; i++) {
      assert.ok(m.recentRuns[i - 1]!.finishedAt >= m.recentRuns[i]!.finishedAt, 'newest first');
    }
    const last = m.recentRuns[0]!;
    assert.equal(last.status, 'rejected');
    assert.equal(last.workerId, null);
    assert.equal(last.language, 'cobol');
    const rte = m.recentRuns[1]!;
    assert.equal(rte.durationMs, results[3]!.durationMs);
    assert.equal(rte.peakMemoryBytes, results[3]!.peakMemoryBytes);
    assert.equal(rte.workerId, results[3]!.workerId);
    assert.equal(
      m.workers.reduce((n, w) => n + w.runs, 0),
      4,
      'the four runs that reached a worker',
    );
    assert.equal(
      m.workers.reduce((n, w) => n + w.failures, 0),
      1,
    );
    assert.equal(m.durationMs.max, Math.max(...results.map((r) => r.durationMs)));
    assert.equal(m.peakMemoryBytes, Math.max(...results.map((r) => r.peakMemoryBytes)));
    assert.equal(m.runsPerMinute, 5);
    assert.deepEqual(m.pool, { size: 2, busy: 0, idle: 2, queued: 0, queueLimit: 256 });
    assert.equal(m.queueLength, 0);
    assert.ok(m.uptimeMs > 0);
    assert.ok(m.workers.every((w) => w.utilisation >= 0 && w.utilisation <= 1 && !w.busy));
  });

  void test('sandbox/metricsChanged arrives and is throttled to 4 a second', async () => {
    const start = s.metricsEvents.length;
    const before = (await metricsOf(s)).runsTotal;
    const n = 30;
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => execute(s, { language: 'shell', code: `echo ${i}`, cache: false })),
    );
    assert.ok(results.every((r) => r.status === 'ok'));
    // the trailing notification carries the final state
    await waitFor(() => s.metricsEvents.at(-1)?.runsTotal === before + n, 'a metricsChanged with every run', 2000);
    const elapsed = Date.now() - t0;
    const count = s.metricsEvents.length - start;
    assert.ok(count >= 1);
    assert.ok(count <= elapsed / 250 + 2, `${count} notifications in ${elapsed} ms`);
    assert.equal((await metricsOf(s)).runsTotal, before + n);
  });
});

// ---------------------------------------------------------------------------------------------------------------

void describe('malformed and invalid requests', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({ poolSize: 2 });
  });
  after(async () => {
    await stopServer(s);
  });

  void test('bad JSON on the wire does not kill the server', async () => {
    s.proc.stdin.write('Content-Length: 9\r\n\r\n{bad json');
    s.proc.stdin.write('Content-Length: 9\r\n\r\n{"foo":1}'); // JSON, but no JSON-RPC message
    s.proc.stdin.write('Content-Length: 4\r\n\r\nnull');
    const r = await s.conn.sendRequest(LanguagesRequest.type);
    assert.ok(r.languages.length >= 6);
    assert.equal(s.proc.exitCode, null);
    const run = await execute(s, { language: 'shell', code: 'echo alive', cache: false });
    assert.equal(run.stdout, 'alive\n');
  });

  void test('an unknown method is -32601', async () => {
    const e = await rpcError(s.conn.sendRequest('sandbox/nope', {}));
    assert.equal(e.code, METHOD_NOT_FOUND);
  });

  void test('wrong params are -32602 with a readable message, and never reach the engine', async () => {
    const runsBefore = (await metricsOf(s)).runsTotal;
    const cases: [unknown, RegExp][] = [
      [{ language: 1, code: 'x' }, /language/],
      [{ language: 'python' }, /exactly one of code and file/],
      [{ language: 'python', code: 'x', file: '/tmp/x.py' }, /exactly one of code and file/],
      [{ language: 'python', code: 'x', limits: { timeoutMs: -1 } }, /limits\.timeoutMs.*positive/],
      [{ language: 'python', code: 'x', limits: { memoryMb: 'lots' } }, /limits\.memoryMb/],
      [{ language: 'python', code: 'x', bogus: true }, /bogus/],
      [{ language: 'python', code: 'x', args: 'a b' }, /args/],
      [{ language: 'python', code: 'x', runId: 'has spaces' }, /runId/],
      [{ language: '', code: 'x' }, /language/],
      [null, /expected object/],
      [['python', 'x'], /expected object/],
      [{ language: 'python', code: 'x', args: Array.from({ length: 1001 }, () => 'a') }, /at most 1000 args/],
    ];
    for (const [params, says] of cases) {
      const e = await rpcError(s.conn.sendRequest(ExecuteRequest.method, params));
      assert.equal(e.code, INVALID_PARAMS, JSON.stringify(params));
      assert.match(e.message, says, JSON.stringify(params));
      assert.match(e.message, /^invalid params: /);
    }
    for (const [params, says] of [
      [{ items: 'x' }, /items/],
      [{ items: [], concurrency: 0 }, /concurrency/],
      [{ items: [], extra: 1 }, /extra/],
    ] as [unknown, RegExp][]) {
      const e = await rpcError(s.conn.sendRequest(ExecuteBatchRequest.method, params));
      assert.equal(e.code, INVALID_PARAMS, JSON.stringify(params));
      assert.match(e.message, says);
    }
    assert.equal((await metricsOf(s)).runsTotal, runsBefore);
    assert.equal(s.proc.exitCode, null);
  });

  void test('sandbox/configure: bad config is -32602 and changes nothing; a good one applies', async () => {
    for (const [cfg, says] of [
      [{ poolSize: 0 }, /poolSize/],
      [{ poolSize: 'x' }, /poolSize/],
      [{ queueLimit: -1 }, /queueLimit/],
      [{ nonsense: true }, /nonsense/],
    ] as [unknown, RegExp][]) {
      const e = await rpcError(s.conn.sendRequest(ConfigureRequest.method, cfg));
      assert.equal(e.code, INVALID_PARAMS, JSON.stringify(cfg));
      assert.match(e.message, says);
    }
    assert.equal((await metricsOf(s)).pool.size, 2);
    const r = await s.conn.sendRequest(ConfigureRequest.type, { poolSize: 3 });
    assert.ok(BUILTINS.every((id) => r.languages.some((l) => l.id === id && l.available)));
    const m = await metricsOf(s);
    assert.equal(m.pool.size, 3);
    assert.deepEqual(
      m.workers.map((w) => w.id),
      ['w1', 'w2', 'w3'],
    );
  });
});

void describe('requests before initialize', { timeout: SUITE_TIMEOUT_MS }, () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({}, false);
  });
  after(async () => {
    await stopServer(s);
  });

  void test('answer an error, not a crash; the server works once initialized', async () => {
    const e1 = await rpcError(s.conn.sendRequest(ExecuteRequest.type, { language: 'shell', code: 'echo hi' }));
    assert.equal(e1.code, SERVER_NOT_INITIALIZED);
    assert.match(e1.message, /initialize/);
    const e2 = await rpcError(s.conn.sendRequest(MetricsRequest.type));
    assert.equal(e2.code, SERVER_NOT_INITIALIZED);
    assert.equal(s.proc.exitCode, null);

    const bad = await rpcError(
      s.conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { poolSize: -1 } }),
    );
    assert.equal(bad.code, INVALID_PARAMS);
    assert.match(bad.message, /poolSize/);

    await s.conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: { poolSize: 1 } });
    await s.conn.sendNotification('initialized', {});
    const r = await execute(s, { language: 'shell', code: 'echo hi' });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout, 'hi\n');
    assert.equal((await metricsOf(s)).pool.size, 1);
  });
});
