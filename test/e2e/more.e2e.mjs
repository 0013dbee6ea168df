// End-to-end, more of what a person does with Sandbox Runner in a real VS Code (code-server 4.96.4 + Chromium,
// offline): stdin from an input box, a failing program's notification and its "Show Output" button, the cache
// (cached → Re-run Without Cache → Clear Cache), several files from the Explorer as one batch, the status bar item,
// and Restart Server. Same harness as workbench.e2e.mjs (the packaged .vsix, or SANDBOX_E2E_FROM_SOURCE=1); its own
// code-server, so its cache and counters start empty. Every wait is on what the page shows; screenshots go to
// test-results/e2e-6-… to e2e-12-….
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { escapeRe } from './workbench.mjs';
import { e2eSession } from './session.mjs';



const session = e2eSession();
const step = session.steps.step;
/** @type {import('./workbench.mjs').Workbench} */
let wb;

/** A notification toast showing `text` (a string or a RegExp), once it has faded in (so a screenshot shows it whole). */
const toast = (text) => wb.page.locator('.notifications-toasts .notification-toast.notification-fade-in-done',
  { hasText: text }).first();

/** A button of a notification toast, by its label. */
const toastButton = (t, label) => t.locator('.monaco-button', { hasText: new RegExp(`^${escapeRe(label)}$`) }).first();

/** Empties the Sandbox Output channel (View: Clear Output) so a step reads only its own lines. */
async function clearOutput() {
  if (!(await wb.page.locator('.part.panel .output-view').isVisible())) return;
  await wb.runCommand('View: Clear Output');
  await wb.page.waitForFunction(
    () => !(document.querySelector('.part.panel .output-view .view-lines')?.textContent ?? '').includes('[sandbox]'),
    undefined, { timeout: 10_000 });
}

/** Closes every notification, so a step waits on its own toasts (and screenshots show them alone). */
async function clearNotifications() {
  await wb.runCommand('Notifications: Clear All Notifications');
  await wb.page.locator('.notifications-toasts .notification-toast').first().waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => {});
}

/**
 * F1 and a command whose first act is a quick input of its own: Enter on it, without waiting for the palette to
 * close (wb.runCommand waits for that, and the command's own quick pick may already be showing).
 */
async function startCommand(title) {
  const exact = wb.page.locator('.quick-input-widget .monaco-list-row.focused .label-name',
    { hasText: new RegExp(`^${escapeRe(title)}$`) }).first();
  await wb.page.keyboard.press('F1');
  await wb.quickInput.waitFor({ state: 'visible', timeout: 10_000 });
  await wb.quickInput.fill(`>${title}`);
  await exact.waitFor({ timeout: 15_000 });
  await wb.page.keyboard.press('Enter');
}

/** An Explorer row by its exact file name. */
const explorerRow = (name) => wb.page.locator('.explorer-folders-view .monaco-list-row')
  .filter({ has: wb.page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(name)}$`) }) }).first();

/** The item `label` of the open context menu. */
const menuItem = (label) => wb.page.locator('.monaco-menu .action-item .action-label', { hasText: new RegExp(`^${escapeRe(label)}$`) }).first();

/**
 * Clicks a context-menu item. A menu item ignores mouse-up for its first 100 ms (so the right-click that opened the
 * menu does not pick an item): when the menu is still open after the click, click again, as a person would.
 */
async function pickMenuItem(label) {
  const item = menuItem(label);
  for (let attempt = 1; ; attempt++) {
    await item.click();
    if (await item.waitFor({ state: 'hidden', timeout: 1_000 }).then(() => true, () => false)) return;
    if (attempt === 5) throw new Error(`the context menu item "${label}" did not respond to 5 clicks`);
  }
}

describe('Sandbox Runner in a real VS Code: input, failures, cache, explorer batch, status bar, restart', { timeout: 300_000 }, () => {
  before(async () => {
    await session.open({
      settings: { 'testing.automaticallyOpenPeekView': 'never' },
      first: '6',
      expectFile: 'shout.py',
    });
    wb = session.wb;
  });

  after(() => session.close());

  it('runs a program with a line typed into the input box as its stdin', () => step('6-input', async () => {
    await wb.openFile('shout.py');
    await startCommand('Sandbox: Run in Sandbox with Input…');
    const typeIt = wb.page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Type the input' }).first();
    await typeIt.waitFor({ timeout: 30_000 });
    await wb.shot('6-input-choice');
    await typeIt.click();
    await wb.page.locator('.quick-input-widget .quick-input-title', { hasText: 'Standard input for the program' }).waitFor({ timeout: 10_000 });
    await wb.page.keyboard.type('hello from stdin');
    await wb.shot('6-input-typed');
    await wb.page.keyboard.press('Enter');
    const text = await wb.waitForOutput(/\[sandbox\] shout\.py: \w+/, { timeoutMs: 60_000 });
    await wb.shot('6-input-ran');
    assert.match(text, /HELLO FROM STDIN/);
    assert.match(text, /\[sandbox\] shout\.py: ok · exit 0/);
  }));

  it('a failing program raises a notification whose "Show Output" shows the runtime_error summary', () => step('7-failure', async () => {
    await clearOutput();
    await clearNotifications();
    await wb.openFile('fails.py');
    await wb.runCommand('Sandbox: Run in Sandbox');
    const note = toast('fails.py failed with a runtime error');
    await note.waitFor({ timeout: 60_000 });
    assert.match(await note.innerText(), /\(exit 3\)/);
    await toastButton(note, 'Show Output').waitFor({ timeout: 5_000 });
    await wb.shot('7-failure-notification');
    // Hide the panel, then let the notification's button bring the output back.
    await wb.runCommand('View: Hide Panel');
    await wb.page.locator('.part.panel .output-view').waitFor({ state: 'hidden', timeout: 10_000 });
    await toastButton(note, 'Show Output').click();
    const text = await wb.waitForOutput(/\[sandbox\] fails\.py: runtime_error/, { timeoutMs: 10_000 });
    await wb.shot('7-failure-show-output');
    assert.match(text, /\[sandbox\] fails\.py: runtime_error · exit 3 ·[^\n]*not cached/);
    assert.match(text, /something went wrong on purpose/);
  }));

  it('says a second identical run is cached, and Re-run Without Cache runs it for real', () => step('8-cache', async () => {
    await clearOutput();
    await clearNotifications();
    await wb.openFile('hello.py');
    await wb.runCommand('Sandbox: Run in Sandbox');
    await wb.waitForOutput(/\[sandbox\] hello\.py: ok[^\n]*· not cached/, { timeoutMs: 60_000 });
    await wb.runCommand('Sandbox: Run in Sandbox');
    const cached = await wb.waitForOutput(/\[sandbox\] hello\.py: ok[^\n]*· cached \(not run again\)/, { timeoutMs: 30_000 });
    assert.match(cached, /hello from the sandbox[\s\S]*hello from the sandbox/); // a cached result still shows the output
    const note = toast('this result is from the cache');
    await toastButton(note, 'Re-run Without Cache').waitFor({ timeout: 10_000 });
    await wb.shot('8-cached');
    await clearNotifications();
    await clearOutput();
    await wb.runCommand('Sandbox: Re-run Without Cache');
    const text = await wb.waitForOutput(/\[sandbox\] hello\.py: ok[^\n]*/, { timeoutMs: 30_000 });
    await wb.shot('8-rerun-without-cache');
    assert.match(text, /▶ hello\.py \(python, cache bypassed\)/);
    assert.match(text, /\[sandbox\] hello\.py: ok[^\n]*· not cached/);
  }));

  it('runs two files selected in the Explorer as one batch', () => step('9-explorer', async () => {
    await clearOutput();
    await clearNotifications();
    await wb.runCommand('View: Show Explorer');
    await explorerRow('counts_slowly.py').click();
    await explorerRow('hello.py').click({ modifiers: ['Control'] });
    await wb.page.waitForFunction(
      () => document.querySelectorAll('.explorer-folders-view .monaco-list-row.selected').length === 2, undefined, { timeout: 10_000 });
    await explorerRow('hello.py').click({ button: 'right' });
    await menuItem('Run in Sandbox').waitFor({ timeout: 10_000 });
    await wb.shot('9-explorer-context-menu');
    await pickMenuItem('Run in Sandbox');
    // The cancellable progress notification, while counts_slowly.py (≈ 1.5 s) runs.
    const progress = toast('Running 2 programs in the sandbox');
    const sawProgress = await progress.waitFor({ timeout: 5_000 }).then(() => true, () => false);
    if (sawProgress) {
      await wb.shot('9-batch-progress');
      const cancel = progress.locator('.monaco-button', { hasText: /^Cancel$/ });
      assert.ok(await cancel.count(), 'the batch progress notification offers Cancel');
    } else {
      console.log('[e2e] the batch ended before its progress notification could be seen');
    }
    const text = await wb.waitForOutput(/\[sandbox\] batch: 2 runs/, { timeoutMs: 60_000 });
    await toast('All 2 programs finished ok').waitFor({ timeout: 10_000 });
    await wb.shot('9-batch-done');
    assert.match(text, /▶ batch of 2 programs/);
    assert.match(text, /── counts_slowly\.py ──[\s\S]*count 5/);
    assert.match(text, /\[sandbox\] counts_slowly\.py: ok · exit 0/);
    assert.match(text, /\[sandbox\] hello\.py: ok · exit 0/);
    assert.match(text, /\[sandbox\] batch: 2 runs · 2 ok · 0 failed/);
  }));

  it('shows pool, cache and isolation in the status bar; a click reveals the Metrics view', () => step('10-status-bar', async () => {
    const item = wb.page.locator('.part.statusbar .statusbar-item', { hasText: /\d+\/\d+ busy/ }).first();
    await item.waitFor({ timeout: 30_000 });
    const text = (await item.innerText()).replace(/\s+/g, ' ').trim();
    assert.match(text, /^\d+\/\d+ busy( \+\d+ queued)? cache \d+% bwrap$/);
    assert.equal(await item.locator('.codicon-shield').count(), 1, 'bubblewrap isolation is shown with a shield icon');
    assert.equal(await item.locator('.codicon-warning').count(), 0, 'no warning: runs are sandboxed');
    await item.hover();
    const tooltip = wb.page.locator('.monaco-hover, .workbench-hover', { hasText: /bubblewrap/ }).first();
    await tooltip.waitFor({ timeout: 10_000 });
    assert.match((await tooltip.innerText()).replace(/\s+/g, ' '), /Isolation: bwrap.*memory cgroup/i);
    await wb.shot('10-status-bar');
    await item.click();
    // One view in its container: the side bar's title is "SANDBOX: METRICS" (no pane header of its own).
    await wb.page.locator('.part.sidebar .composite.title .title-label', { hasText: /^sandbox: metrics$/i }).waitFor({ timeout: 10_000 });
    await wb.page.mouse.move(700, 300); // away from the status bar, so its tooltip does not cover the view
    const metrics = await wb.waitForWebviewText('Metrics', /\bRuns\s+\d+/);
    await wb.shot('10-metrics-from-status-bar');
    assert.ok(Number(/\bRuns\s+(\d+)/.exec(metrics)[1]) >= 6, `the view counts this session's runs:\n${metrics}`);
  }));

  it('restarts the server on request, and runs still work afterwards', () => step('11-restart', async () => {
    await clearNotifications();
    await wb.runCommand('Sandbox: Restart Server');
    await toast('The sandbox server was restarted.').waitFor({ timeout: 30_000 });
    await wb.shot('11-restarted');
    await clearOutput();
    await wb.openFile('hello.py');
    await wb.runCommand('Sandbox: Run in Sandbox');
    const text = await wb.waitForOutput(/\[sandbox\] hello\.py: \w+/, { timeoutMs: 60_000 });
    await wb.shot('11-run-after-restart');
    assert.match(text, /hello from the sandbox/);
    assert.match(text, /\[sandbox\] hello\.py: ok · exit 0 ·[^\n]*· not cached/); // a new server, an empty cache
    // The status bar follows the new server: its figures start again (one run, one miss).
    await wb.page.locator('.part.statusbar .statusbar-item', { hasText: /^\s*0\/\d+ busy\s+cache 0%\s+bwrap\s*$/ }).waitFor({ timeout: 10_000 });
  }));

  it('Clear Cache makes the next run of a cached file run for real', () => step('12-clear-cache', async () => {
    await clearOutput();
    await clearNotifications();
    await wb.runCommand('Sandbox: Run in Sandbox');
    await wb.waitForOutput(/\[sandbox\] hello\.py: ok[^\n]*· cached \(not run again\)/, { timeoutMs: 30_000 });
    await clearNotifications();
    await wb.runCommand('Sandbox: Clear Cache');
    const note = toast(/Sandbox cache cleared \(\d+ results?\)/);
    await note.waitFor({ timeout: 30_000 });
    assert.ok(Number(/cleared \((\d+)/.exec(await note.innerText())[1]) >= 1, 'the cache held hello.py');
    await wb.shot('12-cache-cleared');
    await clearOutput();
    await wb.runCommand('Sandbox: Run in Sandbox');
    const text = await wb.waitForOutput(/\[sandbox\] hello\.py: \w+/, { timeoutMs: 60_000 });
    await wb.shot('12-run-after-clear');
    assert.match(text, /\[sandbox\] hello\.py: ok · exit 0 ·[^\n]*· not cached/);
  }));

  it('Cancel on the batch progress notification stops the batch and frees the pool', () => step('13-batch-cancel', async () => {
    await clearOutput();
    await clearNotifications();
    await wb.runCommand('View: Show Explorer');
    await explorerRow('sleep_forever.py').click();
    await explorerRow('hello.py').click({ modifiers: ['Control'] });
    await wb.page.waitForFunction(
      () => document.querySelectorAll('.explorer-folders-view .monaco-list-row.selected').length === 2, undefined, { timeout: 10_000 });
    await explorerRow('sleep_forever.py').click({ button: 'right' });
    await pickMenuItem('Run in Sandbox');
    const progress = toast('Running 2 programs in the sandbox');
    await progress.waitFor({ timeout: 30_000 });
    // sleep_forever.py holds a worker until it is stopped (its time limit is 10 s).
    const status = (re) => wb.page.locator('.part.statusbar .statusbar-item', { hasText: re }).first();
    await status(/^\s*[1-9]\d*\/\d+ busy/).waitFor({ timeout: 10_000 });
    await wb.shot('13-batch-running');
    await toastButton(progress, 'Cancel').click();
    // The server answers with what it has: sleep_forever.py cancelled (its tree killed), hello.py ok.
    const text = await wb.waitForOutput(/\[sandbox\] batch: /, { timeoutMs: 10_000 });
    assert.match(text, /\[sandbox\] sleep_forever\.py: cancelled/);
    assert.match(text, /\[sandbox\] hello\.py: ok/);
    assert.match(text, /\[sandbox\] batch: 2 runs · 1 ok · 1 failed \(cancelled 1\)/);
    // Well before the 10 s limit: the server killed the run when the batch was cancelled.
    await status(/^\s*0\/\d+ busy/).waitFor({ timeout: 5_000 });
    await wb.shot('13-batch-cancelled');
  }));
});
