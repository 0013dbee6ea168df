/**
 * Sandbox Runner for VS Code. Activation only wires things up and starts the language client (which starts the
 * sandbox server, `dist/server.js`); every run happens in that server, never in the extension host.
 */
import * as vscode from 'vscode';
import { metricsSummary } from './format';
import { Runner } from './runner';
import { SandboxServer } from './server';
import { createStatusBar } from './statusBar';
import { MetricsRequest, type RunUnitArgs } from '../server/protocol';

let server: SandboxServer | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Sandbox', { log: true });
  const output = vscode.window.createOutputChannel('Sandbox Output');
  const sandbox = new SandboxServer(context, log);
  server = sandbox;
  const runner = new Runner(sandbox, output, log);

  const command = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(`sandbox.${id}`, handler));

  context.subscriptions.push(log, output, runner, createStatusBar(sandbox));
  command('run', (target?: vscode.Uri, selected?: vscode.Uri[]) => runner.run(target, selected));
  command('runUnit', (args?: RunUnitArgs) => runner.runUnit(args));
  command('runWithInput', () => runner.runWithInput());
  command('rerunWithoutCache', () => runner.rerunWithoutCache());
  command('stop', () => runner.stop());
  command('clearCache', () => runner.clearCache());
  command('showOutput', () => output.show());
  command('restartServer', async () => {
    try {
      await sandbox.restart();
      void vscode.window.showInformationMessage('The sandbox server was restarted.');
    } catch (e) {
      log.error(`restart failed: ${(e as Error).message}`);
      void vscode.window.showErrorMessage(`The sandbox server could not be started: ${(e as Error).message}. See the "Sandbox" output.`);
    }
  });
  command('showMetrics', async () => {
    // The metrics webview view (issue 3) plugs in here: this command will reveal it. Until it exists, the
    // same figures go to the log channel.
    try {
      const metrics = await sandbox.request((c) => c.sendRequest(MetricsRequest.type));
      log.info(metricsSummary(metrics, sandbox.languages?.isolation));
      log.show(true);
    } catch (e) {
      void vscode.window.showErrorMessage(`Reading the sandbox metrics failed: ${(e as Error).message}`);
    }
  });

  // Not awaited: activation ends at once; a command issued meanwhile waits for the client to be ready.
  sandbox.start().catch((e: unknown) => {
    // The commands stay registered: "Restart Server" can try again once the cause is fixed.
    log.error(`starting the sandbox server failed: ${(e as Error).message}`);
    void vscode.window.showErrorMessage('The sandbox server did not start. See the "Sandbox" output, then run "Sandbox: Restart Server".');
  });
}

export async function deactivate(): Promise<void> {
  // Stopping the client sends shutdown/exit: the server kills every run and removes its files.
  await server?.dispose();
  server = undefined;
}
