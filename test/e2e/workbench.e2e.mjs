// End-to-end: a person using Sandbox Runner in a real VS Code (code-server 4.96.4 = VS Code 1.96.4, Node
// extension host) in a real browser (Debian's Chromium via playwright-core), offline.
//
// The packaged extension (.vsix: $SANDBOX_VSIX, else the newest *.vsix in the project root) is installed into a
// private extensions dir; SANDBOX_E2E_FROM_SOURCE=1 loads the extension from the working tree instead (as
// extensionDevelopmentPath), for a quick loop without packaging. The fixture workspace is
// test/fixtures/workspace. Every step waits on what the page shows (never a fixed sleep) and leaves screenshots
// in test-results/e2e-*.png. A step whose feature the extension does not contribute yet is skipped, and says so.
//
// Run: npm run test:e2e   (needs `npm run vscode:install` once)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../vscode/server.mjs';
import { e2eSession } from './session.mjs';

const manifest = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8'));
const contributes = manifest.contributes ?? {};

/** "Category: Title" of the contributed command whose title matches `pattern`, as the palette lists it. */
function paletteTitle(pattern) {
  const c = (contributes.commands ?? []).find((cmd) => pattern.test(cmd.title));
  return c && (c.category ? `${c.category}: ${c.title}` : c.title);
}
const RUN_ALL_TESTS = paletteTitle(/^Run All Tests/);
const metricsView = Object.values(contributes.views ?? {}).flat().find((v) => v.type === 'webview' && /metric/i.test(`${v.id} ${v.name}`));


const session = e2eSession();
const step = session.steps.step;
/** @type {import('./workbench.mjs').Workbench} */
let wb;

describe('Sandbox Runner in a real VS Code (code-server + Chromium)', { timeout: 600_000 }, () => {
  before(async () => {
    await session.open({
      settings: {
        'sandbox.limits.timeoutMs': 60_000, // the Stop step must be what ends sleep_forever.py
        'testing.automaticallyOpenPeekView': 'never',
      },
      first: '0',
      expectFile: 'hello.py',
    });
    wb = session.wb;
    await wb.shot('0-workbench');
  });

  after(() => session.close());

  it('runs a Python file from the command palette and shows the verdict in the Output panel', () => step('1-run', async () => {
    await wb.openFile('hello.py');
    await wb.runCommand('Sandbox: Run in Sandbox');
    const text = await wb.waitForOutput(/\[sandbox\] hello\.py: \w+/, { timeoutMs: 60_000 });
    await wb.shot('1-run-from-palette');
    assert.match(text, /hello from the sandbox/);
    assert.match(text, /\[sandbox\] hello\.py: ok · exit 0/);
  }));

  it('runs the __main__ block through its CodeLens', () => step('2-codelens', async () => {
    await wb.openFile('main_block.py');
    const lens = wb.page.locator('.contentWidgets .codelens-decoration a', { hasText: 'Run in Sandbox' }).first();
    await lens.waitFor({ timeout: 60_000 });
    await wb.shot('2-codelens');
    await lens.click();
    const text = await wb.waitForOutput(/\[sandbox\] main_block\.py[^\n]*: \w+/, { timeoutMs: 60_000 });
    await wb.shot('2-codelens-ran');
    assert.match(text, /hello, codelens/);
    assert.match(text, /\[sandbox\] main_block\.py[^\n]*: ok · exit 0/);
  }));

  it('stops a program that would run until its timeout', () => step('3-stop', async () => {
    await wb.openFile('sleep_forever.py');
    await wb.runCommand('Sandbox: Run in Sandbox');
    await wb.waitForOutput(/started, sleeping until stopped/, { timeoutMs: 60_000 });
    await wb.shot('3-running');
    await wb.runCommand('Sandbox: Stop');
    const text = await wb.waitForOutput(/\[sandbox\] sleep_forever\.py: [^\n]*(cancel|stop)/i, { timeoutMs: 30_000 });
    await wb.shot('3-stopped');
    assert.doesNotMatch(text, /sleep_forever\.py: timeout/);
  }));

  it('runs all tests from the Test Explorer and shows pass/fail marks', (t) => {
    if (!RUN_ALL_TESTS) return t.skip('the extension contributes no "Run All Tests" command yet');
    return step('4-tests', async () => {
      await wb.runCommand('Testing: Focus on Test Explorer View');
      await wb.testItem('test_math.py').waitFor({ timeout: 60_000 }); // discovered by the extension's globs
      await wb.runCommand(RUN_ALL_TESTS);
      await wb.waitForTestState('test_math.py', 'failed', { timeoutMs: 60_000 });
      await wb.expandTestItem('test_math.py');
      await wb.waitForTestState('test_adds', 'passed');
      await wb.waitForTestState('test_fails_on_purpose', 'failed');
      await wb.shot('4-test-explorer');
    });
  });

  it('shows live numbers in the Metrics view', (t) => {
    if (!metricsView) return t.skip('the extension contributes no metrics webview view yet');
    return step('5-metrics', async () => {
      // The number of runs, as the view's first tile shows it ("Runs" then the number).
      const runsShown = (text) => Number(/\bRuns\s+(\d+)/.exec(text)?.[1] ?? NaN);
      await wb.runCommand('Sandbox: Show Metrics'); // opens the Sandbox container on the Metrics view
      const before = runsShown(await wb.waitForWebviewText(metricsView.name, { test: (text) => Number.isFinite(runsShown(text)) }));
      await wb.shot('5-metrics');
      // Focus is in the webview now: back to the editor, then run; the view stays open in the side bar.
      // hello.py is among Quick Open's "recently opened" rows before the filter applies: wait until it is the
      // focused row before Enter (wb.openFile presses Enter once any row shows the name, and opens the wrong file).
      await wb.runCommand('View: Focus Active Editor Group');
      await wb.page.keyboard.press('Control+P');
      await wb.quickInput.waitFor({ state: 'visible', timeout: 10_000 });
      await wb.quickInput.fill('hello.py');
      await wb.page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: 'hello.py' }).waitFor({ timeout: 15_000 });
      await wb.page.keyboard.press('Enter');
      await wb.page.locator('.tabs-container .tab.active', { hasText: 'hello.py' }).waitFor({ timeout: 15_000 });
      await wb.page.locator('.editor-instance .monaco-editor .view-lines').first().click();
      await wb.runCommand('Sandbox: Run in Sandbox'); // a run or a cache hit: either counts
      const afterRun = await wb.waitForWebviewText(metricsView.name, { test: (text) => runsShown(text) > before });
      await wb.shot('5-metrics-changed');
      assert.ok(runsShown(afterRun) > before, `runs ${before} → ${runsShown(afterRun)}`);
      assert.match(afterRun, /RECENT RUNS[\s\S]*python\s+ok/i);
      // A click on the newest run reveals the program output.
      await wb.runCommand('View: Hide Panel');
      await wb.page.locator('.part.panel .output-view').waitFor({ state: 'hidden', timeout: 10_000 });
      await wb.webview().locator('#recent-runs button').first().click();
      await wb.waitForOutput(/\[sandbox\] hello\.py: ok/, { timeoutMs: 10_000 });
      await wb.shot('5-metrics-run-revealed');
    });
  });
});
