// A real VS Code (code-server 4.96.4 = VS Code 1.96.4, Node extension host) for the extension and e2e tests,
// installed by scripts/install-vscode-server.sh into .cache/vscode-e2e/, driven by Debian's Chromium.
//
// startCodeServer() listens on 127.0.0.1 only, with no auth (nothing but this machine can reach it), a private
// user-data-dir, extensions-dir and XDG dirs under a fresh temp dir (nothing lands in $HOME), no gallery, no
// update or telemetry checks and workspace trust off. It is started in its own process group (setsid) so stop()
// ends the server, its file watcher, extension hosts and pty host together.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const E2E_DIR = process.env.VSCODE_E2E_DIR ?? path.join(PROJECT_ROOT, '.cache/vscode-e2e');
export const CODE_SERVER_BIN = path.join(E2E_DIR, 'code-server/node_modules/.bin/code-server');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HOST = '127.0.0.1';

/** Settings that keep a test run quiet and offline: no update, gallery, telemetry, tips or trust prompts. */
export const TEST_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  // An explicit theme: otherwise a "new default theme" notification covers the Output panel in screenshots.
  'workbench.colorTheme': 'Default Dark Modern',
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  'security.workspace.trust.enabled': false,
  'npm.fetchOnlinePackageInfo': false,
  'typescript.disableAutomaticTypeAcquisition': true,
  'git.autofetch': false,
  'git.openRepositoryInParentFolders': 'never',
};

export function assertInstalled() {
  if (!fs.existsSync(CODE_SERVER_BIN) || !fs.existsSync(path.join(E2E_DIR, 'installed.json'))) {
    throw new Error(`code-server is not installed in ${E2E_DIR}: run scripts/install-vscode-server.sh first`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-vscode-server.sh`);
}

/** playwright-core from the cache folder (it is not a dependency of the project). */
export async function loadPlaywright() {
  const entry = path.join(E2E_DIR, 'playwright/node_modules/playwright-core/index.mjs');
  if (!fs.existsSync(entry)) throw new Error(`playwright-core missing in ${E2E_DIR}: run scripts/install-vscode-server.sh`);
  return import(pathToFileURL(entry).href);
}

/** Chromium flags: without the background-networking ones it keeps knocking on a closed network. */
export async function launchBrowser({ viewport = { width: 1400, height: 900 } } = {}) {
  const { chromium } = await loadPlaywright();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-vscode-chromium-'));
  // chromium.launch() refuses --user-data-dir in args; launchPersistentContext(dir) passes it for us.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    // Chromium keeps "Crash Reports" under XDG_CONFIG_HOME whatever its profile dir: keep that in the profile too.
    env: { ...process.env, XDG_CONFIG_HOME: path.join(profile, 'xdg-config'), XDG_CACHE_HOME: path.join(profile, 'xdg-cache') },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-default-apps', '--no-default-browser-check'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Private dirs for one VS Code: user data (with TEST_SETTINGS), extensions, XDG config/data, logs. */
export function makeProfile({ settings = {}, root } = {}) {
  const dir = root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-vscode-'));
  const profile = {
    dir,
    userDataDir: path.join(dir, 'user-data'),
    extensionsDir: path.join(dir, 'extensions'),
    xdgConfig: path.join(dir, 'xdg-config'),
    xdgData: path.join(dir, 'xdg-data'),
    // The extension host leaves its CLI socket (vscode-ipc-*.sock) in TMPDIR: keep it in here.
    tmp: path.join(dir, 'tmp'),
    configFile: path.join(dir, 'code-server.yaml'),
    serverLog: path.join(dir, 'code-server.log'),
  };
  for (const d of [profile.userDataDir, profile.extensionsDir, profile.xdgConfig, profile.xdgData, profile.tmp]) {
    fs.mkdirSync(d, { recursive: true });
  }
  fs.mkdirSync(path.join(profile.userDataDir, 'User'), { recursive: true });
  fs.writeFileSync(path.join(profile.userDataDir, 'User/settings.json'),
    JSON.stringify({ ...TEST_SETTINGS, ...settings }, null, 2));
  // An explicit (empty) config file: code-server would otherwise write one into ~/.config.
  fs.writeFileSync(profile.configFile, 'auth: none\ncert: false\n');
  return profile;
}

function serverEnv(profile) {
  return {
    ...process.env,
    EXTENSIONS_GALLERY: '{"serviceUrl":""}', // no open-vsx.org lookups
    XDG_CONFIG_HOME: profile.xdgConfig,
    XDG_DATA_HOME: profile.xdgData,
    TMPDIR: profile.tmp,
    VSCODE_PROXY_URI: '',
    // Extension tests find the output channels' log files here (the extension host inherits this env).
    SANDBOX_TEST_LOGS_DIR: path.join(profile.userDataDir, 'logs'),
  };
}

function profileArgs(profile) {
  return ['--config', profile.configFile, '--user-data-dir', profile.userDataDir, '--extensions-dir', profile.extensionsDir];
}

/** `code-server --install-extension file.vsix` into the profile's private extensions dir. */
export async function installVsix(profile, vsix) {
  assertInstalled();
  const { stdout, stderr } = await promisify(execFile)(CODE_SERVER_BIN,
    [...profileArgs(profile), '--install-extension', path.resolve(vsix)],
    { env: serverEnv(profile), timeout: 120_000 });
  const said = `${stdout}${stderr}`;
  if (!/was successfully installed/i.test(said)) throw new Error(`installing ${vsix} failed:\n${said}`);
  return said.trim();
}

/**
 * Starts code-server on 127.0.0.1:<free port> and resolves once /healthz answers.
 * Returns { url, port, authority, profile, pid, stop(), logs() }.
 */
export async function startCodeServer({ profile = makeProfile(), workspace, log = console.log, timeoutMs = 60_000 } = {}) {
  assertInstalled();
  const port = await freePort();
  const out = fs.openSync(profile.serverLog, 'a');
  const args = [...profileArgs(profile), '--auth', 'none', '--bind-addr', `${HOST}:${port}`,
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--disable-getting-started-override', '--disable-proxy', '--ignore-last-opened'];
  if (workspace) args.push(path.resolve(workspace));
  const t0 = Date.now();
  // detached = setsid: the server leads its own process group, which stop() kills as a whole.
  const child = spawn(CODE_SERVER_BIN, args, { detached: true, stdio: ['ignore', out, out], env: serverEnv(profile) });
  fs.closeSync(out);
  let exited = null;
  const exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const url = `http://${HOST}:${port}/`;

  const stop = async () => {
    if (exited) return exited;
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
    const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5_000);
    const result = await exitPromise;
    clearTimeout(timer);
    // The leader can exit before its children: make sure nothing of the group is left.
    for (let i = 0; i < 50 && groupAlive(child.pid); i++) {
      if (i === 20) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }
      await new Promise((r) => setTimeout(r, 100));
    }
    return result;
  };

  const deadline = t0 + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`code-server exited (${JSON.stringify(exited)}) before answering /healthz:\n${readTail(profile.serverLog)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`code-server did not answer /healthz within ${timeoutMs} ms:\n${readTail(profile.serverLog)}`);
    }
    const ok = await fetch(`${url}healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`[vscode] code-server ${url} (pid ${child.pid}) answered /healthz after ${Date.now() - t0} ms`);
  return {
    url,
    port,
    authority: `${HOST}:${port}`,
    pid: child.pid,
    profile,
    stop,
    /** The extension host's logs (and the extensions' output channels) as text, for failure reports. */
    extensionHostLogs: () => collectLogs(profile.userDataDir, /exthost|remoteagent|output_logging/),
  };
}

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}

export function readTail(file, max = 8_000) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > max ? `…${text.slice(-max)}` : text;
  } catch { return `(no ${file})`; }
}

function collectLogs(userDataDir, pattern) {
  const logsDir = path.join(userDataDir, 'logs');
  const files = [];
  const walk = (d) => {
    for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.log') && pattern.test(path.relative(logsDir, p))) files.push(p);
    }
  };
  walk(logsDir);
  return files.map((f) => `----- ${path.relative(logsDir, f)}\n${readTail(f)}`).join('\n');
}

/** Stops the server(s) on Ctrl-C / SIGTERM too, so no code-server outlives its test run. */
export function stopOnSignals(...stoppers) {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      void Promise.allSettled(stoppers.map((s) => s())).then(() => process.exit(130));
    });
  }
}
