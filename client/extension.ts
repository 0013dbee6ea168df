/**
 * Sandbox Runner for VS Code. Activation only wires things up and starts the language client (which starts the
 * sandbox server, `dist/server.js`); every run happens in that server, never in the extension host.
 */
import * as vscode from 'vscode';
import { Runner } from './runner';
import { SandboxServer } from './server';
import { createStatusBar } from './statusBar';
import { registerMetricsView, showMetricsView, type MetricsViewProbe } from './metricsView';
import { SandboxTesting, type TestingApi } from './testing';
import type { RunUnitArgs } from '../server/protocol';

let server: SandboxServer | undefined;

/** What `activate()` returns: a read-only probe the extension-host tests use (test/vscode/suite/metrics.test.cjs). */
export interface SandboxRunnerApi {
  metricsView: MetricsViewProbe;
  /** The Test Explorer's tree and a run-all, for test/vscode/suite/testing.test.cjs (client/testing.ts). */
  testing: TestingApi;
}

export function activate(context: vscode.ExtensionContext): SandboxRunnerApi {
  const log = vscode.window.createOutputChannel('Sandbox', { log: true });
  const output = vscode.window.createOutputChannel('Sandbox Output');
  const sandbox = new SandboxServer(context, log);
  server = sandbox;
  const runner = new Runner(sandbox, output, log);
  const testing = new SandboxTesting(sandbox, log);

  const command = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(`sandbox.${id}`, handler));

  context.subscriptions.push(log, output, runner, testing, createStatusBar(sandbox));
  const metricsView = registerMetricsView(context, sandbox, (runId) => runner.revealRun(runId));
  command('run', (target?: vscode.Uri, selected?: vscode.Uri[]) => runner.run(target, selected));
  // A test lens runs through the Test Explorer (its harness and its result marks); the rest through the runner.
  command('runUnit', (args?: RunUnitArgs) =>
    args?.kind === 'test' && args.name !== undefined ? testing.runOne(args.uri, args.name) : runner.runUnit(args),
  );
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
  // The status bar item runs this command too: both open the Sandbox container on the Metrics view.
  command('showMetrics', () => showMetricsView());
  command('runAllTests', () => testing.runAll());

  // Not awaited: activation ends at once; a command issued meanwhile waits for the client to be ready.
  sandbox.start().catch((e: unknown) => {
    // The commands stay registered: "Restart Server" can try again once the cause is fixed.
    log.error(`starting the sandbox server failed: ${(e as Error).message}`);
    void vscode.window.showErrorMessage('The sandbox server did not start. See the "Sandbox" output, then run "Sandbox: Restart Server".');
  });
  return { metricsView, testing: testing.api };
}

export async function deactivate(): Promise<void> {
  // Stopping the client sends shutdown/exit: the server kills every run and removes its files.
  await server?.dispose();
  server = undefined;
}
