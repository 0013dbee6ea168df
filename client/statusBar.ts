/** The status bar item: pool busy/size, cache hit rate and the isolation mode (its tooltip: how runs are sandboxed);
 * a click shows the metrics. */
import * as vscode from 'vscode';
import { statusBarText, statusBarTooltip } from './format';
import type { SandboxServer } from './server';
import type { IsolationMode, Metrics, SandboxInfo } from '../server/protocol';

export function createStatusBar(server: SandboxServer): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('sandbox.status', vscode.StatusBarAlignment.Left, 0);
  item.name = 'Sandbox Runner';
  item.command = 'sandbox.showMetrics';
  let metrics: Metrics | undefined;
  let isolation: IsolationMode | undefined;
  let sandbox: SandboxInfo | undefined;
  const render = () => {
    item.text = statusBarText(metrics, isolation);
    item.tooltip = statusBarTooltip(metrics, isolation, sandbox);
  };
  render();
  item.show();
  return vscode.Disposable.from(
    item,
    server.onMetrics((m) => {
      metrics = m;
      render();
    }),
    server.onLanguages((l) => {
      isolation = l?.isolation;
      sandbox = l?.sandbox;
      if (!l) metrics = undefined;
      render();
    }),
  );
}
