/**
 * The one sandbox server of this window: starts it with vscode-languageclient over stdio, restarts it when it dies
 * (telling the user once per crash), and makes sure a request in flight when it dies ends with a clear error
 * instead of waiting forever. Every request of the extension goes through `request()`.
 */
import { availableParallelism } from 'node:os';
import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  TransportKind,
  type CloseHandlerResult,
  type ErrorHandler,
  type ErrorHandlerResult,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import {
  afterConfigure,
  serverConfigFromSettings,
  settingsNeedingRestart,
  SERVER_SETTING_KEYS,
  type BuiltConfig,
} from './config';
import { sandboxSummary } from './format';
import { SERVED_VSCODE_LANGUAGES } from './languages';
import {
  ConfigureRequest,
  LanguagesRequest,
  MetricsChangedNotification,
  OutputNotification,
  type LanguagesResult,
  type Metrics,
  type OutputParams,
  type ServerConfig,
} from '../server/protocol';

/** The client id: vscode-languageclient reads `sandbox.trace.server` because of it. */
export const CLIENT_ID = 'sandbox';

/** At most this many automatic restarts within RESTART_WINDOW_MS; past it the user restarts by hand. */
const MAX_RESTARTS = 4;
const RESTART_WINDOW_MS = 3 * 60_000;

/** A request that could not complete because the server went away (or was never there). */
export class ServerUnavailableError extends Error {}

/** The `sandbox.*` settings as the plain object `serverConfigFromSettings` takes. */
export function readServerSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration('sandbox');
  return Object.fromEntries(SERVER_SETTING_KEYS.map((key) => [key, config.get(key)]));
}

export class SandboxServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  /** Listeners tied to one client; disposed with it on restart. */
  private clientListeners: vscode.Disposable[] = [];
  /** Rejecters of the requests in flight: called when the server dies, so no caller waits forever. */
  private readonly inFlight = new Set<(error: Error) => void>();
  private crashes: number[] = [];
  private readonly metricsEmitter = new vscode.EventEmitter<Metrics>();
  private readonly outputEmitter = new vscode.EventEmitter<OutputParams>();
  private readonly languagesEmitter = new vscode.EventEmitter<LanguagesResult | undefined>();
  private readonly disposables: vscode.Disposable[] = [this.metricsEmitter, this.outputEmitter, this.languagesEmitter];
  /** Settings problems already shown, so one bad value is not reported on every change. */
  private shownProblems = '';
  /** What the running server was started with and since sent, as far as a restart decision needs it. */
  private running: Pick<ServerConfig, 'isolation' | 'limits'> | undefined;
  /** The settings a restart is pending for, already offered, so the offer is not repeated on every change. */
  private offeredRestart = '';

  readonly onMetrics = this.metricsEmitter.event;
  readonly onOutput = this.outputEmitter.event;
  /** The languages and isolation mode of the running server; undefined while there is none. */
  readonly onLanguages = this.languagesEmitter.event;
  languages: LanguagesResult | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        const serverSettingChanged = SERVER_SETTING_KEYS.some((key) => e.affectsConfiguration(`sandbox.${key}`));
        if (serverSettingChanged) void this.configure();
      }),
    );
  }

  async start(): Promise<void> {
    const module = this.context.asAbsolutePath('dist/server.js');
    const serverOptions: ServerOptions = {
      run: { module, transport: TransportKind.stdio },
      debug: { module, transport: TransportKind.stdio },
    };
    const documentSelector = SERVED_VSCODE_LANGUAGES.flatMap((language) => [
      { scheme: 'file', language },
      { scheme: 'untitled', language },
    ]);
    const clientOptions: LanguageClientOptions = {
      documentSelector,
      initializationOptions: () => {
        const { config } = this.buildConfig({});
        this.running = { isolation: config.isolation, limits: { ...config.limits } };
        this.offeredRestart = '';
        return config;
      },
      outputChannel: this.log,
      traceOutputChannel: this.log,
      errorHandler: this.errorHandler(),
    };
    const client = new LanguageClient(CLIENT_ID, 'Sandbox Runner', serverOptions, clientOptions);
    this.client = client;
    this.clientListeners.push(
      client.onNotification(OutputNotification.type, (p) => this.outputEmitter.fire(p)),
      client.onNotification(MetricsChangedNotification.type, (m) => this.metricsEmitter.fire(m)),
      client.onDidChangeState(() => {
        // Each (re)start brings a fresh server: ask it for its languages and isolation mode again.
        if (client.isRunning()) void this.refreshLanguages();
        else this.setLanguages(undefined);
      }),
    );
    await client.start();
  }

  /** Stops the client (and with it the server, which kills its runs) and drops its listeners. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.clientListeners) d.dispose();
    this.clientListeners = [];
    this.failInFlight(new ServerUnavailableError('The sandbox server was stopped during the run.'));
    this.setLanguages(undefined);
    if (client) {
      try {
        await client.stop(5000);
      } catch (e) {
        this.log.warn(`stopping the server: ${(e as Error).message}`);
      }
    }
  }

  async restart(): Promise<void> {
    this.log.info('restarting the sandbox server');
    await this.stop();
    this.crashes = [];
    await this.start();
  }

  /**
   * Sends one request through the running client. Rejects with ServerUnavailableError when there is no server, or
   * when it dies before answering (vscode-jsonrpc rejects pending requests then too; this makes sure of it).
   */
  request<R>(send: (client: LanguageClient) => Promise<R>): Promise<R> {
    const client = this.client;
    if (!client || client.needsStart()) {
      return Promise.reject(new ServerUnavailableError('The sandbox server is not running. Run "Sandbox: Restart Server".'));
    }
    return new Promise<R>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.inFlight.add(fail);
      send(client).then(
        (value) => {
          this.inFlight.delete(fail);
          resolve(value);
        },
        (error: unknown) => {
          this.inFlight.delete(fail);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /** The ServerConfig of the current settings; problems are logged, and shown once per distinct set. */
  private buildConfig(options: { defaultPoolSize?: number }): BuiltConfig {
    const built = serverConfigFromSettings(readServerSettings(), options);
    const key = built.problems.join('\n');
    for (const p of built.problems) this.log.warn(p);
    if (key !== '' && key !== this.shownProblems) {
      void vscode.window.showWarningMessage(`Sandbox Runner ignored a setting: ${built.problems[0]}`, 'Open Settings').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'sandbox.');
      });
    }
    this.shownProblems = key;
    return built;
  }

  /** Sends the current settings to the running server (no restart). */
  private async configure(): Promise<void> {
    // Omitted fields mean "unchanged" to sandbox/configure: an unset pool size is sent as the server's default.
    const { config } = this.buildConfig({ defaultPoolSize: availableParallelism() });
    if (this.running) this.offerRestart(settingsNeedingRestart(this.running, config));
    try {
      const result = await this.request((c) => c.sendRequest(ConfigureRequest.type, config));
      this.log.info(`settings sent to the server: ${JSON.stringify(config)}`);
      if (this.running) this.running = afterConfigure(this.running, config);
      if (this.languages) this.setLanguages({ ...this.languages, languages: result.languages });
    } catch (e) {
      this.log.error(`sending settings to the server failed: ${(e as Error).message}`);
    }
  }

  /** Offers "Restart Server" for settings only a restart applies (`sandbox.isolation`, a cleared limit), once per set. */
  private offerRestart(names: string[]): void {
    const key = names.join(', ');
    if (key === this.offeredRestart) return;
    this.offeredRestart = key;
    if (names.length === 0) return;
    const what = names.length === 1 ? `${names[0]} takes` : `${key} take`;
    this.log.info(`${what} effect when the sandbox server restarts`);
    void vscode.window
      .showInformationMessage(`Sandbox Runner: ${what} effect when the sandbox server restarts (restarting stops runs in progress).`, 'Restart Server')
      .then((choice) => {
        if (choice === 'Restart Server') void vscode.commands.executeCommand('sandbox.restartServer');
      });
  }

  private async refreshLanguages(): Promise<void> {
    try {
      const result = await this.request((c) => c.sendRequest(LanguagesRequest.type));
      this.setLanguages(result);
      const missing = result.languages.filter((l) => !l.available).map((l) => `${l.id} (${l.message ?? 'not found'})`);
      this.log.info(`server ready: isolation ${result.isolation}; languages ${result.languages.filter((l) => l.available).map((l) => l.id).join(', ')}`);
      const sandbox = sandboxSummary(result.sandbox);
      if (result.isolation === 'process') this.log.warn(sandbox);
      else this.log.info(sandbox);
      if (missing.length > 0) this.log.warn(`unavailable: ${missing.join('; ')}`);
    } catch (e) {
      this.log.warn(`asking the server for its languages failed: ${(e as Error).message}`);
    }
  }

  private setLanguages(result: LanguagesResult | undefined): void {
    this.languages = result;
    this.languagesEmitter.fire(result);
  }

  private failInFlight(error: Error): void {
    for (const fail of this.inFlight) fail(error);
    this.inFlight.clear();
  }

  private errorHandler(): ErrorHandler {
    return {
      // A broken message: keep the connection; when the process really dies, closed() follows.
      error: (error): ErrorHandlerResult => {
        this.log.error(`connection to the sandbox server: ${error.message}`);
        return { action: ErrorAction.Continue, handled: true };
      },
      closed: (): CloseHandlerResult => {
        this.failInFlight(
          new ServerUnavailableError('The sandbox server stopped unexpectedly during the run; nothing was returned. Run it again.'),
        );
        const now = Date.now();
        this.crashes = [...this.crashes.filter((t) => now - t < RESTART_WINDOW_MS), now];
        if (this.crashes.length > MAX_RESTARTS) {
          const message = `The sandbox server stopped ${this.crashes.length} times in 3 minutes and will not be restarted automatically. See the "Sandbox" output, then run "Sandbox: Restart Server".`;
          this.log.error(message);
          void this.notify(message, 'error');
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        const message = 'The sandbox server stopped unexpectedly and is being restarted; a run in progress was lost.';
        this.log.warn(message);
        void this.notify(message, 'warning');
        return { action: CloseAction.Restart, handled: true };
      },
    };
  }

  private async notify(message: string, severity: 'warning' | 'error'): Promise<void> {
    const show = severity === 'error' ? vscode.window.showErrorMessage : vscode.window.showWarningMessage;
    if ((await show(message, 'Show Log')) === 'Show Log') this.log.show();
  }

  async dispose(): Promise<void> {
    await this.stop();
    for (const d of this.disposables) d.dispose();
  }
}
