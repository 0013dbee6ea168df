// The Sandbox Runner extension in a real VS Code extension host: activation, commands, and a real run.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { PROJECT_ROOT, WORKSPACE, manifest, EXTENSION_ID, waitFor, outputChannelText } = require('./helpers.cjs');

/** Pids of the sandbox servers this extension host started (children running dist/server.js). */
function sandboxServerPids() {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (ppid === process.pid && /dist[\\/]server\.js/.test(cmdline)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Summary lines of `label` in the Sandbox Output channel, oldest first. */
function summaries(label) {
  const re = new RegExp(`^\\[sandbox\\] ${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*$`, 'gm');
  return outputChannelText('Sandbox Output').match(re) ?? [];
}

const contributedCommands = (manifest.contributes?.commands ?? []).map((c) => c.command).filter((c) => c.startsWith('sandbox.'));

describe('Sandbox Runner in VS Code', function () {
  before(function () {
    assert.ok(manifest.main, 'package.json has no "main": the extension is not part of the package yet');
    assert.ok(fs.existsSync(path.join(PROJECT_ROOT, manifest.main)), `${manifest.main} is missing: run "npm run build" first`);
  });

  it('activates', async function () {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not loaded`);
    await extension.activate();
    assert.equal(extension.isActive, true);
  });

  it('registers every sandbox.* command it contributes', async function () {
    assert.ok(contributedCommands.includes('sandbox.run'), 'package.json contributes no sandbox.run');
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributedCommands.filter((c) => !registered.has(c));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
  });

  it('runs a Python file with sandbox.run and reports "ok" in the Sandbox Output channel', async function () {
    const file = vscode.Uri.file(path.join(WORKSPACE, 'hello.py'));
    await vscode.window.showTextDocument(file);
    // The command's promise settles when the run has ended and its summary line was written.
    await vscode.commands.executeCommand('sandbox.run', file);
    const text = await waitFor('the summary line of hello.py',
      () => /\[sandbox\] hello\.py: \w+/.test(outputChannelText('Sandbox Output')) && outputChannelText('Sandbox Output'),
      { timeoutMs: 10_000 });
    assert.match(text, /hello from the sandbox/);
    assert.match(text, /\[sandbox\] hello\.py: ok · exit 0 · /);
  });

  it('offers a "Run in Sandbox" CodeLens above the __main__ block', async function () {
    const file = vscode.Uri.file(path.join(WORKSPACE, 'main_block.py'));
    await vscode.window.showTextDocument(file);
    // The lenses come from the server (textDocument/codeLens) once it has the document.
    const lenses = await waitFor('a CodeLens on main_block.py', async () => {
      const found = await vscode.commands.executeCommand('vscode.executeCodeLensProvider', file, 10);
      return (found ?? []).filter((l) => l.command && l.command.command.startsWith('sandbox.')).length > 0 && found;
    });
    const lens = lenses.find((l) => l.command && /Run in Sandbox/.test(l.command.title));
    assert.ok(lens, `no "Run in Sandbox" lens among ${JSON.stringify(lenses.map((l) => l.command && l.command.title))}`);
    assert.equal(lens.range.start.line, 4, 'the lens sits on the `if __name__ == "__main__":` line');
    await vscode.commands.executeCommand(lens.command.command, ...(lens.command.arguments ?? []));
    const [summary] = await waitFor('the summary line of the __main__ block', () => summaries('main_block.py').length > 0 && summaries('main_block.py'));
    assert.match(summary, /: ok · exit 0 · /);
    assert.match(outputChannelText('Sandbox Output'), /hello, codelens/);
  });

  it('shows the security scan\'s findings as diagnostics before anything runs, and updates them on edit', async function () {
    const doc = await vscode.workspace.openTextDocument({ language: 'python', content: 'import socket\nprint("hi")\n' });
    await vscode.window.showTextDocument(doc);
    const ours = () => vscode.languages.getDiagnostics(doc.uri).filter((d) => d.source === 'Sandbox Runner');
    const found = await waitFor('a Sandbox Runner diagnostic on the untitled document', () => ours().length > 0 && ours());
    const network = found.find((d) => String(typeof d.code === 'object' ? d.code.value : d.code) === 'network');
    assert.ok(network, `no "network" finding among ${JSON.stringify(found.map((d) => d.code))}`);
    assert.equal(network.range.start.line, 0, 'on the import line');
    assert.equal(network.severity, vscode.DiagnosticSeverity.Warning);
    // Removing the import clears it: the server rescans the edited text.
    const editor = vscode.window.activeTextEditor;
    await editor.edit((e) => e.delete(new vscode.Range(0, 0, 1, 0)));
    await waitFor('the finding to go once the import is removed', () => !ours().some((d) => String(typeof d.code === 'object' ? d.code.value : d.code) === 'network'));
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  it('answers a repeated run from the cache, and "Re-run Without Cache" runs it for real', async function () {
    const file = vscode.Uri.file(path.join(WORKSPACE, 'hello.py'));
    await vscode.window.showTextDocument(file);
    await vscode.commands.executeCommand('sandbox.run', file);
    const earlier = summaries('hello.py').length;
    await vscode.commands.executeCommand('sandbox.run', file);
    await vscode.commands.executeCommand('sandbox.rerunWithoutCache');
    const [cached, rerun] = await waitFor('two more summary lines', () => summaries('hello.py').length >= earlier + 2 && summaries('hello.py').slice(earlier));
    assert.match(cached, /: ok · exit 0 · .*· cached/);
    assert.match(rerun, /: ok · exit 0 · .*· not cached/);
  });

  it('stops a running program with sandbox.stop', async function () {
    const file = vscode.Uri.file(path.join(WORKSPACE, 'sleep_forever.py'));
    await vscode.window.showTextDocument(file);
    const run = vscode.commands.executeCommand('sandbox.run', file);
    await waitFor('the program to start', () => /started, sleeping until stopped/.test(outputChannelText('Sandbox Output')));
    const started = Date.now();
    await vscode.commands.executeCommand('sandbox.stop');
    await run; // settles once the server has answered the cancelled request
    const [summary] = await waitFor('the summary of the stopped run', () => summaries('sleep_forever.py').length > 0 && summaries('sleep_forever.py'));
    assert.match(summary, /: cancelled/);
    assert.ok(Date.now() - started < 5_000, 'the run ended soon after Stop, not at its timeout');
  });

  it('restarts the sandbox server after it is killed, and runs again', async function () {
    if (!fs.existsSync('/proc/self/stat')) this.skip(); // finds the server's pid through /proc (Linux)
    const [before] = await waitFor('the running sandbox server', () => sandboxServerPids().length === 1 && sandboxServerPids());
    process.kill(before, 'SIGKILL');
    const [after] = await waitFor('a restarted sandbox server', () => {
      const pids = sandboxServerPids().filter((p) => p !== before);
      return pids.length === 1 && pids;
    });
    assert.notEqual(after, before);
    const file = vscode.Uri.file(path.join(WORKSPACE, 'hello.py'));
    const earlier = summaries('hello.py').length;
    // A run that meets the server still starting says so in the output and is simply tried again.
    const ok = await waitFor('an "ok" run on the restarted server', async () => {
      await vscode.commands.executeCommand('sandbox.run', file);
      return summaries('hello.py').slice(earlier).find((line) => /: ok · exit 0 · /.test(line));
    });
    assert.match(ok, /not cached|cached/);
  });
});

