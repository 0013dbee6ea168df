/**
 * One sandbox server for the length of one CLI command: spawns `dist/server.js --stdio` next to this bundle,
 * runs the LSP lifecycle over JSON-RPC (initialize → initialized → … → shutdown → exit) and turns every way the
 * server can fail into a CliError with one clear sentence.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  createMessageConnection,
  ErrorCodes,
  NotificationType,
  NotificationType0,
  RequestType,
  RequestType0,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type CancellationToken,
  type Disposable,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  ExecuteBatchRequest,
  ExecuteRequest,
  LanguagesRequest,
  MetricsChangedNotification,
  MetricsRequest,
  OutputNotification,
  type ExecuteBatchParams,
  type ExecuteBatchResult,
  type ExecuteParams,
  type ExecutionResult,
  type LanguagesResult,
  type Metrics,
  type OutputParams,
  type ServerConfig,
} from '../server/protocol';
import { CliError, ServerError, UsageError, messageOf } from './errors';

// The standard LSP lifecycle messages (the server speaks LSP; the CLI needs only these four).
interface InitializeParams {
  processId: number;
  rootUri: null;
  capabilities: Record<string, never>;
  initializationOptions: ServerConfig;
}
const InitializeRequest = new RequestType<InitializeParams, unknown, void>('initialize');
const InitializedNotification = new NotificationType<Record<string, never>>('initialized');
const ShutdownRequest = new RequestType0<null, void>('shutdown');
const ExitNotification = new NotificationType0('exit');
const LogMessageNotification = new NotificationType<{ type: number; message: string }>('window/logMessage');

/** How long the server may take to start and answer `initialize`, and to stop after `exit`. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
/** Lines of the server's log kept to show when it fails. */
const LOG_TAIL_LINES = 15;

export interface SessionOptions {
  /** The ServerConfig sent as `initializationOptions`. */
  config: ServerConfig;
  /** Where the config came from, to name it when the server refuses it. */
  configFile?: string;
  /** Copy the server's log (stderr and window/logMessage) to our stderr as it comes. */
  verbose: boolean;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The path of the bundled server: dist/cli.js sits next to dist/server.js. */
export function serverPath(): string {
  return path.join(__dirname, 'server.js');
}

export class ServerSession {
  private readonly connection: MessageConnection;
  private readonly exited: Promise<ExitInfo>;
  /** Rejects with a ServerError when the server exits while we still need it; never settles otherwise. */
  private readonly died: Promise<never>;
  private exitInfo: ExitInfo | undefined;
  private connectionClosed = false;
  private closing = false;
  /** `initialize` was answered: from then on a failure is reported in one sentence (the log is for --verbose). */
  private started = false;
  private readonly logTail: string[] = [];
  private partialLogLine = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly options: SessionOptions,
  ) {
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo ??= { code, signal };
        resolve(this.exitInfo);
      });
      child.once('error', (error) => {
        // Spawning failed (no 'exit' follows) or killing failed; either way the server is not usable.
        this.exitInfo ??= { code: null, signal: null, error };
        resolve(this.exitInfo);
      });
    });
    this.died = this.exited.then((info) => {
      if (this.closing) return new Promise<never>(() => undefined);
      throw this.diedError(info);
    });
    this.died.catch(() => undefined);

    // Writes to a server that just died fail with EPIPE: the exit handler reports that, not a crash.
    child.stdin!.on('error', () => undefined);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => this.log(chunk));

    this.connection = createMessageConnection(
      new StreamMessageReader(child.stdout!),
      new StreamMessageWriter(child.stdin!),
    );
    this.connection.onClose(() => {
      this.connectionClosed = true;
    });
    this.connection.onError(() => undefined);
    this.connection.onNotification(LogMessageNotification, (p) => this.log(`${p.message}\n`));
    // Anything else the server tells us (progress, telemetry...) is of no use to a CLI.
    this.connection.onUnhandledNotification(() => undefined);
  }

  /** Spawns the server and completes `initialize`/`initialized`. */
  static async start(options: SessionOptions): Promise<ServerSession> {
    const script = serverPath();
    if (!existsSync(script)) {
      throw new ServerError(`the sandbox server is missing (${script} does not exist; run "npm run build")`);
    }
    const child = spawn(process.execPath, [script, '--stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal reaches only the CLI, which cancels the run properly.
      detached: true,
    });
    // Whatever happens to the CLI, it must not leave the server behind.
    process.once('exit', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const session = new ServerSession(child, options);
    session.connection.listen();
    let timer: NodeJS.Timeout | undefined;
    const tooSlow = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServerError(`the sandbox server did not start within ${START_TIMEOUT_MS / 1000} s`, session.logDetails())),
        START_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([
        session.request('initialize', () =>
          session.connection.sendRequest(InitializeRequest, {
            processId: process.pid,
            rootUri: null,
            capabilities: {},
            initializationOptions: options.config,
          }),
        ),
        tooSlow,
      ]);
      await session.connection.sendNotification(InitializedNotification, {});
      session.started = true;
    } catch (err) {
      session.kill();
      if (err instanceof CliError && err.cause instanceof ResponseError && options.configFile !== undefined) {
        throw new UsageError(`the sandbox server refused the config file "${options.configFile}": ${err.cause.message}`);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return session;
  }

  /**
   * Runs one request, turning a dead server into a ServerError (exit 70) and an error response into a ServerError
   * naming the method. The original ResponseError is kept as `cause`.
   */
  async request<R>(method: string, send: () => Promise<R>): Promise<R> {
    try {
      return await Promise.race([send(), this.died]);
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (this.connectionClosed || this.exitInfo !== undefined || isWriteError(err)) {
        // The connection broke: wait (briefly) for the exit to say how the server ended.
        const info = await Promise.race([this.exited, delay(2_000).then(() => undefined)]);
        throw this.diedError(info);
      }
      const error = new ServerError(`the sandbox server failed the "${method}" request: ${messageOf(err)}${this.logHint()}`);
      error.cause = err;
      throw error;
    }
  }

  languages(): Promise<LanguagesResult> {
    return this.request(LanguagesRequest.method, () => this.connection.sendRequest(LanguagesRequest.type));
  }

  metrics(): Promise<Metrics> {
    return this.request(MetricsRequest.method, () => this.connection.sendRequest(MetricsRequest.type));
  }

  /** `sandbox/execute`; cancelling the token sends `$/cancelRequest` and the server answers `cancelled`. */
  execute(params: ExecuteParams, token?: CancellationToken): Promise<ExecutionResult> {
    return this.request(ExecuteRequest.method, () => this.connection.sendRequest(ExecuteRequest.type, params, token));
  }

  /** `sandbox/executeBatch`, cancellable like `execute`. */
  executeBatch(params: ExecuteBatchParams, token?: CancellationToken): Promise<ExecuteBatchResult> {
    return this.request(ExecuteBatchRequest.method, () =>
      this.connection.sendRequest(ExecuteBatchRequest.type, params, token),
    );
  }

  onOutput(listener: (params: OutputParams) => void): Disposable {
    return this.connection.onNotification(OutputNotification.type, listener);
  }

  onMetricsChanged(listener: (metrics: Metrics) => void): Disposable {
    return this.connection.onNotification(MetricsChangedNotification.type, listener);
  }

  /** `shutdown`, `exit`, and wait for the process to end (killing it if it does not). Never throws. */
  async close(): Promise<void> {
    if (this.exitInfo !== undefined) return;
    if (this.closing) {
      await this.exited; // killed
      return;
    }
    this.closing = true;
    try {
      await Promise.race([this.connection.sendRequest(ShutdownRequest), this.exited, delay(STOP_TIMEOUT_MS)]);
      await this.connection.sendNotification(ExitNotification);
    } catch {
      // The server is going away anyway; the wait below settles it.
    }
    const info = await Promise.race([this.exited, delay(STOP_TIMEOUT_MS).then(() => undefined)]);
    if (info === undefined) {
      this.kill();
      await this.exited;
    }
    this.connection.dispose();
  }

  /** Ends the server at once (its process group, so nothing it started outlives it). */
  kill(): void {
    this.closing = true;
    if (this.exitInfo !== undefined) return;
    try {
      if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
    this.connection.dispose();
  }

  private log(text: string): void {
    if (this.options.verbose) {
      process.stderr.write(text.replace(/^(?=.)/gm, 'server: '));
    }
    const lines = (this.partialLogLine + text).split('\n');
    this.partialLogLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      this.logTail.push(line);
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
    }
  }

  /** Where to look next, appended to the one sentence of a failure after start. */
  private logHint(): string {
    return this.options.verbose ? '' : '; run with --verbose to see its log';
  }

  /** The end of the server's log, printed under a failure to start (unless --verbose already showed it). */
  private logDetails(): string[] {
    if (this.options.verbose || this.started) return [];
    const lines = [...this.logTail];
    if (this.partialLogLine.trim() !== '') lines.push(this.partialLogLine);
    return lines.length > 0 ? ['the server\'s last log lines:', ...lines.map((l) => `  ${l}`)] : [];
  }

  private diedError(info: ExitInfo | undefined): ServerError {
    let how: string;
    if (info === undefined) how = 'its connection closed';
    else if (info.error !== undefined) how = `it could not be run: ${info.error.message}`;
    else if (info.signal !== null) how = `killed by ${info.signal}`;
    else how = `exit code ${info.code}`;
    const hint = this.started ? this.logHint() : '';
    return new ServerError(`the sandbox server stopped unexpectedly (${how})${hint}`, this.logDetails());
  }
}

function isWriteError(err: unknown): boolean {
  return err instanceof ResponseError && err.code === ErrorCodes.MessageWriteError;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
