/**
 * The "Metrics" webview view in the "Sandbox" activity-bar container. The history of samples lives here, on the
 * extension side, from activation on: the view shows it whenever it is (re)shown. Updates come from the
 * `sandbox/metricsChanged` subscription the status bar uses too (`SandboxServer.onMetrics`); `sandbox/metrics` is
 * asked once each time the view resolves. The model and the HTML are built by client/metricsModel.ts (pure).
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import {
  buildMetricsHtml,
  makeNonce,
  metricsViewModel,
  parseViewMessage,
  pushSample,
  type MetricsSample,
  type MetricsViewModel,
} from './metricsModel';
import type { SandboxServer } from './server';
import { MetricsRequest, type Metrics } from '../server/protocol';

export const METRICS_VIEW_ID = 'sandbox.metrics';

/**
 * What the extension-host tests read through the API `activate()` returns (test/vscode/suite/metrics.test.cjs):
 * whether VS Code resolved the view, the last model posted to it, and the last run a click asked to reveal.
 */
export interface MetricsViewProbe {
  readonly resolved: boolean;
  readonly lastPostedModel: MetricsViewModel | undefined;
  readonly lastRevealedRunId: string | undefined;
}

export class MetricsViewProvider implements vscode.WebviewViewProvider, vscode.Disposable, MetricsViewProbe {
  private view: vscode.WebviewView | undefined;
  private metrics: Metrics | undefined;
  private history: MetricsSample[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  resolved = false;
  lastPostedModel: MetricsViewModel | undefined;
  lastRevealedRunId: string | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly server: SandboxServer,
    private readonly revealRun: (runId: string) => void,
  ) {
    this.disposables.push(
      server.onMetrics((m) => this.update(m)),
      server.onLanguages((l) => {
        // No server (stopped, restarting): say so rather than show stale figures as live.
        if (!l) {
          this.metrics = undefined;
          this.post();
        }
      }),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.resolved = true;
    const media = vscode.Uri.joinPath(this.extensionUri, 'media', 'metrics');
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = buildMetricsHtml(
      makeNonce((n) => randomBytes(n)),
      view.webview.cspSource,
      view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'metrics.js')).toString(),
      view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'metrics.css')).toString(),
    );
    this.disposables.push(
      view.webview.onDidReceiveMessage((raw: unknown) => {
        const message = parseViewMessage(raw);
        if (message?.type === 'ready') this.post();
        else if (message?.type === 'revealRun') {
          this.lastRevealedRunId = message.runId;
          this.revealRun(message.runId);
        }
      }),
      view.onDidChangeVisibility(() => {
        if (view.visible) this.post();
      }),
      view.onDidDispose(() => {
        if (this.view === view) this.view = undefined;
      }),
    );
    this.post();
    void this.fetch();
  }

  private async fetch(): Promise<void> {
    try {
      this.update(await this.server.request((c) => c.sendRequest(MetricsRequest.type)));
    } catch {
      // No server yet: the first sandbox/metricsChanged fills the view in.
    }
  }

  private update(metrics: Metrics): void {
    this.metrics = metrics;
    this.history = pushSample(this.history, metrics, Date.now());
    this.post();
  }

  private post(): void {
    if (!this.view) return;
    const model = metricsViewModel(this.metrics, this.history);
    this.lastPostedModel = model;
    void this.view.webview.postMessage({ type: 'model', model });
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

/** Registers the view (kept alive while hidden, so its charts keep their state) and returns the provider. */
export function registerMetricsView(
  context: vscode.ExtensionContext,
  server: SandboxServer,
  revealRun: (runId: string) => void,
): MetricsViewProvider {
  const provider = new MetricsViewProvider(context.extensionUri, server, revealRun);
  context.subscriptions.push(
    provider,
    vscode.window.registerWebviewViewProvider(METRICS_VIEW_ID, provider, { webviewOptions: { retainContextWhenHidden: true } }),
  );
  return provider;
}

/** `sandbox.showMetrics` and the status bar click: open the Sandbox container with the Metrics view focused. */
export async function showMetricsView(): Promise<void> {
  await vscode.commands.executeCommand(`${METRICS_VIEW_ID}.focus`);
}
