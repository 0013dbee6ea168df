// The Metrics webview view in a real VS Code extension host: contributed, revealed by "Show Metrics", and live.
// It reads the view through the probe `activate()` returns (client/metricsView.ts, MetricsViewProbe): whether
// VS Code resolved the view and the last model the extension posted to it.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { PROJECT_ROOT, WORKSPACE, manifest, EXTENSION_ID, waitFor } = require('./helpers.cjs');

describe('Metrics view', function () {
  /** @type {{ metricsView: { resolved: boolean, lastPostedModel: any, lastRevealedRunId: string | undefined } }} */
  let api;

  before(async function () {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not loaded`);
    api = await extension.activate();
    assert.ok(api && api.metricsView, 'activate() returns no metricsView probe');
  });

  it('contributes the "Sandbox" activity-bar container holding the "Metrics" webview view', async function () {
    const container = (manifest.contributes.viewsContainers?.activitybar ?? []).find((c) => c.id === 'sandbox');
    assert.ok(container, 'no activity-bar container "sandbox"');
    assert.equal(container.title, 'Sandbox');
    assert.match(container.icon, /^media\/.+\.svg$/);
    assert.ok(fs.existsSync(path.join(PROJECT_ROOT, container.icon)), `${container.icon} is missing`);
    const view = (manifest.contributes.views?.sandbox ?? []).find((v) => v.id === 'sandbox.metrics');
    assert.deepEqual({ type: view?.type, name: view?.name }, { type: 'webview', name: 'Metrics' });
    // VS Code itself knows them: it made the container's and the view's commands.
    const commands = new Set(await vscode.commands.getCommands(true));
    assert.ok(commands.has('workbench.view.extension.sandbox'), 'VS Code has no command for the Sandbox container');
    assert.ok(commands.has('sandbox.metrics.focus'), 'VS Code has no focus command for the Metrics view');
  });

  it('"Sandbox: Show Metrics" opens the view, which shows the server\'s metrics', async function () {
    await vscode.commands.executeCommand('sandbox.showMetrics');
    await waitFor('VS Code to resolve the Metrics view', () => api.metricsView.resolved);
    const model = await waitFor('a model with the server\'s metrics', () => api.metricsView.lastPostedModel?.connected && api.metricsView.lastPostedModel);
    assert.ok(model.pool.size >= 1, `pool size ${model.pool.size}`);
    assert.equal(model.workers.length, model.pool.size);
    assert.deepEqual(model.charts.map((c) => c.id), ['latency', 'throughput']);
    assert.match(model.server.rss, /MiB$/);
  });

  it('updates live: after a run the posted model counts one more run and lists it', async function () {
    const before = api.metricsView.lastPostedModel.runsTotal;
    const file = vscode.Uri.file(path.join(WORKSPACE, 'hello.py'));
    await vscode.window.showTextDocument(file);
    await vscode.commands.executeCommand('sandbox.run', file);
    const model = await waitFor(`runsTotal to pass ${before}`, () => api.metricsView.lastPostedModel.runsTotal > before && api.metricsView.lastPostedModel);
    assert.equal(model.recentRuns[0].language, 'python');
    assert.equal(model.recentRuns[0].status, 'ok');
    assert.ok(model.verdicts.some((v) => v.status === 'ok' && v.count >= 1));
    assert.ok(model.charts[0].series[0].values.length >= 1, 'the latency chart has no samples');
  });

  it('keeps its history while hidden and shows it again when re-shown', async function () {
    const shown = api.metricsView.lastPostedModel;
    const samples = shown.charts[0].series[0].values.length;
    await vscode.commands.executeCommand('workbench.view.explorer');
    await vscode.commands.executeCommand('sandbox.showMetrics');
    // Becoming visible again makes the provider post the model afresh, history included.
    const model = await waitFor('the model re-posted', () => api.metricsView.lastPostedModel !== shown && api.metricsView.lastPostedModel);
    assert.ok(model.charts[0].series[0].values.length >= samples, 'the chart history was lost');
    assert.equal(model.runsTotal >= shown.runsTotal, true);
  });
});
