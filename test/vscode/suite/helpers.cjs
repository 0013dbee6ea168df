// Shared by the extension tests: where things are, and waiting on a condition (never a fixed sleep).
const fs = require('node:fs');
const path = require('node:path');

const PROJECT_ROOT = path.resolve(__dirname, '../../..');
const WORKSPACE = path.join(PROJECT_ROOT, 'test/fixtures/workspace');
const manifest = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8'));
const EXTENSION_ID = `${manifest.publisher}.${manifest.name}`;

/** Polls `probe` until it returns a truthy value; throws with `what` after `timeoutMs`. */
async function waitFor(what, probe, { timeoutMs = 30_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The text of an output channel as the extension host wrote it to its log file. The harness tells where the logs
 * are (SANDBOX_TEST_LOGS_DIR): each output channel is a file `<n>-<channel name>.log` under it.
 */
function outputChannelText(channelName) {
  const root = process.env.SANDBOX_TEST_LOGS_DIR;
  if (!root) throw new Error('SANDBOX_TEST_LOGS_DIR is not set: run the suite through test/vscode/run-extension-tests.mjs');
  const found = [];
  const walk = (dir) => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.replace(/^\d+-/, '') === `${channelName}.log`) found.push(p);
    }
  };
  walk(root);
  // The newest one: one file per channel per extension host.
  found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return found.length > 0 ? fs.readFileSync(found[0], 'utf8') : '';
}

module.exports = { PROJECT_ROOT, WORKSPACE, manifest, EXTENSION_ID, waitFor, outputChannelText };
