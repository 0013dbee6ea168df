/**
 * The Test Explorer's requests on the real bundled server over stdio: `sandbox/discoverTests` on the fixture
 * workspace's test files, `sandbox/runTests` running them through their harnesses (passed, failed with the line of
 * the failing assert, errored when the file does not import), cancellation, and ExecuteParams.workspace (checked,
 * never cached). Run `npm run build` first (`npm test` does).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import {
  DiscoverTestsRequest,
  ExecuteRequest,
  RunTestsRequest,
  type TestRunItem,
  type TestRunResult,
} from '../../server/protocol';
import { startServer, waitFor, type TestServer } from '../helpers/server';

const WORKSPACE = path.resolve(import.meta.dirname, '..', 'fixtures', 'workspace');
const abs = (name: string): string => path.join(WORKSPACE, name);
const languageOf = (name: string): string =>
  name.endsWith('.py') ? 'python' : name.endsWith('.js') ? 'javascript' : name.endsWith('.ts') ? 'typescript' : 'shellscript';
const item = (name: string, testId: string): TestRunItem => ({ uri: `file://${abs(name)}`, file: abs(name), languageId: languageOf(name), testId });

describe('Test Explorer requests over stdio', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ poolSize: 2, cache: { enabled: true } });
  });
  after(() => server.close());

  const discover = async (name: string) =>
    (await server.conn.sendRequest(DiscoverTestsRequest.type, { uri: `file://${abs(name)}`, languageId: languageOf(name), text: readFileSync(abs(name), 'utf8') })).tests;

  it('discovers the tests of every fixture test file', async () => {
    const ids = async (name: string) => (await discover(name)).map((t) => t.id);
    assert.deepEqual(await ids('test_math.py'), ['test_adds', 'test_fails_on_purpose']);
    assert.deepEqual(await ids('tests/test_shapes.py'), ['test_area', 'test_async_area', 'TestShapes.test_square', 'TestShapes.test_wrong_area']);
    assert.deepEqual(await ids('tests/counter.test.js'), ['counter', 'counter > counts items', 'counter > miscounts on purpose']);
    assert.deepEqual(await ids('tests/strings.test.ts'), ['shouts', 'whispers on purpose']);
    assert.deepEqual(await ids('tests/backup.test.sh'), ['test_copies', 'test_fails_on_purpose']);
    const [adds] = await discover('test_math.py');
    assert.deepEqual(adds!.range.start, { line: 3, character: 0 });
    assert.equal(adds!.name, 'test_adds');
    assert.deepEqual((await discover('tests/counter.test.js'))[1]!.path, ['counter', 'counts items']);
  });

  it('refuses a malformed discovery request with invalid params', async () => {
    await assert.rejects(server.conn.sendRequest(DiscoverTestsRequest.method, { uri: 'x', languageId: 'python' }), /invalid params: text/);
  });

  it('runs the fixture tests: passes, failures at the failing line, an import error, in order', async () => {
    const items = [
      item('test_math.py', 'test_adds'),
      item('test_math.py', 'test_fails_on_purpose'),
      item('tests/test_shapes.py', 'test_area'),
      item('tests/test_shapes.py', 'test_async_area'),
      item('tests/test_shapes.py', 'TestShapes.test_square'),
      item('tests/test_shapes.py', 'TestShapes.test_wrong_area'),
      item('tests/test_broken.py', 'test_never_runs'),
      item('tests/counter.test.js', 'counter > counts items'),
      item('tests/counter.test.js', 'counter > miscounts on purpose'),
      item('tests/strings.test.ts', 'shouts'),
      item('tests/strings.test.ts', 'whispers on purpose'),
      item('tests/backup.test.sh', 'test_copies'),
      item('tests/backup.test.sh', 'test_fails_on_purpose'),
    ];
    const { results, summary } = await server.conn.sendRequest(RunTestsRequest.type, { items });
    const byId = (file: string, id: string): TestRunResult => results.find((r) => r.uri.endsWith(file) && r.testId === id)!;
    assert.deepEqual(
      results.map((r) => `${r.testId}: ${r.outcome}`),
      [
        'test_adds: passed',
        'test_fails_on_purpose: failed',
        'test_area: passed',
        'test_async_area: passed',
        'TestShapes.test_square: passed',
        'TestShapes.test_wrong_area: failed',
        'test_never_runs: errored',
        'counter > counts items: passed',
        'counter > miscounts on purpose: failed',
        'shouts: passed',
        'whispers on purpose: failed',
        'test_copies: passed',
        'test_fails_on_purpose: failed',
      ],
    );
    // one run per Python/shell test, one per JS/TS file
    assert.equal(summary.total, 11);
    assert.equal(summary.cached, 0);

    const math = byId('test_math.py', 'test_fails_on_purpose');
    assert.equal(math.passed, false);
    assert.deepEqual(math.location, { file: abs('test_math.py'), line: 9, message: 'AssertionError: 1 + 1 is not 3' });
    assert.match(math.output, /Traceback/);
    assert.deepEqual(byId('tests/test_shapes.py', 'TestShapes.test_wrong_area').location?.line, 21);

    const broken = byId('tests/test_broken.py', 'test_never_runs');
    assert.match(broken.message!, /could not import .*test_broken\.py: ModuleNotFoundError/);
    assert.deepEqual(broken.location && [broken.location.file, broken.location.line], [abs('tests/test_broken.py'), 2]);

    const js = byId('tests/counter.test.js', 'counter > miscounts on purpose');
    assert.deepEqual(js.location && [js.location.file, js.location.line], [abs('tests/counter.test.js'), 12]);
    assert.match(js.message!, /1 !== 2/);
    // the JS tests of one file share their run
    assert.equal(byId('tests/counter.test.js', 'counter > counts items').result?.runId, js.result?.runId);
    assert.ok(results.every((r) => r.passed === (r.outcome === 'passed')));
  });

  it('cancels a test run with $/cancelRequest: the runs are killed and their tests skipped', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-slow-tests-'));
    chmodSync(dir, 0o755); // the sandbox user reads it as any user of the machine would
    try {
      const marker = `slow_marker_${process.pid}`;
      const file = path.join(dir, 'test_slow.py');
      writeFileSync(file, `import time\n\ndef test_${marker}():\n    time.sleep(60)\n\ndef test_other():\n    time.sleep(60)\n`);
      const items: TestRunItem[] = [`test_${marker}`, 'test_other'].map((testId) => ({ uri: `file://${file}`, file, languageId: 'python', testId }));
      const cts = new CancellationTokenSource();
      const started = Date.now();
      const seen = server.metricsEvents.length;
      const pending = server.conn.sendRequest(RunTestsRequest.type, { items }, cts.token);
      // both tests hold a worker (the pool has two), as the metrics notifications say
      await waitFor(() => server.metricsEvents.slice(seen).some((m) => m.pool.busy === 2), 'the slow tests to start', 15_000);
      cts.cancel();
      const { results } = await pending;
      assert.deepEqual(results.map((r) => r.outcome), ['skipped', 'skipped']);
      assert.deepEqual(results.map((r) => r.result?.status), ['cancelled', 'cancelled']);
      assert.ok(results.every((r) => r.result?.workerId), 'both were running (not cancelled before they started)');
      assert.ok(Date.now() - started < 20_000, 'cancelled, not run to the end');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks ExecuteParams.workspace and never caches a run that has one', async () => {
    const code = 'import shapes\nprint(shapes.area(2, 5))\n';
    const bad = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code, workspace: 'relative/dir' });
    assert.equal(bad.status, 'rejected');
    assert.match(bad.message!, /absolute/);
    const missing = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code, workspace: abs('no-such-dir') });
    assert.equal(missing.status, 'rejected');
    const notDir = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code, workspace: abs('hello.py') });
    assert.match(notDir.message!, /not a directory/);
    // Sandboxed programs are a user of their own: a workspace closed to other users is refused, saying how to open it.
    const closed = mkdtempSync(path.join(os.tmpdir(), 'closed-workspace-'));
    try {
      const refused = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code, workspace: closed });
      assert.equal(refused.status, 'rejected');
      assert.match(refused.message!, /cannot be read in the sandbox: its mode is 0700, .*\(chmod -R o\+rX \//);
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
    const harness = `import sys\nsys.path.insert(0, ${JSON.stringify(abs('tests'))})\n${code}`;
    const first = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code: harness, workspace: abs('tests') });
    const second = await server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code: harness, workspace: abs('tests') });
    assert.equal(first.status, 'ok');
    assert.equal(first.stdout, '10\n');
    assert.equal(second.cached, false, 'a run with a workspace is never cached');
  });
});
