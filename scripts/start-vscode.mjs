// `npm start`: opens the examples/ workspace in a real VS Code (code-server, on 127.0.0.1 only, no auth) with the
// freshly packaged extension installed, and prints the address to open in a browser. Ctrl-C stops it, and
// everything it started. `--check` starts it, checks that it answers and that the extension is installed, and stops
// (used by the tests, so that the newcomer's first command stays true).
import fs from 'node:fs';
import path from 'node:path';
import { installVsix, makeProfile, PROJECT_ROOT, startCodeServer, stopOnSignals } from '../test/vscode/server.mjs';

const check = process.argv.includes('--check');
const vsix = path.join(PROJECT_ROOT, 'sandbox-runner.vsix');
if (!fs.existsSync(vsix)) {
  console.error(`start: ${vsix} is missing: run "npm run package" first (npm start does).`);
  process.exit(2);
}

const profile = makeProfile({
  settings: { 'workbench.startupEditor': 'readme', 'security.workspace.trust.enabled': false },
});
console.log(`[start] installing ${path.basename(vsix)} into a fresh profile (${profile.dir})`);
await installVsix(profile, vsix);
const server = await startCodeServer({ profile, workspace: path.join(PROJECT_ROOT, 'examples') });
stopOnSignals(server.stop);

const installed = fs.readdirSync(profile.extensionsDir).filter((d) => d.startsWith('sandbox-runner.'));
if (installed.length === 0) {
  await server.stop();
  console.error('start: the extension is not in the profile after installing it');
  process.exit(1);
}

if (check) {
  const page = await fetch(server.url).then((r) => r.text());
  await server.stop();
  fs.rmSync(profile.dir, { recursive: true, force: true });
  if (!/vscode|workbench/i.test(page)) {
    console.error('start: the workbench page did not load');
    process.exit(1);
  }
  console.log(`start --check: VS Code answered at ${server.url} with ${installed[0]} installed; stopped again`);
  process.exit(0);
}

console.log(`
  VS Code with Sandbox Runner is running on this machine only:

      ${server.url}

  Open it in a browser (from another machine: ssh -L ${server.port}:127.0.0.1:${server.port} …), open a file of
  examples/ and press Ctrl+Alt+R (or the ▶ button, or a "▶ Run in Sandbox" CodeLens). Ctrl-C here stops it.
`);
// Stay up until Ctrl-C (stopOnSignals stops the server and exits).
await new Promise(() => undefined);
