// extensionTestsPath module: VS Code's extension host calls run() and fails the run when it rejects.
// Runs every *.test.cjs beside this file with mocha (bdd). Used by both ways of test/vscode/run-extension-tests.mjs
// (code-server offline, @vscode/test-electron with network). CommonJS: the extension host require()s it.
const fs = require('node:fs');
const path = require('node:path');

/**
 * A spec-like mocha reporter whose every line is one pre-formatted string marked "[suite]": the extension host's
 * console reaches the harness through the workbench, mixed with VS Code's own log, and mocha's own reporters
 * print format strings ("%s") that arrive unformatted there.
 */
function markedReporter(runner) {
  const { EVENT_SUITE_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_RUN_END } = runner.constructor.constants;
  const say = (line) => console.log(`[suite] ${line}`);
  let depth = 0;
  const failures = [];
  runner.on(EVENT_SUITE_BEGIN, (suite) => {
    if (suite.root) return;
    say(`${'  '.repeat(depth)}${suite.title}`);
    depth += 1;
  });
  runner.on('suite end', (suite) => { if (!suite.root) depth -= 1; });
  runner.on(EVENT_TEST_PASS, (test) => say(`${'  '.repeat(depth)}✔ ${test.title} (${test.duration} ms)`));
  runner.on(EVENT_TEST_PENDING, (test) => say(`${'  '.repeat(depth)}- ${test.title} (skipped)`));
  runner.on(EVENT_TEST_FAIL, (test, err) => {
    failures.push({ test, err });
    say(`${'  '.repeat(depth)}✘ ${test.title}`);
  });
  runner.on(EVENT_RUN_END, () => {
    failures.forEach(({ test, err }, i) => say(`${i + 1}) ${test.fullTitle()}\n${err && err.stack ? err.stack : String(err)}`));
    const s = runner.stats;
    say(`${s.passes} passing, ${s.failures} failing, ${s.pending} skipped (${s.duration ?? 0} ms)`);
  });
}

exports.run = async function run() {
  const Mocha = require('mocha');
  const mocha = new Mocha({
    ui: 'bdd',
    reporter: markedReporter,
    timeout: Number(process.env.SANDBOX_TEST_TIMEOUT_MS ?? 60_000),
    grep: process.env.SANDBOX_TEST_GREP,
  });
  for (const file of fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.cjs')).sort()) {
    mocha.addFile(path.join(__dirname, file));
  }
  const stats = await new Promise((resolve, reject) => {
    try {
      const runner = mocha.run(() => resolve(runner.stats));
    } catch (e) {
      reject(e);
    }
  });
  console.log(`[suite-result] ${JSON.stringify({ passed: stats.passes, failed: stats.failures, skipped: stats.pending })}`);
  if (stats.failures > 0) throw new Error(`${stats.failures} of ${stats.tests} extension tests failed`);
  if (stats.passes === 0) throw new Error('no extension test ran');
};
