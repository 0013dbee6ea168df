/** Runtime resolution (real binaries on this machine), command lines, limits per language, validation. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binaryKey, commandLine, resolveRuntimes, rlimitsFor } from '../../server/languages';
import { parseConfig, parseExecute, parseExecuteBatch } from '../../server/validation';
import { sandboxEnv, summarize } from '../../server/engine';
import type { ExecutionResult } from '../../server/protocol';

describe('runtime resolution', async () => {
  const runtimes = await resolveRuntimes();

  test('finds every built-in language here, down to its real binary', () => {
    assert.deepEqual([...runtimes.keys()].sort(), ['c', 'cpp', 'javascript', 'python', 'shell', 'typescript']);
    for (const r of runtimes.values()) {
      assert.ok(r.available, `${r.id}: ${r.message}`);
      assert.ok(r.binary && path.isAbsolute(r.binary), `${r.id} binary ${r.binary}`);
      assert.equal(realpathSync(r.binary), r.binary, `${r.id}: ${r.binary} is a link`);
      assert.doesNotMatch(r.binary, /shims/, `${r.id} resolved to a shim`);
      assert.match(r.version ?? '', /^\d+\.\d+/, `${r.id} version ${r.version}`);
    }
  });

  test('a python shim on PATH resolves to the interpreter itself', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-shim-'));
    const real = runtimes.get('python')!.binary!;
    // A shim like pyenv's: a script that execs the real interpreter.
    writeFileSync(path.join(dir, 'python3'), `#!/bin/sh\nexec ${real} "$@"\n`, { mode: 0o755 });
    const viaShim = await resolveRuntimes({}, `${dir}:/usr/bin:/bin`);
    assert.equal(viaShim.get('python')!.binary, real);
  });

  test('a language whose runtime is missing is unavailable, with a reason', async () => {
    const none = await resolveRuntimes({}, mkdtempSync(path.join(os.tmpdir(), 'sbx-empty-')));
    const py = none.get('python')!;
    assert.equal(py.available, false);
    assert.match(py.message ?? '', /python3, python was found on PATH|none of/);
  });

  test('the executor map adds languages and overrides built-ins', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-map-'));
    symlinkSync('/bin/bash', path.join(dir, 'mysh'));
    const map = await resolveRuntimes(
      {
        myshell: { command: 'mysh', args: ['-e', '$file'], extension: '.my' },
        python: { command: '/bin/bash' },
      },
      `${dir}:/usr/bin:/bin`,
    );
    const mine = map.get('myshell')!;
    assert.equal(mine.source, 'executorMap');
    assert.equal(mine.binary, realpathSync('/bin/bash'));
    assert.deepEqual(mine.extensions, ['.my']);
    assert.deepEqual(commandLine(mine, 'main.my', ['a']), [mine.binary, '-e', 'main.my', 'a']);
    assert.equal(map.get('python')!.source, 'executorMap');
    const missing = await resolveRuntimes({ nope: { command: 'no-such-binary-here' } });
    assert.equal(missing.get('nope')!.available, false);
  });

  test('command lines, and an address-space limit for every runtime but V8', () => {
    const node = runtimes.get('javascript')!;
    assert.deepEqual(commandLine(node, 'main.js', ['x']), [node.binary, 'main.js', 'x']);
    assert.deepEqual(rlimitsFor(node, 256), {});
    const py = runtimes.get('python')!;
    assert.deepEqual(commandLine(py, 'main.py', []), [py.binary, '-B', '-s', 'main.py']);
    assert.deepEqual(rlimitsFor(py, 256), { as: 256 * 1024 * 1024 });
    const c = runtimes.get('c')!;
    assert.deepEqual(commandLine(c, '/bin/prog', ['1']), ['/bin/prog', '1']);
  });

  test('compiled binaries are keyed by compiler and source', () => {
    const c = runtimes.get('c')!;
    const cpp = runtimes.get('cpp')!;
    assert.equal(binaryKey(c, 'int main(){}'), binaryKey(c, 'int main(){}'));
    assert.notEqual(binaryKey(c, 'int main(){}'), binaryKey(c, 'int main(){ }'));
    assert.notEqual(binaryKey(c, 'int main(){}'), binaryKey(cpp, 'int main(){}'));
  });
});

describe('validation', () => {
  test('accepts a well-formed execute request', () => {
    const p = parseExecute({ language: 'python', code: 'print(1)', stdin: '', args: ['a'], limits: { timeoutMs: 100 } });
    assert.ok(p.ok);
  });

  test('refuses malformed requests with one readable sentence', () => {
    const cases: [unknown, RegExp][] = [
      [{ language: 1, code: 'x' }, /language: .*expected string/],
      [{ language: 'python' }, /exactly one of code and file/],
      [{ language: 'python', code: 'x', file: '/x' }, /exactly one of code and file/],
      [{ language: 'python', code: 'x', limits: { timeoutMs: -1 } }, /limits.timeoutMs must be positive/],
      [{ language: 'python', code: 'x', limits: { memoryMb: 1.5 } }, /limits.memoryMb must be a whole number/],
      [{ language: 'python', code: 'x', extra: true }, /extra/],
      [{ language: 'python', code: 'x', runId: 'a b' }, /runId/],
      [null, /object/],
    ];
    for (const [input, expected] of cases) {
      const p = parseExecute(input);
      assert.equal(p.ok, false, JSON.stringify(input));
      if (!p.ok) assert.match(p.message, expected);
    }
  });

  test('a batch is checked as a whole, its items one by one later', () => {
    assert.ok(parseExecuteBatch({ items: [{ nonsense: true }] }).ok);
    assert.equal(parseExecuteBatch({ items: 'x' }).ok, false);
    assert.equal(parseExecuteBatch({ items: [], concurrency: 0 }).ok, false);
  });

  test('config', () => {
    assert.ok(parseConfig(undefined).ok);
    assert.ok(parseConfig({ poolSize: 2, cache: { ttlMs: 1000 }, executorMap: { py: { command: 'python3' } } }).ok);
    const bad = parseConfig({ poolSize: 0 });
    assert.equal(bad.ok, false);
    assert.equal(parseConfig({ executorMap: { py: { args: [] } } }).ok, false);
  });
});

describe('engine helpers', () => {
  test('the sandbox environment is an allow-list rooted in the work dir', () => {
    const env = sandboxEnv('/w', { binary: '/opt/py/bin/python3' } as never);
    assert.deepEqual(Object.keys(env).sort(), [
      'HOME', 'LANG', 'LC_ALL', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONIOENCODING', 'PYTHONUNBUFFERED', 'TERM', 'TMPDIR',
    ]);
    assert.equal(env.HOME, '/w');
    assert.equal(env.PATH, '/opt/py/bin:/usr/local/bin:/usr/bin:/bin');
  });

  test('batch summary arithmetic', () => {
    const r = (status: ExecutionResult['status'], durationMs: number, cached = false) =>
      ({ status, durationMs, cached }) as ExecutionResult;
    const s = summarize([r('ok', 10), r('ok', 5, true), r('timeout', 100), r('rejected', 0)], 123.456);
    assert.deepEqual(s, {
      total: 4,
      ok: 2,
      failed: 2,
      cached: 1,
      byStatus: { ok: 2, timeout: 1, rejected: 1 },
      wallMs: 123.46,
      totalDurationMs: 115,
    });
  });
});
