// The Test Explorer in a real VS Code extension host: the "Sandbox" TestController discovers the fixture workspace's
// tests (through the server), keeps its tree current when files come and go, and "Run All Tests in Sandbox" marks
// them. It reads the tree through the hook `activate()` returns (client/testing.ts, TestingApi): VS Code offers no
// way to read another extension's test items.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { WORKSPACE, manifest, EXTENSION_ID, waitFor } = require('./helpers.cjs');

const uriOf = (name) => vscode.Uri.file(path.join(WORKSPACE, name)).toString();
const testId = (name, id) => `${uriOf(name)}::${id}`;

describe('Test Explorer', function () {
  /** @type {{ testing: { discover(refresh?: boolean): Promise<string[]>, runAll(): Promise<any> } }} */
  let api;

  before(async function () {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not loaded`);
    api = await extension.activate();
    assert.ok(api && api.testing, 'activate() returns no testing hook');
  });

  it('contributes "Run All Tests in Sandbox" and the sandbox.testGlobs setting', async function () {
    const command = manifest.contributes.commands.find((c) => c.command === 'sandbox.runAllTests');
    assert.deepEqual({ title: command?.title, category: command?.category }, { title: 'Run All Tests in Sandbox', category: 'Sandbox' });
    const setting = manifest.contributes.configuration.properties['sandbox.testGlobs'];
    assert.ok(setting && setting.scope && setting.markdownDescription, 'sandbox.testGlobs needs scope and markdownDescription');
    assert.deepEqual(vscode.workspace.getConfiguration('sandbox').get('testGlobs'), setting.default);
  });

  it('discovers the test files and the tests inside them', async function () {
    const ids = await waitFor('the fixture tests in the tree', async () => {
      const found = await api.testing.discover(true);
      return found.includes(testId('test_math.py', 'test_adds')) && found;
    });
    for (const expected of [
      uriOf('test_math.py'),
      testId('test_math.py', 'test_adds'),
      testId('test_math.py', 'test_fails_on_purpose'),
      testId('tests/test_shapes.py', 'TestShapes'), // a group for the class
      testId('tests/test_shapes.py', 'TestShapes.test_square'),
      testId('tests/counter.test.js', 'counter > counts items'),
      testId('tests/strings.test.ts', 'shouts'),
      testId('tests/backup.test.sh', 'test_copies'),
    ]) {
      assert.ok(ids.includes(expected), `${expected} not discovered; the tree: ${ids.join(', ')}`);
    }
    assert.ok(!ids.includes(uriOf('hello.py')), 'hello.py matches no test glob');
  });

  it('keeps the tree current when a test file is created and deleted', async function () {
    const file = path.join(WORKSPACE, 'tests', 'test_watched_tmp.py');
    try {
      fs.writeFileSync(file, 'def test_appears():\n    assert True\n');
      await waitFor('the new file in the tree', async () => (await api.testing.discover()).includes(testId('tests/test_watched_tmp.py', 'test_appears')));
      fs.writeFileSync(file, 'def test_renamed():\n    assert True\n');
      await waitFor('the changed test in the tree', async () => {
        const ids = await api.testing.discover();
        return ids.includes(testId('tests/test_watched_tmp.py', 'test_renamed')) && !ids.includes(testId('tests/test_watched_tmp.py', 'test_appears'));
      });
    } finally {
      fs.rmSync(file, { force: true });
    }
    await waitFor('the deleted file gone from the tree', async () => !(await api.testing.discover()).includes(uriOf('tests/test_watched_tmp.py')));
  });

  it('"Run All Tests in Sandbox" marks the passing test passed and the failing one failed', async function () {
    const summary = await vscode.commands.executeCommand('sandbox.runAllTests');
    assert.ok(summary && summary.outcomes, 'the command returned no summary');
    const outcome = (name, id) => summary.outcomes[testId(name, id)];
    assert.equal(outcome('test_math.py', 'test_adds'), 'passed');
    assert.equal(outcome('test_math.py', 'test_fails_on_purpose'), 'failed');
    assert.equal(outcome('tests/test_shapes.py', 'TestShapes.test_square'), 'passed');
    assert.equal(outcome('tests/test_broken.py', 'test_never_runs'), 'errored');
    assert.equal(outcome('tests/counter.test.js', 'counter > counts items'), 'passed');
    assert.equal(outcome('tests/counter.test.js', 'counter > miscounts on purpose'), 'failed');
    assert.equal(outcome('tests/backup.test.sh', 'test_fails_on_purpose'), 'failed');
    assert.ok(summary.passed >= 7 && summary.failed >= 5, JSON.stringify(summary));
  });

  it('a test CodeLens runs just that test, through the Test Explorer', async function () {
    const args = (name) => ({
      uri: uriOf('test_math.py'),
      languageId: 'python',
      language: 'python',
      kind: 'test',
      name,
      range: { start: { line: 3, character: 0 }, end: { line: 5, character: 0 } },
    });
    const passing = await vscode.commands.executeCommand('sandbox.runUnit', args('test_adds'));
    assert.deepEqual(passing && passing.outcomes, { [testId('test_math.py', 'test_adds')]: 'passed' });
    const failing = await vscode.commands.executeCommand('sandbox.runUnit', args('test_fails_on_purpose'));
    assert.deepEqual(failing && failing.outcomes, { [testId('test_math.py', 'test_fails_on_purpose')]: 'failed' });
  });
});
