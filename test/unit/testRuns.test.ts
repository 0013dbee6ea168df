import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { ExecutionResult, TestRunItem } from '../../server/protocol';
import {
  HARNESS_ERROR,
  HARNESS_ERROR_EXIT,
  discoverTests,
  interpretTestResults,
  parseTap,
  planTestRuns,
  pythonHarness,
  shellHarness,
} from '../../server/testRuns';
import { sampleResult } from '../helpers/results';

const item = (file: string, languageId: string, testId: string): TestRunItem => ({ uri: `file://${file}`, file, languageId, testId });

function result(over: Partial<ExecutionResult>): ExecutionResult {
  return sampleResult({ runId: 'r', stdout: '', peakMemoryBytes: 1, ...over });
}

describe('discoverTests', () => {
  it('keeps test units only, with their path and last name', () => {
    const tests = discoverTests('python', 'def test_a():\n    pass\n\nclass TestB:\n    def test_c(self):\n        pass\n');
    assert.deepEqual(
      tests.map((t) => [t.id, t.name, t.path, t.range.start.line]),
      [
        ['test_a', 'test_a', ['test_a'], 0],
        ['TestB.test_c', 'test_c', ['TestB', 'test_c'], 4],
      ],
    );
    assert.deepEqual(discoverTests('javascript', "describe('s', () => { it('x', () => {}); });").map((t) => t.id), ['s', 's > x']);
    assert.deepEqual(discoverTests('c', 'int main(){}'), []);
  });
});

describe('planTestRuns', () => {
  it('makes one run per Python and shell test and one per JS/TS file, all with the workspace and no cache', () => {
    const plan = planTestRuns(
      [
        item('/w/test_a.py', 'python', 'test_one'),
        item('/w/test_a.py', 'python', 'TestX.test_two'),
        item('/w/a.test.js', 'javascript', 'suite > one'),
        item('/w/a.test.js', 'javascript', 'suite > two'),
        item('/w/b.test.ts', 'typescript', 'ts one'),
        item('/w/sub/c.test.sh', 'shellscript', 'test_sh'),
      ],
      { timeoutMs: 5000 },
    );
    assert.equal(plan.programs.length, 5);
    assert.deepEqual(plan.assignment.map((a) => ('program' in a ? a.program : a.error)), [0, 1, 2, 2, 3, 4]);
    assert.ok(plan.programs.every((p) => p.cache === false && p.limits?.timeoutMs === 5000));
    assert.deepEqual(plan.programs.map((p) => p.workspace), ['/w', '/w', '/w', '/w', '/w/sub']);
    assert.equal(plan.programs[3]!.file, '/w/b.test.ts');
    assert.equal(plan.programs[3]!.language, 'typescript');
    assert.match(plan.programs[2]!.code!, /import\(pathToFileURL\(file\)\.href\)/);
    assert.match(plan.programs[2]!.code!, /"\/w\/a\.test\.js"/);
  });

  it('refuses languages without tests, relative paths and names that are not test names', () => {
    const plan = planTestRuns([
      item('/w/x.c', 'c', 'test_x'),
      item('w/test_a.py', 'python', 'test_a'),
      item('/w/test_a.py', 'python', 'test_a; import os'),
      item('/w/a.test.sh', 'shellscript', 'test_x; rm -rf /'),
    ]);
    assert.equal(plan.programs.length, 0);
    assert.ok(plan.assignment.every((a) => 'error' in a));
  });
});

describe('harness programs (run for real)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-harness-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const python = (file: string, name: string) => spawnSync('python3', ['-c', pythonHarness(file, name)], { encoding: 'utf8', cwd: os.tmpdir() });

  it('Python: imports the file by path with its folder on sys.path, calls functions, methods and coroutines', () => {
    writeFileSync(path.join(dir, 'helper_mod.py'), 'VALUE = 2\n');
    const file = path.join(dir, 'test_it.py');
    writeFileSync(
      file,
      [
        'import asyncio, unittest',
        'from helper_mod import VALUE',
        'def test_ok():',
        '    assert VALUE == 2',
        'async def test_async():',
        '    await asyncio.sleep(0)',
        'def test_bad():',
        '    assert VALUE == 3, "not three"',
        'class TestK:',
        '    def test_m(self):',
        '        assert True',
        'class TestU(unittest.TestCase):',
        '    def setUp(self):',
        '        self.v = 5',
        '    def test_u(self):',
        '        self.assertEqual(self.v, 5)',
        '',
      ].join('\n'),
    );
    for (const name of ['test_ok', 'test_async', 'TestK.test_m', 'TestU.test_u']) {
      const r = python(file, name);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), `PASS ${name}`);
    }
    const bad = python(file, 'test_bad');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /AssertionError: not three/);
    assert.match(bad.stderr, new RegExp(`File "${file}", line 8`));
    const missing = python(file, 'test_nope');
    assert.equal(missing.status, HARNESS_ERROR_EXIT);
    assert.match(missing.stderr, new RegExp(`${HARNESS_ERROR} no test test_nope`));
  });

  it('shell: sources the file and calls the function; its status is the verdict', () => {
    const file = path.join(dir, "it's.test.sh");
    writeFileSync(file, 'test_ok() { true; }\ntest_bad() { return 4; }\n');
    const run = (name: string) => spawnSync('bash', ['-c', shellHarness(file, name)], { encoding: 'utf8' });
    assert.equal(run('test_ok').status, 0);
    const bad = run('test_bad');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /FAIL test_bad \(exit status 4\)/);
    assert.equal(run('test_none').status, HARNESS_ERROR_EXIT);
  });
});

const TAP = `TAP version 13
# Subtest: suite
    # Subtest: passes
    ok 1 - passes
      ---
      duration_ms: 0.5
      ...
    # Subtest: fails \\# hash
    not ok 2 - fails \\# hash
      ---
      duration_ms: 1.25
      location: '/w/a.test.js:6:3'
      failureType: 'testCodeFailure'
      error: |-
        Expected values to be strictly equal:

        1 !== 2

      code: 'ERR_ASSERTION'
      stack: |-
        TestContext.<anonymous> (/w/a.test.js:7:12)
        Test.runInAsyncScope (node:async_hooks:206:9)
      ...
    # Subtest: later
    ok 3 - later # SKIP
      ---
      duration_ms: 0
      ...
    1..3
not ok 1 - suite
  ---
  duration_ms: 3
  type: 'suite'
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
1..1
`;

describe('parseTap', () => {
  it('names entries by their path, with skips, durations and inline errors', () => {
    const tap = parseTap(TAP);
    assert.deepEqual([...tap.keys()], ['suite > passes', 'suite > fails # hash', 'suite > later', 'suite']);
    assert.equal(tap.get('suite > passes')!.ok, true);
    assert.equal(tap.get('suite > passes')!.durationMs, 0.5);
    assert.equal(tap.get('suite > fails # hash')!.ok, false);
    assert.equal(tap.get('suite > later')!.directive, 'skip');
    assert.equal(tap.get('suite')!.error, '1 subtest failed');
  });
});

describe('interpretTestResults', () => {
  it('reads JS tests from the TAP of their shared run, with the failing line', () => {
    const items = ['suite > passes', 'suite > fails # hash', 'suite > later', 'suite', 'suite > renamed'].map((t) =>
      item('/w/a.test.js', 'javascript', t),
    );
    const plan = planTestRuns(items);
    const [passes, fails, later, suite, renamed] = interpretTestResults(items, plan, [
      result({ language: 'javascript', status: 'runtime_error', exitCode: 1, stdout: TAP }),
    ]);
    assert.equal(passes!.outcome, 'passed');
    assert.equal(passes!.passed, true);
    assert.equal(passes!.durationMs, 0.5);
    assert.equal(fails!.outcome, 'failed');
    assert.deepEqual(fails!.location && { file: fails!.location.file, line: fails!.location.line }, { file: '/w/a.test.js', line: 7 });
    assert.match(fails!.message!, /1 !== 2/);
    assert.equal(later!.outcome, 'skipped');
    assert.equal(suite!.outcome, 'failed');
    assert.equal(suite!.message, '1 subtest failed');
    assert.equal(renamed!.outcome, 'errored');
  });

  it('reads Python verdicts from the run: pass, fail with a location, a load error, a timeout, a cancel', () => {
    const items = ['test_a', 'test_b', 'test_c', 'test_d', 'test_e'].map((t) => item('/w/test_x.py', 'python', t));
    const plan = planTestRuns(items);
    const tb = (line: number, error: string) =>
      `Traceback (most recent call last):\n  File "main.py", line 40, in <module>\n  File "/w/test_x.py", line ${line}, in test_b\n    assert x\n${error}\n`;
    const out = interpretTestResults(items, plan, [
      result({ stdout: 'PASS test_a\n' }),
      result({ status: 'runtime_error', exitCode: 1, stderr: `${tb(7, 'AssertionError: nope')}FAIL test_b: AssertionError: nope\n` }),
      result({ status: 'runtime_error', exitCode: 3, stderr: `${tb(1, 'ImportError: x')}${HARNESS_ERROR} could not import /w/test_x.py\n` }),
      result({ status: 'timeout', exitCode: null, signal: 'SIGKILL' }),
      result({ status: 'cancelled', exitCode: null }),
    ]);
    assert.deepEqual(out.map((r) => r.outcome), ['passed', 'failed', 'errored', 'failed', 'skipped']);
    assert.deepEqual(out[1]!.location, { file: '/w/test_x.py', line: 7, message: 'AssertionError: nope' });
    assert.equal(out[1]!.message, 'AssertionError: nope');
    assert.match(out[2]!.message!, /could not import \/w\/test_x\.py: ImportError: x/);
    assert.match(out[3]!.message!, /time limit/);
  });

  it('errors an item that could not be planned, without a run', () => {
    const items = [item('/w/x.c', 'c', 'test_x')];
    const [r] = interpretTestResults(items, planTestRuns(items), []);
    assert.equal(r!.outcome, 'errored');
    assert.equal(r!.result, undefined);
  });
});

describe('package.json sandbox.testGlobs', () => {
  it('defaults to DEFAULT_TEST_GLOBS', async () => {
    const { DEFAULT_TEST_GLOBS } = await import('../../server/discovery');
    const manifest = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      contributes: { configuration: { properties: Record<string, { default?: unknown }> } };
    };
    assert.deepEqual(manifest.contributes.configuration.properties['sandbox.testGlobs']?.default, DEFAULT_TEST_GLOBS);
  });
});
