// One e2e session: a private code-server with the extension (the packaged .vsix: $SANDBOX_VSIX, else the newest
// *.vsix in the project root; or, with SANDBOX_E2E_FROM_SOURCE=1, the working tree as extensionDevelopmentPath),
// Chromium on the fixture workspace, and the step runner. close() dumps the logs when a step failed, then stops it
// all and removes the profile.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  PROJECT_ROOT, installVsix, launchBrowser, makeProfile, readTail, startCodeServer, stopOnSignals,
} from '../vscode/server.mjs';
import { Workbench, findVsix, stepper } from './workbench.mjs';

export const WORKSPACE = path.join(PROJECT_ROOT, 'test/fixtures/workspace');
const RESULTS = path.join(PROJECT_ROOT, 'test-results');
const FROM_SOURCE = process.env.SANDBOX_E2E_FROM_SOURCE === '1';

export function e2eSession() {
  const session = {
    server: undefined,
    browser: undefined,
    /** @type {Workbench | undefined} */
    wb: undefined,
    pageLog: [],
    steps: stepper(() => session.wb),

    /** Starts everything and opens the workbench (step `<first>-workbench`), waiting until `expectFile` shows. */
    async open({ settings = {}, first, expectFile }) {
      const profile = makeProfile({ settings });
      let query = `?folder=${encodeURIComponent(WORKSPACE)}`;
      if (FROM_SOURCE) {
        console.log(`[e2e] extension loaded from source: ${PROJECT_ROOT}`);
      } else {
        const vsix = findVsix(PROJECT_ROOT);
        assert.ok(vsix && fs.existsSync(vsix), 'no .vsix to install: run "npm run package" (or set SANDBOX_VSIX, or SANDBOX_E2E_FROM_SOURCE=1)');
        console.log(`[e2e] ${path.basename(vsix)}: ${(await installVsix(profile, vsix)).split('\n').at(-1)}`);
      }
      session.server = await startCodeServer({ profile });
      stopOnSignals(session.server.stop);
      if (FROM_SOURCE) {
        const payload = [['extensionDevelopmentPath', `vscode-remote://${session.server.authority}${PROJECT_ROOT}`]];
        query += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
      }
      session.browser = await launchBrowser();
      session.browser.page.on('pageerror', (e) => session.pageLog.push(`[pageerror] ${e.message}`));
      session.browser.page.on('console', (m) => session.pageLog.push(`[${m.type()}] ${m.text()}`));
      session.wb = new Workbench(session.browser.page, RESULTS);
      await session.steps.step(`${first}-workbench`, () => session.wb.open(`${session.server.url}${query}`, { expectFile }));
    },

    async close() {
      const { server, browser } = session;
      if (session.steps.failed && server) {
        console.log(`----- workbench console (last 40)\n${session.pageLog.slice(-40).join('\n')}`);
        console.log(`----- extension host logs\n${server.extensionHostLogs()}`);
        console.log(`----- code-server log\n${readTail(server.profile.serverLog, 3_000)}`);
      }
      await browser?.close();
      await server?.stop();
      if (server) fs.rmSync(server.profile.dir, { recursive: true, force: true });
    },
  };
  return session;
}
