// Driving the VS Code workbench as a person does: the keyboard (F1, Ctrl+P), clicks on what is shown, and reading
// the page. Every wait is on something the page shows (a selector, a text), never a fixed sleep.
import fs from 'node:fs';
import path from 'node:path';

export const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const nbsp = (s) => s.replace(/\u00a0/g, ' ');

/** The newest .vsix in `root` (or $SANDBOX_VSIX): what `npm run package` made. */
export function findVsix(root) {
  if (process.env.SANDBOX_VSIX) return path.resolve(process.env.SANDBOX_VSIX);
  return fs.readdirSync(root).filter((f) => f.endsWith('.vsix'))
    .map((f) => path.join(root, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}

/**
 * The steps of an e2e file: a failing step leaves test-results/e2e-<name>-FAILED.png and sets `failed` (the after
 * hook then dumps the logs).
 */
export function stepper(getWorkbench) {
  const steps = {
    failed: false,
    async step(name, body) {
      try {
        await body();
      } catch (e) {
        steps.failed = true;
        await getWorkbench()?.shot(`${name}-FAILED`).catch(() => {});
        throw e;
      }
    },
  };
  return steps;
}


export class Workbench {
  /** @param {import('playwright-core').Page} page @param {string} resultsDir */
  constructor(page, resultsDir) {
    this.page = page;
    this.resultsDir = resultsDir;
    this.quickInput = page.locator('.quick-input-widget .quick-input-box input');
  }

  /** Opens `url` and waits for the workbench and (when given) a file of the workspace in the Explorer. */
  async open(url, { expectFile } = {}) {
    await this.page.goto(url);
    await this.page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
    if (expectFile) {
      await this.page.locator('.explorer-folders-view .monaco-list-row', { hasText: expectFile }).first().waitFor({ timeout: 60_000 });
    }
  }

  /** Screenshot of the whole workbench into <resultsDir>/e2e-<name>.png. */
  async shot(name) {
    fs.mkdirSync(this.resultsDir, { recursive: true });
    const file = path.join(this.resultsDir, `e2e-${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /**
   * F1, type the command's title, Enter. Retries while it is not listed yet (the extension host is still starting,
   * or a when-clause is not true yet). Picks the row whose label is exactly `title`.
   */
  async runCommand(title, { timeoutMs = 60_000 } = {}) {
    const exact = this.page.locator('.quick-input-widget .monaco-list-row .label-name',
      { hasText: new RegExp(`^${escapeRe(title)}$`) }).first();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.page.keyboard.press('F1');
      await this.quickInput.waitFor({ state: 'visible', timeout: 10_000 });
      await this.quickInput.fill(`>${title}`);
      if (await exact.waitFor({ timeout: 2_000 }).then(() => true, () => false)) {
        await exact.click();
        await this.quickInput.waitFor({ state: 'hidden', timeout: 10_000 });
        return;
      }
      await this.page.keyboard.press('Escape');
      await this.quickInput.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => {});
      if (Date.now() > deadline) throw new Error(`command "${title}" never appeared in the command palette`);
    }
  }

  /** Quick Open (Ctrl+P) a workspace file, wait for its tab, and put the cursor in its text. */
  async openFile(name) {
    await this.page.keyboard.press('Control+P');
    await this.quickInput.waitFor({ state: 'visible', timeout: 10_000 });
    await this.quickInput.fill(name);
    // The focused row, not any row: a recently opened file may be listed first while the search catches up.
    await this.page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: name }).first().waitFor({ timeout: 15_000 });
    await this.page.keyboard.press('Enter');
    await this.page.locator('.tabs-container .tab.active', { hasText: name }).waitFor({ timeout: 15_000 });
    // Focus the text so `editorLangId` / `editorTextFocus` when-clauses hold.
    await this.page.locator('.editor-instance .monaco-editor .view-lines').first().click();
  }

  /** The text the Output panel shows (a Monaco editor; its innerText uses U+00A0 for spaces). */
  async outputText() {
    const lines = this.page.locator('.part.panel .output-view .view-lines').first();
    if (!(await lines.count())) return '';
    return nbsp(await lines.innerText());
  }

  /** Waits until the Output panel shows text matching `pattern`; returns that text. */
  async waitForOutput(pattern, { timeoutMs = 30_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.outputText();
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`the Output panel never showed ${pattern}; it shows:\n${text}`);
      // Wait for the panel's text to change rather than poll blindly.
      await this.page.waitForFunction(
        (before) => (document.querySelector('.part.panel .output-view .view-lines')?.textContent ?? '') !== before,
        (await this.page.locator('.part.panel .output-view .view-lines').first().textContent().catch(() => '')) ?? '',
        { timeout: Math.max(100, Math.min(2_000, deadline - Date.now())) },
      ).catch(() => {});
    }
  }

  /** A row of the Test Explorer tree, by its label (its aria-label is "<label>" or "<label> (<State>)…"). */
  testItem(label) {
    const q = JSON.stringify(label);
    return this.page.locator(`.test-explorer .monaco-list-row[aria-label=${q}], .test-explorer .monaco-list-row[aria-label^=${JSON.stringify(`${label} (`)}]`).first();
  }

  /** The state icon of a Test Explorer row: passed, failed, errored, skipped, queued, running, unset… */
  async testItemState(label) {
    const cls = (await this.testItem(label).locator('.computed-state').first().getAttribute('class')) ?? '';
    return /codicon-testing-(\w+)-icon/.exec(cls)?.[1] ?? 'none';
  }

  /** Waits until the Test Explorer row `label` shows `state`. */
  async waitForTestState(label, state, { timeoutMs = 60_000 } = {}) {
    await this.testItem(label).locator(`.computed-state.codicon-testing-${state}-icon`).waitFor({ timeout: timeoutMs });
  }

  /** Expands a collapsed Test Explorer row (click on its twistie). */
  async expandTestItem(label) {
    const row = this.testItem(label);
    await row.waitFor({ timeout: 60_000 });
    if ((await row.getAttribute('aria-expanded')) === 'false') {
      await row.locator('.monaco-tl-twistie').click();
      await this.page.waitForFunction((el) => el.getAttribute('aria-expanded') === 'true', await row.elementHandle(), { timeout: 10_000 });
    }
  }

  /**
   * The document of the visible webview view (two iframes deep: VS Code's host frame, then the extension's
   * content frame #active-frame).
   */
  webview() {
    // The webview's iframe is not inside its pane (VS Code overlays it on top): take the visible, ready one.
    return this.page.frameLocator('iframe.webview.ready:visible').first().frameLocator('#active-frame');
  }

  /** The visible text of the webview view titled `viewTitle` (see webview()), once `pattern` matches it. */
  async waitForWebviewText(viewTitle, pattern, { timeoutMs = 30_000 } = {}) {
    const body = this.webview().locator('body');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = nbsp(await body.innerText({ timeout: Math.max(1_000, deadline - Date.now()) }).catch(() => ''));
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`the "${viewTitle}" view never showed ${pattern}; it shows:\n${text}`);
      // Wait for the view's text to change (or 2 s), then read it again.
      await body.evaluate((el, before) => new Promise((resolve) => {
        const obs = new MutationObserver(() => { if (el.innerText !== before) { obs.disconnect(); resolve(); } });
        obs.observe(el, { subtree: true, childList: true, characterData: true });
        setTimeout(() => { obs.disconnect(); resolve(); }, 2_000);
      }), text).catch(() => {});
    }
  }
}
