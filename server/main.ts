/**
 * The sandbox server process: `node dist/server.js --stdio`. Wires the engine to a vscode-languageserver
 * connection (JSON-RPC over stdio). stdout carries the protocol and nothing else; logs go through the connection.
 *
 * Lifecycle: the engine is made on `initialize` (its `initializationOptions` are the ServerConfig). On `shutdown`,
 * `exit`, stdin closing, SIGTERM/SIGINT/SIGHUP, or the parent process vanishing, every running child is killed and
 * the work dirs removed before the process ends.
 */
import path from 'node:path';
import {
  CodeLensRefreshRequest,
  ErrorCodes,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  type CancellationToken,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { codeLensesFor } from './codelens';
import { diagnosticsFor } from './diagnostics';
import { SandboxEngine, type Logger } from './engine';
import { createGuardedStdioConnection } from './framing';
import {
  ClearCacheRequest,
  ConfigureRequest,
  DiscoverTestsRequest,
  ExecuteBatchRequest,
  ExecuteRequest,
  LanguagesRequest,
  MetricsChangedNotification,
  MetricsRequest,
  OutputNotification,
  RunTestsRequest,
} from './protocol';
import { discoverTests, interpretTestResults, planTestRuns } from './testRuns';
import { parseConfig, parseDiscoverTests, parseExecute, parseExecuteBatch, parseRunTests } from './validation';

const METRICS_INTERVAL_MS = 250; // sandbox/metricsChanged at most 4 times a second

// stdin goes through the frame guard: malformed input is answered with an error instead of stalling the reader.
const connection = createGuardedStdioConnection();
const log: Logger = {
  info: (m) => connection.console.info(m),
  warn: (m) => connection.console.warn(m),
  error: (m) => connection.console.error(m),
};

let engine: SandboxEngine | undefined;
let shuttingDown = false;
/** Open documents (textDocument/didOpen…didClose), for CodeLenses. */
const documents = new TextDocuments(TextDocument);
/** ServerConfig.codeLens: false answers every textDocument/codeLens with no lenses. */
let codeLensEnabled = true;
let codeLensRefreshSupported = false;

function ready(): SandboxEngine {
  if (shuttingDown) throw new ResponseError(ErrorCodes.InvalidRequest, 'the server is shutting down: no new requests after shutdown');
  if (!engine) throw new ResponseError(ErrorCodes.ServerNotInitialized, 'the server is not initialized yet: send initialize first');
  return engine;
}

function invalid(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, `invalid params: ${message}`);
}

/** An AbortSignal that fires when the client sends $/cancelRequest for this request. */
function abortOn(token: CancellationToken): AbortSignal {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  else token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

const sendOutput = (runId: string, stream: 'stdout' | 'stderr', chunk: string): void =>
  void connection.sendNotification(OutputNotification.type, { runId, stream, chunk });

/** Trailing-edge throttle: the first change is sent after at most METRICS_INTERVAL_MS, later ones batched. */
let metricsTimer: NodeJS.Timeout | undefined;
function metricsChanged(): void {
  if (metricsTimer) return;
  metricsTimer = setTimeout(() => {
    metricsTimer = undefined;
    if (engine) void connection.sendNotification(MetricsChangedNotification.type, engine.metrics());
  }, METRICS_INTERVAL_MS);
}

connection.onInitialize(async (params): Promise<InitializeResult> => {
  const config = parseConfig(params.initializationOptions);
  if (!config.ok) throw new ResponseError(ErrorCodes.InvalidParams, `invalid initializationOptions: ${config.message}`);
  if (!engine) {
    const who = params.clientInfo ? `${params.clientInfo.name}${params.clientInfo.version ? ` ${params.clientInfo.version}` : ''}` : 'unknown client';
    engine = await SandboxEngine.create({
      launcher: path.join(__dirname, 'sbx-launch'),
      config: config.value,
      log,
      client: `${who} (pid ${params.processId ?? 'unknown'})`,
    });
    engine.onChanged(metricsChanged);
  }
  codeLensEnabled = config.value.codeLens ?? codeLensEnabled;
  scanEnabled = (config.value.scanPolicy ?? 'warn') !== 'off';
  codeLensRefreshSupported = params.capabilities.workspace?.codeLens?.refreshSupport === true;
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      codeLensProvider: { resolveProvider: false },
    },
    serverInfo: { name: 'sandbox-runner', version: '0.1.0' },
  };
});

connection.onRequest(ExecuteRequest.type, async (params, token) => {
  const parsed = parseExecute(params);
  if (!parsed.ok) throw invalid(parsed.message);
  return ready().execute(parsed.value, abortOn(token), sendOutput);
});

connection.onRequest(ExecuteBatchRequest.type, async (params, token) => {
  const parsed = parseExecuteBatch(params);
  if (!parsed.ok) throw invalid(parsed.message);
  return ready().executeBatch(parsed.value.items, parsed.value.concurrency, abortOn(token), sendOutput);
});

connection.onRequest(DiscoverTestsRequest.type, (params) => {
  const parsed = parseDiscoverTests(params);
  if (!parsed.ok) throw invalid(parsed.message);
  ready();
  return { tests: discoverTests(parsed.value.languageId, parsed.value.text) };
});

// Test runs: each test through its harness (server/testRuns.ts), all of them as one batch through the pool.
connection.onRequest(RunTestsRequest.type, async (params, token) => {
  const parsed = parseRunTests(params);
  if (!parsed.ok) throw invalid(parsed.message);
  const plan = planTestRuns(parsed.value.items, parsed.value.limits);
  const batch = await ready().executeBatch(plan.programs, parsed.value.concurrency, abortOn(token));
  return { results: interpretTestResults(parsed.value.items, plan, batch.results), summary: batch.summary };
});

connection.onRequest(MetricsRequest.type, () => ready().metrics());

connection.onRequest(ClearCacheRequest.type, () => ({ cleared: ready().clearCache() }));

connection.onRequest(LanguagesRequest.type, () => ready().languages());

connection.onRequest(ConfigureRequest.type, async (params) => {
  const parsed = parseConfig(params);
  if (!parsed.ok) throw invalid(parsed.message);
  const e = ready();
  await e.configure(parsed.value);
  if (parsed.value.scanPolicy !== undefined && (parsed.value.scanPolicy !== 'off') !== scanEnabled) {
    scanEnabled = parsed.value.scanPolicy !== 'off';
    for (const doc of documents.all()) publishFindings(doc);
  }
  if (parsed.value.codeLens !== undefined && parsed.value.codeLens !== codeLensEnabled) {
    codeLensEnabled = parsed.value.codeLens;
    // lenses already shown go (or come back) now, not at the next edit
    if (codeLensRefreshSupported) connection.sendRequest(CodeLensRefreshRequest.type).catch(() => undefined);
  }
  return { languages: e.languages().languages };
});

connection.onCodeLens(({ textDocument }) => {
  const doc = documents.get(textDocument.uri);
  return codeLensEnabled && doc ? codeLensesFor(doc) : [];
});

// The security scan's findings on open documents, so the editor shows them before anyone presses Run. Debounced per
// document: typing doesn't rescan on every keystroke.
let scanEnabled = true;
const SCAN_DEBOUNCE_MS = 200;
const scanTimers = new Map<string, NodeJS.Timeout>();
function publishFindings(doc: TextDocument): void {
  const diagnostics = scanEnabled ? diagnosticsFor(doc.languageId, doc.getText()) : [];
  void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics });
}
documents.onDidChangeContent(({ document }) => {
  clearTimeout(scanTimers.get(document.uri));
  scanTimers.set(
    document.uri,
    setTimeout(() => {
      scanTimers.delete(document.uri);
      if (documents.get(document.uri)) publishFindings(document);
    }, SCAN_DEBOUNCE_MS),
  );
});
documents.onDidClose(({ document }) => {
  clearTimeout(scanTimers.get(document.uri));
  scanTimers.delete(document.uri);
  void connection.sendDiagnostics({ uri: document.uri, diagnostics: [] });
});

connection.onShutdown(() => {
  shuttingDown = true;
  engine?.dispose();
});

// Whatever ends the process, the runs end with it (dispose is synchronous and idempotent).
process.on('exit', () => engine?.dispose());
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(sig, () => process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[sig]));
}
process.on('uncaughtException', (e) => log.error(`uncaught: ${e.stack ?? e.message}`));
process.on('unhandledRejection', (e) => log.error(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`));

documents.listen(connection);
connection.listen();
