/**
 * The run commands: what to run (editor, selection, files), one `sandbox/execute` or `sandbox/executeBatch` per
 * command, program output streamed into the "Sandbox Output" channel, a summary line per run, and a notification
 * for every verdict that is not `ok`. Nothing here executes user code: the server does.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { batchSummaryLine, findingLines, runNotification, summaryLine } from './format';
import { serverLanguageFor, RUNNABLE_VSCODE_LANGUAGES } from './languages';
import { ServerUnavailableError, type SandboxServer } from './server';
import {
  ClearCacheRequest,
  ExecuteBatchRequest,
  ExecuteRequest,
  type ExecuteParams,
  type ExecutionResult,
  type RunUnitArgs,
} from '../server/protocol';

interface LastRun {
  params: Omit<ExecuteParams, 'runId'>;
  label: string;
}

/** A folder in the explorer selection runs at most this many of the files under it. */
const MAX_FOLDER_FILES = 1000;
const FOLDER_EXCLUDE = '{**/node_modules/**,**/.git/**,**/__pycache__/**,**/.venv/**}';
let runCounter = 0;

export class Runner implements vscode.Disposable {
  private readonly running = new Set<vscode.CancellationTokenSource>();
  /** runIds whose `sandbox/output` is streamed to the channel, with whether anything arrived yet. */
  private readonly streaming = new Map<string, { received: boolean; endsWithNewline: boolean }>();
  private lastRun: LastRun | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly server: SandboxServer,
    private readonly output: vscode.OutputChannel,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      server.onOutput(({ runId, chunk }) => {
        const state = this.streaming.get(runId);
        if (!state || chunk === '') return;
        state.received = true;
        state.endsWithNewline = chunk.endsWith('\n');
        this.output.append(chunk);
      }),
    );
    void this.updateContext();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Commands

  /**
   * `sandbox.run`: from the keybinding/palette (no argument: the active editor, or its selection), the editor title
   * (the editor's Uri), or the explorer (the clicked Uri and every selected one: several → one batch).
   */
  async run(target?: vscode.Uri, selected?: vscode.Uri[]): Promise<void> {
    if (Array.isArray(selected) && selected.length > 1) return this.runFiles(selected);
    if (target instanceof vscode.Uri) {
      if ((await vscode.workspace.fs.stat(target)).type & vscode.FileType.Directory) return this.runFiles([target]);
      const editor = vscode.window.activeTextEditor;
      const document =
        editor?.document.uri.toString() === target.toString() ? editor.document : await vscode.workspace.openTextDocument(target);
      const selection = editor?.document === document ? editor.selection : undefined;
      return this.runDocument(document, selection, {});
    }
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage('Open a file to run it in the sandbox, or select files in the Explorer.');
      return;
    }
    return this.runDocument(editor.document, editor.selection, {});
  }

  /** `sandbox.runUnit`: what a server CodeLens invokes (server/codelens.ts), with one RunUnitArgs. */
  async runUnit(args: RunUnitArgs | undefined): Promise<void> {
    if (!args || typeof args.uri !== 'string') return this.run();
    const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(args.uri));
    const name = document.isUntitled ? document.uri.path : path.basename(document.fileName);
    switch (args.kind) {
      case 'file':
      case 'main':
        // Running a `__main__` block means running its file, as `python file.py` would.
        return this.runDocument(document, undefined, { language: args.language });
      case 'block': {
        const line = args.range.start.line + 1;
        return this.runCode(args.language, args.code ?? '', `${name} (${args.language} block, line ${line})`, {});
      }
      case 'test':
        // Test lenses are handled by the Test Explorer (extension.ts); one without a name runs its file.
        return this.runDocument(document, undefined, { language: args.language });
    }
  }

  /** `sandbox.runWithInput`: like run, with stdin typed into an input box or read from a file. */
  async runWithInput(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage('Open a file to run it in the sandbox with input.');
      return;
    }
    const choice = await vscode.window.showQuickPick(
      [
        { label: '$(edit) Type the input', id: 'type' as const, detail: 'One line; a newline is added at its end.' },
        { label: '$(file) Read the input from a file…', id: 'file' as const },
      ],
      { title: 'Run in Sandbox with Input', placeHolder: 'Where does the program\'s standard input come from?' },
    );
    if (!choice) return;
    let stdin: string | undefined;
    if (choice.id === 'type') {
      const line = await vscode.window.showInputBox({ title: 'Standard input for the program', prompt: 'Sent followed by a newline.' });
      if (line === undefined) return;
      stdin = `${line}\n`;
    } else {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, title: 'File to feed to the program\'s standard input' });
      if (!picked?.[0]) return;
      stdin = new TextDecoder().decode(await vscode.workspace.fs.readFile(picked[0]));
    }
    return this.runDocument(editor.document, editor.selection, { stdin });
  }

  /** `sandbox.rerunWithoutCache`: the last run again, bypassing the cache. */
  async rerunWithoutCache(): Promise<void> {
    if (!this.lastRun) {
      void vscode.window.showInformationMessage('Nothing has run yet: run a file first.');
      return;
    }
    return this.execute({ ...this.lastRun.params, cache: false }, this.lastRun.label);
  }

  /** `sandbox.stop`: cancels every run in flight ($/cancelRequest; the server kills the process trees). */
  stop(): void {
    if (this.running.size === 0) {
      void vscode.window.showInformationMessage('No sandbox run is in progress.');
      return;
    }
    for (const cts of this.running) cts.cancel();
    this.log.info(`stop requested for ${this.running.size} run(s)`);
  }

  /**
   * A click on a recent run in the Metrics view. Every run's output and summary line are in the one "Sandbox
   * Output" channel (there is no per-run section to jump to), so this shows that channel.
   */
  revealRun(runId: string): void {
    this.log.info(`metrics view: showing the output, where run ${runId} was written`);
    this.output.show(true);
  }

  async clearCache(): Promise<void> {
    try {
      const { cleared } = await this.server.request((c) => c.sendRequest(ClearCacheRequest.type));
      void vscode.window.showInformationMessage(`Sandbox cache cleared (${cleared} ${cleared === 1 ? 'result' : 'results'}).`);
    } catch (e) {
      void vscode.window.showErrorMessage(`Clearing the sandbox cache failed: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Running

  private async runDocument(
    document: vscode.TextDocument,
    range: vscode.Range | undefined,
    options: { stdin?: string; language?: string },
  ): Promise<void> {
    const language =
      options.language ??
      serverLanguageFor(document.languageId, document.isUntitled ? undefined : document.fileName, this.server.languages?.languages);
    if (language === undefined) {
      void vscode.window.showWarningMessage(
        `Sandbox Runner can't run "${document.languageId}" documents: it runs ${RUNNABLE_VSCODE_LANGUAGES.join(', ')} (and the languages of sandbox.executorMap).`,
      );
      return;
    }
    const useRange = range !== undefined && !range.isEmpty;
    const code = useRange ? document.getText(range) : document.getText();
    const name = document.isUntitled ? document.uri.path : path.basename(document.fileName);
    const label = useRange ? `${name} (lines ${range.start.line + 1}–${range.end.line + 1})` : name;
    return this.runCode(language, code, label, options);
  }

  /** The editor's text (not the file on disk): unsaved changes and untitled buffers run as the user sees them. */
  private async runCode(language: string, code: string, label: string, options: { stdin?: string }): Promise<void> {
    const params: Omit<ExecuteParams, 'runId'> = { language, code };
    if (options.stdin !== undefined) params.stdin = options.stdin;
    this.lastRun = { params, label };
    await this.updateContext();
    return this.execute(params, label);
  }

  private async execute(params: Omit<ExecuteParams, 'runId'>, label: string): Promise<void> {
    const runId = `vscode-${process.pid}-${++runCounter}`;
    const cts = new vscode.CancellationTokenSource();
    const stream = { received: false, endsWithNewline: true };
    this.running.add(cts);
    this.streaming.set(runId, stream);
    await this.updateContext();
    this.output.appendLine(`[sandbox] ▶ ${label} (${params.language}${params.cache === false ? ', cache bypassed' : ''})`);
    this.output.show(true);
    let result: ExecutionResult;
    try {
      result = await this.server.request((c) => c.sendRequest(ExecuteRequest.type, { ...params, runId }, cts.token));
    } catch (e) {
      const message = this.failureMessage(e, cts.token.isCancellationRequested);
      this.output.appendLine(`${stream.endsWithNewline ? '' : '\n'}[sandbox] ${label}: ${message}`);
      this.log.error(`run ${runId} (${label}): ${(e as Error).message}`);
      void this.notify(`${label}: ${message}`, cts.token.isCancellationRequested ? 'info' : 'error', false);
      return;
    } finally {
      this.running.delete(cts);
      this.streaming.delete(runId);
      cts.dispose();
      await this.updateContext();
    }
    // A cached result (or a fast run whose output arrived only in the result) has not been streamed.
    if (!stream.received) {
      const text = result.stdout + result.stderr;
      this.output.append(text);
      stream.endsWithNewline = text === '' || text.endsWith('\n');
    }
    if (!stream.endsWithNewline) this.output.appendLine('');
    if (result.message?.trim().includes('\n')) this.output.appendLine(result.message.trimEnd());
    this.output.appendLine(summaryLine(result, label));
    for (const line of findingLines(result)) this.output.appendLine(line);
    const notification = runNotification(result, label);
    if (notification) void this.notify(notification.text, notification.severity, result.cached);
  }

  /** Several files (or folders) in one `sandbox/executeBatch`, with a cancellable progress notification. */
  private async runFiles(uris: vscode.Uri[]): Promise<void> {
    const files = await this.expandFolders(uris);
    const items: ExecuteParams[] = [];
    const labels: string[] = [];
    const skipped: string[] = [];
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    for (const uri of files) {
      const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
      const language = serverLanguageFor(open?.languageId, uri.fsPath, this.server.languages?.languages);
      const label = root && uri.fsPath.startsWith(root + path.sep) ? path.relative(root, uri.fsPath) : path.basename(uri.fsPath);
      if (language === undefined) {
        skipped.push(label);
        continue;
      }
      // An unsaved editor runs what the user sees; otherwise the server reads the file itself.
      const source = open?.isDirty || uri.scheme !== 'file' ? { code: open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(uri)) } : { file: uri.fsPath };
      items.push({ language, ...source, runId: `vscode-${process.pid}-${++runCounter}` });
      labels.push(label);
    }
    if (skipped.length > 0) this.log.info(`not runnable in the sandbox, skipped: ${skipped.join(', ')}`);
    if (items.length === 0) {
      void vscode.window.showWarningMessage('None of the selected files is in a language the sandbox runs.');
      return;
    }
    if (items.length === 1) {
      const params: Omit<ExecuteParams, 'runId'> = { ...items[0]! };
      delete (params as ExecuteParams).runId;
      this.lastRun = { params, label: labels[0]! };
      return this.execute(params, labels[0]!);
    }
    this.output.appendLine(`[sandbox] ▶ batch of ${items.length} programs`);
    this.output.show(true);
    const cts = new vscode.CancellationTokenSource();
    this.running.add(cts);
    await this.updateContext();
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Running ${items.length} programs in the sandbox`, cancellable: true },
        (_progress, token) => {
          token.onCancellationRequested(() => cts.cancel());
          return this.server.request((c) => c.sendRequest(ExecuteBatchRequest.type, { items }, cts.token));
        },
      );
      result.results.forEach((r, i) => {
        this.output.appendLine(`[sandbox] ── ${labels[i]} ──`);
        const text = r.stdout + r.stderr;
        this.output.append(text);
        if (text !== '' && !text.endsWith('\n')) this.output.appendLine('');
        if (r.message?.trim().includes('\n')) this.output.appendLine(r.message.trimEnd());
        this.output.appendLine(summaryLine(r, labels[i]!));
        for (const line of findingLines(r)) this.output.appendLine(line);
      });
      this.output.appendLine(batchSummaryLine(result));
      if (result.summary.failed > 0) {
        const failures = Object.entries(result.summary.byStatus)
          .filter(([s, n]) => s !== 'ok' && (n ?? 0) > 0)
          .map(([s, n]) => `${s} ${n}`)
          .join(', ');
        void this.notify(`${result.summary.failed} of ${result.summary.total} programs did not finish ok (${failures}).`, 'warning', false);
      } else {
        void vscode.window.showInformationMessage(`All ${result.summary.total} programs finished ok.`);
      }
    } catch (e) {
      const message = this.failureMessage(e, cts.token.isCancellationRequested);
      this.output.appendLine(`[sandbox] batch: ${message}`);
      this.log.error(`batch: ${(e as Error).message}`);
      void this.notify(`Batch run: ${message}`, cts.token.isCancellationRequested ? 'info' : 'error', false);
    } finally {
      this.running.delete(cts);
      cts.dispose();
      await this.updateContext();
    }
  }

  /** Folders become the files under them (the server decides later which of them it can run). */
  private async expandFolders(uris: vscode.Uri[]): Promise<vscode.Uri[]> {
    const out: vscode.Uri[] = [];
    for (const uri of uris) {
      const stat = await vscode.workspace.fs.stat(uri);
      if (stat.type & vscode.FileType.Directory) {
        // files.exclude applies as well; dependencies and VCS folders are never the user's programs.
        const found = await vscode.workspace.findFiles(new vscode.RelativePattern(uri, '**/*'), FOLDER_EXCLUDE, MAX_FOLDER_FILES);
        out.push(...found.sort((a, b) => a.fsPath.localeCompare(b.fsPath)));
      } else {
        out.push(uri);
      }
    }
    return out;
  }

  private failureMessage(error: unknown, cancelled: boolean): string {
    if (cancelled) return 'stopped before the server answered.';
    if (error instanceof ServerUnavailableError) return error.message;
    return `the sandbox server could not run it: ${(error as Error).message}`;
  }

  private async notify(text: string, severity: 'info' | 'warning' | 'error', cached: boolean): Promise<void> {
    const actions = cached ? ['Show Output', 'Re-run Without Cache'] : ['Show Output'];
    const show =
      severity === 'error'
        ? vscode.window.showErrorMessage
        : severity === 'warning'
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    const choice = await show(text, ...actions);
    if (choice === 'Show Output') this.output.show();
    else if (choice === 'Re-run Without Cache') await this.rerunWithoutCache();
  }

  /** Context keys for `when` clauses: Stop only while something runs, Re-run only after a run. */
  private async updateContext(): Promise<void> {
    await vscode.commands.executeCommand('setContext', 'sandbox.running', this.running.size > 0);
    await vscode.commands.executeCommand('setContext', 'sandbox.hasLastRun', this.lastRun !== undefined);
  }

  dispose(): void {
    for (const cts of this.running) cts.cancel();
    for (const d of this.disposables) d.dispose();
  }
}
