#!/usr/bin/env node
// Runs an extension test suite (an `extensionTestsPath` module whose run() returns a promise) inside a real
// VS Code extension host. Two ways, one script:
//
//   offline (default, CI here): code-server 4.96.4 = VS Code 1.96.4 with its Node extension host, from
//     scripts/install-vscode-server.sh. Chromium opens the workbench URL with a `payload` holding
//     extensionDevelopmentPath + extensionTestsPath (as vscode-remote:// URIs); VS Code loads the extension from
//     source, calls run(), and reports the exit code through window.codeAutomationExit(code), which Playwright
//     exposes and awaits.
//   SANDBOX_TEST_ELECTRON=1: @vscode/test-electron with a desktop VS Code already on disk (.vscode-test/ or
//     SANDBOX_VSCODE_EXECUTABLE); SANDBOX_TEST_ELECTRON=download lets it download one first (needs the network:
//     developer laptops, public CI; on Linux without a display run it under xvfb-run). A path that cannot run
//     says so and exits 3: it is never counted as passed.
//
// Usage: node test/vscode/run-extension-tests.mjs [--self-test] [--extension PATH] [--tests PATH]
//          [--workspace PATH] [--timeout MS]
// Defaults: the project itself, test/vscode/suite/index.cjs, test/fixtures/workspace, 240000 ms.
// --self-test proves the harness with a throwaway extension generated into a temp dir: its passing suite must
// exit 0 and its failing suite must exit non-zero.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  PROJECT_ROOT, launchBrowser, makeProfile, readTail, startCodeServer, stopOnSignals,
} from './server.mjs';

const CANNOT_RUN = 3;
const { values: opts } = parseArgs({
  options: {
    'self-test': { type: 'boolean', default: false },
    extension: { type: 'string', default: PROJECT_ROOT },
    tests: { type: 'string', default: path.join(PROJECT_ROOT, 'test/vscode/suite/index.cjs') },
    workspace: { type: 'string', default: path.join(PROJECT_ROOT, 'test/fixtures/workspace') },
    timeout: { type: 'string', default: process.env.SANDBOX_VSCODE_TEST_TIMEOUT ?? '240000' },
  },
});
const timeoutMs = Number(opts.timeout);
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;

/** Runs one suite in code-server; resolves to the exit code the extension host reported (or a failure). */
async function runInCodeServer(server, { extensionPath, testsPath, workspace, label }) {
  const browser = await launchBrowser();
  const messages = [];
  let suiteResult;
  try {
    const { page } = browser;
    let reportExit;
    const exited = new Promise((resolve) => { reportExit = resolve; });
    await page.exposeFunction('codeAutomationExit', (code) => reportExit(code));
    page.on('console', (m) => {
      // The extension host's console reaches the page as "%c INFO color: #33f <text>" (ERR for errors).
      const text = m.text().replace(/^%c\s*([A-Z]+)\s+color:\s*#\w+\s?/, '$1 ');
      messages.push(`[${m.type()}] ${text}`);
      // The suite marks its report lines with "[suite]" (see test/vscode/suite/index.cjs): echo them live.
      const result = /\[suite-result\] (\{.*\})/.exec(text);
      if (result) suiteResult = JSON.parse(result[1]);
      const at = text.indexOf('[suite]');
      if (at >= 0) console.log(`  ${text.slice(at + 7).replace(/^ /, '')}`);
    });
    page.on('pageerror', (e) => messages.push(`[pageerror] ${e.message}`));
    const payload = [
      ['extensionDevelopmentPath', `vscode-remote://${server.authority}${path.resolve(extensionPath)}`],
      ['extensionTestsPath', `vscode-remote://${server.authority}${path.resolve(testsPath)}`],
    ];
    const url = `${server.url}?folder=${encodeURIComponent(path.resolve(workspace))}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
    console.log(`[vscode] ${label}: ${path.relative(PROJECT_ROOT, testsPath) || testsPath} in VS Code 1.96.4 (code-server), workspace ${workspace}`);
    await page.goto(url);
    let timer;
    const code = await Promise.race([
      exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (code === 'timeout') {
      await page.screenshot({ path: path.join(PROJECT_ROOT, 'test-results', `vscode-${label}-timeout.png`) }).catch(() => {});
    }
    return { code, messages, suiteResult };
  } finally {
    await browser.close();
  }
}

function printFailure(server, messages) {
  console.log('----- workbench console (last 80 messages)');
  console.log(messages.slice(-80).join('\n'));
  console.log('----- extension host logs');
  console.log(server.extensionHostLogs() || '(none)');
  console.log('----- code-server log');
  console.log(readTail(server.profile.serverLog, 4_000));
}

function describe(code) {
  if (code === 0) return 'passed';
  if (code === 'timeout') return `did not finish within ${timeoutMs} ms`;
  return `failed (extension host exit code ${code})`;
}

/** Test counts reported by suites (test/vscode/suite/index.cjs prints them as "[suite-result] {...}"). */
const counts = [];

async function offline(runs) {
  fs.mkdirSync(path.join(PROJECT_ROOT, 'test-results'), { recursive: true });
  const profile = makeProfile();
  const server = await startCodeServer({ profile });
  stopOnSignals(server.stop);
  let ok = true;
  try {
    for (const run of runs) {
      const { code, messages, suiteResult } = await runInCodeServer(server, run);
      if (suiteResult) counts.push(suiteResult);
      const passed = code === 0;
      const asExpected = passed === run.expectPass;
      console.log(`[vscode] ${run.label}: ${describe(code)}${run.expectPass ? '' : ' (this suite must fail)'} — ${elapsed()}`);
      if (!asExpected) {
        ok = false;
        printFailure(server, messages);
      }
    }
  } finally {
    await server.stop();
    fs.rmSync(profile.dir, { recursive: true, force: true });
  }
  return ok;
}

/** @vscode/test-electron: a desktop VS Code (Electron). Never reaches the network unless told to download. */
async function electron(run) {
  const mode = process.env.SANDBOX_TEST_ELECTRON;
  const version = process.env.SANDBOX_VSCODE_VERSION ?? '1.96.4';
  let testElectron;
  try {
    testElectron = await import('@vscode/test-electron');
  } catch {
    console.error('[vscode] CANNOT RUN: @vscode/test-electron is not installed (npm ci). Not counted as passed.');
    return CANNOT_RUN;
  }
  let vscodeExecutablePath = process.env.SANDBOX_VSCODE_EXECUTABLE;
  if (!vscodeExecutablePath && mode !== 'download') {
    vscodeExecutablePath = findCachedVSCode(version);
    if (!vscodeExecutablePath) {
      console.error(`[vscode] CANNOT RUN with @vscode/test-electron: no desktop VS Code ${version} in .vscode-test/ and ` +
        'downloading is off. This machine cannot download VS Code (offline); use the default code-server path here. ' +
        'On a machine with network: SANDBOX_TEST_ELECTRON=download (under xvfb-run on Linux without a display), or point ' +
        'SANDBOX_VSCODE_EXECUTABLE at a VS Code binary. Not counted as passed.');
      return CANNOT_RUN;
    }
  }
  // A private user-data-dir, whose logs the suite reads output channels from (as with code-server).
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-vscode-electron-'));
  try {
    const code = await testElectron.runTests({
      ...(vscodeExecutablePath ? { vscodeExecutablePath } : { version }),
      extensionDevelopmentPath: path.resolve(run.extensionPath),
      extensionTestsPath: path.resolve(run.testsPath),
      launchArgs: [path.resolve(run.workspace), '--disable-extensions', '--disable-workspace-trust', '--skip-welcome',
        '--skip-release-notes', `--user-data-dir=${userDataDir}`],
      extensionTestsEnv: { SANDBOX_TEST_LOGS_DIR: path.join(userDataDir, 'logs') },
    });
    console.log(`[vscode] ${run.label} (electron): ${describe(code)} — ${elapsed()}`);
    return code === 0 ? 0 : 1;
  } catch (e) {
    console.error(`[vscode] ${run.label} (electron): CANNOT RUN or failed: ${e?.message ?? e}. Not counted as passed.`);
    return 1;
  } finally {
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

function findCachedVSCode(version) {
  const dir = path.join(process.cwd(), '.vscode-test');
  if (!fs.existsSync(dir)) return undefined;
  for (const entry of fs.readdirSync(dir)) {
    if (!entry.startsWith('vscode-') || !entry.includes(version)) continue;
    for (const candidate of ['code', 'VSCode-linux-x64/code', 'Visual Studio Code.app/Contents/MacOS/Electron', 'Code.exe']) {
      const p = path.join(dir, entry, candidate);
      if (fs.existsSync(p)) return p;
    }
  }
  return undefined;
}

/** A throwaway extension (not ours): one command that spawns a child, a passing and a failing suite. */
function makeSelfTestExtension() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-vscode-selftest-'));
  const write = (rel, text) => { fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true }); fs.writeFileSync(path.join(dir, rel), text); };
  write('package.json', JSON.stringify({
    name: 'harness-self-test', publisher: 'selftest', version: '0.0.1', engines: { vscode: '^1.90.0' },
    main: './extension.js', activationEvents: [],
    contributes: { commands: [{ command: 'selftest.spawn', title: 'Self Test: Spawn' }] },
  }, null, 2));
  write('extension.js', `const vscode = require('vscode'), cp = require('child_process');
exports.activate = (context) => {
  context.subscriptions.push(vscode.commands.registerCommand('selftest.spawn', () => cp.execFileSync('echo', ['spawned']).toString().trim()));
};\n`);
  write('pass.cjs', `const vscode = require('vscode'), assert = require('assert');
exports.run = async () => {
  // Executing the contributed command activates the extension (implicit onCommand activation) and spawns a child.
  assert.strictEqual(await vscode.commands.executeCommand('selftest.spawn'), 'spawned');
  assert.ok((await vscode.commands.getCommands(true)).includes('selftest.spawn'), 'command registered');
  assert.ok(vscode.extensions.getExtension('selftest.harness-self-test').isActive, 'extension active');
  assert.ok(vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders.length === 1, 'workspace open');
  console.log('[suite] self-test suite ok in the', process.release.name, process.version, 'extension host, VS Code', vscode.version);
};\n`);
  write('fail.cjs', `const assert = require('assert');
exports.run = async () => { assert.strictEqual(1 + 1, 3, 'this suite fails on purpose'); };\n`);
  return dir;
}

let exitCode;
if (opts['self-test']) {
  const ext = makeSelfTestExtension();
  const workspace = path.join(PROJECT_ROOT, 'test/fixtures/workspace');
  try {
    const ok = await offline([
      { label: 'self-test-pass', extensionPath: ext, testsPath: path.join(ext, 'pass.cjs'), workspace, expectPass: true },
      { label: 'self-test-fail', extensionPath: ext, testsPath: path.join(ext, 'fail.cjs'), workspace, expectPass: false },
    ]);
    console.log(`[vscode] harness self-test ${ok ? 'passed' : 'FAILED'} in ${elapsed()}`);
    exitCode = ok ? 0 : 1;
  } finally {
    fs.rmSync(ext, { recursive: true, force: true });
  }
} else {
  const run = { label: 'extension-tests', extensionPath: opts.extension, testsPath: opts.tests, workspace: opts.workspace, expectPass: true };
  if (process.env.SANDBOX_TEST_ELECTRON) {
    exitCode = await electron(run);
  } else {
    exitCode = (await offline([run])) ? 0 : 1;
    console.log(`[vscode] extension tests ${exitCode === 0 ? 'passed' : 'FAILED'} in ${elapsed()}`);
    const passed = counts.reduce((n, c) => n + c.passed, 0);
    // A suite that never reported counts (crashed, timed out) counts as one failure, never as passed.
    const failed = counts.reduce((n, c) => n + c.failed, 0) + (exitCode !== 0 && counts.every((c) => c.failed === 0) ? 1 : 0);
    console.log(`vscode: ${passed} passed, ${failed} failed`);
  }
}
process.exit(exitCode);
