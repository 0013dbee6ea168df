/**
 * The Test Explorer: a TestController "Sandbox" whose tree is the workspace's test files (found by the
 * `sandbox.testGlobs` globs, kept current by file watchers and by edits of open documents) and the tests inside them
 * (asked of the server: `sandbox/discoverTests`). Its run profile "Run in Sandbox" runs the selection — or
 * everything — as ONE `sandbox/runTests` request (the server builds a harness per test and runs them all through its
 * pool); cancelling the test run cancels the request, and the server kills the runs. Nothing here runs user code.
 *
 * Test runs read the files on disk: dirty test documents are saved before they run.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ServerUnavailableError, type SandboxServer } from './server';
import { DEFAULT_TEST_GLOBS } from '../server/discovery';
import {
  DiscoverTestsRequest,
  RunTestsRequest,
  type DiscoveredTest,
  type TestOutcome,
  type TestRunItem,
  type TestRunResult,
} from '../server/protocol';

export const TEST_CONTROLLER_ID = 'sandbox';
/** Files never searched for tests (besides `files.exclude`). */
const EXCLUDE = '{**/node_modules/**,**/.git/**,**/__pycache__/**,**/.venv/**}';
const MAX_TEST_FILES = 5000;
/** Edits of an open test file are rediscovered this long after the last keystroke. */
const EDIT_DEBOUNCE_MS = 400;
/** The most characters of a run's output a failure message carries (the whole output is in the run's output). */
const MAX_MESSAGE_OUTPUT = 20_000;

/** What a tree item stands for: a test file, a group without a test of its own (a Python class), or a test. */
interface ItemData {
  file: string;
  languageId: string;
  /** The server's DiscoveredTest id; absent for files and groups. */
  testId?: string;
}

/** Outcomes of the last run, by test item id (`<file uri>::<test id>`), plus counts. */
export interface TestRunSummary {
  outcomes: Record<string, TestOutcome>;
  passed: number;
  failed: number;
  errored: number;
  skipped: number;
}

/**
 * A minimal hook for the extension's own tests (returned by `activate()` as `testing`): the Test Explorer's tree as
 * item ids, after discovery. Not a public API.
 */
export interface TestingApi {
  /** Discovers (once, or again with `refresh`) and returns every item id: `<file uri>` and `<file uri>::<test id>`. */
  discover(refresh?: boolean): Promise<string[]>;
  /** Runs every test, as `sandbox.runAllTests` does, and returns the outcomes. */
  runAll(): Promise<TestRunSummary | undefined>;
}

/** The VS Code language id of a test file, by its extension (the server discovers and runs by it). */
export function testLanguageOf(fileName: string): string | undefined {
  const ext = path.extname(fileName).toLowerCase();
  if (ext === '.py') return 'python';
  if (ext === '.js' || ext === '.mjs' || ext === '.cjs') return 'javascript';
  if (ext === '.ts' || ext === '.mts' || ext === '.cts') return 'typescript';
  if (ext === '.sh' || ext === '.bash') return 'shellscript';
  return undefined;
}

/** The globs of `sandbox.testGlobs` (non-empty strings), or the defaults. */
export function testGlobs(value: unknown): string[] {
  const globs = Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string' && g.trim() !== '') : [];
  return globs.length > 0 ? globs : [...DEFAULT_TEST_GLOBS];
}

export class SandboxTesting implements vscode.Disposable {
  readonly controller: vscode.TestController;
  private readonly profile: vscode.TestRunProfile;
  private readonly data = new WeakMap<vscode.TestItem, ItemData>();
  private readonly disposables: vscode.Disposable[] = [];
  private watchers: vscode.Disposable[] = [];
  private discovery: Promise<void> | undefined;
  /** A file's discovery failed (the server was starting or gone): discover again when a server is ready. */
  private missedFiles = false;
  private readonly editTimers = new Map<string, NodeJS.Timeout>();

  readonly api: TestingApi = {
    discover: async (refresh = false) => {
      await (refresh ? this.rediscover() : this.ensureDiscovered());
      const ids: string[] = [];
      const walk = (items: vscode.TestItemCollection) =>
        items.forEach((item) => {
          ids.push(item.id);
          walk(item.children);
        });
      walk(this.controller.items);
      return ids.sort();
    },
    runAll: () => this.runAll(),
  };

  constructor(
    private readonly server: SandboxServer,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.controller = vscode.tests.createTestController(TEST_CONTROLLER_ID, 'Sandbox');
    // VS Code asks for the tree (undefined) when test UI first needs it, and for a file's tests when it is expanded.
    this.controller.resolveHandler = async (item) => {
      if (!item) await this.ensureDiscovered();
      else if (item.uri && this.data.get(item)?.testId === undefined && item.parent === undefined) await this.discoverFile(item.uri);
    };
    this.controller.refreshHandler = () => this.rediscover();
    this.profile = this.controller.createRunProfile(
      'Run in Sandbox',
      vscode.TestRunProfileKind.Run,
      (request, token) => this.runTests(request, token).then(() => undefined),
      true,
    );
    this.disposables.push(
      this.controller,
      this.profile,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('sandbox.testGlobs') && this.discovery) void this.rediscover();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        if (this.discovery) void this.rediscover();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => this.documentEdited(e.document)),
      server.onLanguages((languages) => {
        if (languages && this.missedFiles) void this.rediscover();
      }),
    );
  }

  // ------------------------------------------------------------------------------------------------------------
  // Discovery

  private ensureDiscovered(): Promise<void> {
    this.discovery ??= this.discoverAll();
    return this.discovery;
  }

  private rediscover(): Promise<void> {
    this.discovery = this.discoverAll();
    return this.discovery;
  }

  /** Finds every test file with the current globs, (re)creates the watchers, and discovers each file's tests. */
  private async discoverAll(): Promise<void> {
    for (const w of this.watchers) w.dispose();
    this.watchers = [];
    this.missedFiles = false;
    const folders = vscode.workspace.workspaceFolders ?? [];
    const found = new Map<string, vscode.Uri>();
    for (const folder of folders) {
      const globs = testGlobs(vscode.workspace.getConfiguration('sandbox', folder.uri).get('testGlobs'));
      for (const glob of globs) {
        const pattern = new vscode.RelativePattern(folder, glob);
        const watcher = vscode.workspace.createFileSystemWatcher(pattern);
        watcher.onDidCreate((uri) => void this.discoverFile(uri));
        watcher.onDidChange((uri) => void this.discoverFile(uri));
        watcher.onDidDelete((uri) => this.removeFile(uri));
        this.watchers.push(watcher);
        for (const uri of await vscode.workspace.findFiles(pattern, EXCLUDE, MAX_TEST_FILES)) found.set(uri.toString(), uri);
      }
    }
    // Files that no longer match go; the others are discovered again.
    this.controller.items.forEach((item) => {
      if (!found.has(item.id)) this.controller.items.delete(item.id);
    });
    const uris = [...found.values()].sort((a, b) => a.fsPath.localeCompare(b.fsPath));
    await Promise.all(uris.map((uri) => this.discoverFile(uri)));
    this.log.info(`Test Explorer: ${this.controller.items.size} test file(s) of ${uris.length} matching sandbox.testGlobs`);
  }

  /** Asks the server for the tests of one file (its open document's text, else the file's) and updates its item. */
  private async discoverFile(uri: vscode.Uri): Promise<void> {
    const languageId = testLanguageOf(uri.fsPath);
    if (languageId === undefined || uri.scheme !== 'file') return;
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    let text: string;
    try {
      text = open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    } catch {
      this.removeFile(uri); // gone meanwhile
      return;
    }
    let tests: DiscoveredTest[];
    try {
      ({ tests } = await this.server.request((c) => c.sendRequest(DiscoverTestsRequest.type, { uri: uri.toString(), languageId, text })));
    } catch (e) {
      this.log.warn(`discovering the tests of ${uri.fsPath} failed: ${(e as Error).message}`);
      this.missedFiles = true;
      return;
    }
    if (tests.length === 0) {
      this.controller.items.delete(uri.toString());
      return;
    }
    const fileItem = this.controller.items.get(uri.toString()) ?? this.controller.createTestItem(uri.toString(), this.labelOf(uri), uri);
    this.data.set(fileItem, { file: uri.fsPath, languageId });
    const byPath = new Map<string, vscode.TestItem>();
    const top: vscode.TestItem[] = [];
    const childrenOf = new Map<vscode.TestItem, vscode.TestItem[]>();
    const place = (item: vscode.TestItem, parentKey: string) => {
      const parent = parentKey === '' ? undefined : byPath.get(parentKey);
      if (parent) childrenOf.get(parent)!.push(item);
      else top.push(item);
    };
    for (const test of tests) {
      // A parent the discovery has no test for (a Python class) becomes a group: running it runs its tests.
      for (let depth = 1; depth < test.path.length; depth++) {
        const key = test.path.slice(0, depth).join(' > ');
        if (byPath.has(key)) continue;
        const group = this.controller.createTestItem(`${uri.toString()}::${key}`, test.path[depth - 1]!, uri);
        this.data.set(group, { file: uri.fsPath, languageId });
        byPath.set(key, group);
        childrenOf.set(group, []);
        place(group, test.path.slice(0, depth - 1).join(' > '));
      }
      const item = this.controller.createTestItem(`${uri.toString()}::${test.id}`, test.name, uri);
      item.range = new vscode.Range(test.range.start.line, test.range.start.character, test.range.end.line, test.range.end.character);
      this.data.set(item, { file: uri.fsPath, languageId, testId: test.id });
      const key = test.path.join(' > ');
      byPath.set(key, item);
      childrenOf.set(item, []);
      place(item, test.path.slice(0, -1).join(' > '));
    }
    for (const [item, children] of childrenOf) item.children.replace(children);
    fileItem.children.replace(top);
    this.controller.items.add(fileItem);
  }

  private removeFile(uri: vscode.Uri): void {
    const id = uri.toString();
    // a deleted folder takes every file under it
    this.controller.items.forEach((item) => {
      if (item.id === id || item.id.startsWith(`${id}/`)) this.controller.items.delete(item.id);
    });
  }

  private documentEdited(document: vscode.TextDocument): void {
    const id = document.uri.toString();
    if (!this.controller.items.get(id)) return; // only files already in the tree (the watchers add new ones)
    clearTimeout(this.editTimers.get(id));
    this.editTimers.set(
      id,
      setTimeout(() => {
        this.editTimers.delete(id);
        void this.discoverFile(document.uri);
      }, EDIT_DEBOUNCE_MS),
    );
  }

  private labelOf(uri: vscode.Uri): string {
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    return folder ? path.relative(folder.uri.fsPath, uri.fsPath) : path.basename(uri.fsPath);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Running

  /** `sandbox.runAllTests`: every test, through the "Run in Sandbox" profile, with a cancellable progress. */
  async runAll(): Promise<TestRunSummary | undefined> {
    const summary = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Running all tests in the sandbox', cancellable: true },
      async (_progress, token) => {
        await this.ensureDiscovered();
        if (this.controller.items.size === 0) {
          void vscode.window.showInformationMessage('No tests found: no file matches sandbox.testGlobs, or none holds a test.');
          return undefined;
        }
        return this.runTests(new vscode.TestRunRequest(undefined, undefined, this.profile), token);
      },
    );
    if (summary) {
      const text = `Tests: ${summary.passed} passed, ${summary.failed} failed, ${summary.errored} errored${summary.skipped ? `, ${summary.skipped} skipped` : ''}.`;
      if (summary.failed + summary.errored > 0) {
        void vscode.window.showWarningMessage(text, 'Show Test Results').then((c) => {
          if (c) void vscode.commands.executeCommand('workbench.view.testing.focus');
        });
      } else {
        void vscode.window.showInformationMessage(text);
      }
    }
    return summary;
  }

  /** A test CodeLens (`sandbox.runUnit` with kind `test`): that one test through the profile, so its result shows
   *  in the Test Explorer like any other run. */
  async runOne(uri: string, name: string): Promise<TestRunSummary | undefined> {
    const fileUri = vscode.Uri.parse(uri);
    await this.ensureDiscovered();
    await this.discoverFile(fileUri); // the lens may be on a file the globs don't cover, or on unsaved edits
    const id = `${fileUri.toString()}::${name}`;
    let found: vscode.TestItem | undefined;
    const walk = (items: vscode.TestItemCollection): void =>
      items.forEach((item) => {
        if (item.id === id) found = item;
        else if (!found) walk(item.children);
      });
    walk(this.controller.items);
    if (!found) {
      void vscode.window.showInformationMessage(`The test ${name} was not found in ${path.basename(fileUri.fsPath)}.`);
      return undefined;
    }
    const cancel = new vscode.CancellationTokenSource();
    try {
      return await this.runTests(new vscode.TestRunRequest([found], undefined, this.profile), cancel.token);
    } finally {
      cancel.dispose();
    }
  }

  /** The profile's run handler: the selection (or everything) as one `sandbox/runTests`. */
  private async runTests(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<TestRunSummary> {
    await this.ensureDiscovered();
    const run = this.controller.createTestRun(request);
    const summary: TestRunSummary = { outcomes: {}, passed: 0, failed: 0, errored: 0, skipped: 0 };
    try {
      const tests = this.collect(request);
      if (tests.length === 0) return summary;
      for (const t of tests) run.enqueued(t);
      await this.saveDirty(tests);
      const items: TestRunItem[] = tests.map((t) => {
        const d = this.data.get(t)!;
        return { uri: t.uri!.toString(), file: d.file, languageId: d.languageId, testId: d.testId! };
      });
      for (const t of tests) run.started(t);
      const cts = new vscode.CancellationTokenSource();
      const cancel = token.onCancellationRequested(() => cts.cancel());
      let results: TestRunResult[];
      try {
        ({ results } = await this.server.request((c) => c.sendRequest(RunTestsRequest.type, { items }, cts.token)));
      } catch (e) {
        const text =
          token.isCancellationRequested
            ? 'The test run was cancelled.'
            : e instanceof ServerUnavailableError
              ? e.message
              : `The sandbox server could not run the tests: ${(e as Error).message}`;
        this.log.error(`test run: ${(e as Error).message}`);
        for (const t of tests) {
          if (token.isCancellationRequested) run.skipped(t);
          else run.errored(t, new vscode.TestMessage(text));
          this.count(summary, t, token.isCancellationRequested ? 'skipped' : 'errored');
        }
        return summary;
      } finally {
        cancel.dispose();
        cts.dispose();
      }
      const shownRuns = new Set<string>();
      results.forEach((r, i) => {
        const t = tests[i]!;
        // Tests of one JS/TS file share a run: its output is shown once.
        const runId = r.result?.runId;
        if (r.output !== '' && (runId === undefined || !shownRuns.has(runId))) {
          if (runId !== undefined) shownRuns.add(runId);
          run.appendOutput(`── ${t.uri ? this.labelOf(t.uri) : ''} › ${r.testId} ──\r\n${r.output.replace(/\r?\n/g, '\r\n')}\r\n`, undefined, t);
        }
        switch (r.outcome) {
          case 'passed':
            run.passed(t, r.durationMs);
            break;
          case 'failed':
            run.failed(t, this.messageOf(r, t), r.durationMs);
            break;
          case 'errored':
            run.errored(t, this.messageOf(r, t), r.durationMs);
            break;
          case 'skipped':
            run.skipped(t);
            break;
        }
        this.count(summary, t, r.outcome);
      });
      return summary;
    } finally {
      run.end();
    }
  }

  /** The tests a request selects (its include, else every file), without its excludes; groups expand to tests. */
  private collect(request: vscode.TestRunRequest): vscode.TestItem[] {
    const excluded = new Set((request.exclude ?? []).map((t) => t.id));
    const out = new Map<string, vscode.TestItem>();
    const walk = (item: vscode.TestItem) => {
      if (excluded.has(item.id)) return;
      if (this.data.get(item)?.testId !== undefined) out.set(item.id, item);
      item.children.forEach(walk);
    };
    if (request.include) request.include.forEach(walk);
    else this.controller.items.forEach(walk);
    return [...out.values()];
  }

  /** Runs read the files on disk: save the dirty documents of the tests about to run. */
  private async saveDirty(tests: vscode.TestItem[]): Promise<void> {
    const files = new Set(tests.map((t) => t.uri?.toString()));
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.isDirty && files.has(doc.uri.toString())) await doc.save();
    }
  }

  private messageOf(r: TestRunResult, t: vscode.TestItem): vscode.TestMessage {
    const output = r.output.length > MAX_MESSAGE_OUTPUT ? `…${r.output.slice(-MAX_MESSAGE_OUTPUT)}` : r.output;
    const message = new vscode.TestMessage([r.message ?? r.outcome, output.trim()].filter((s) => s !== '').join('\n\n'));
    if (r.location) {
      const uri = r.location.file ? vscode.Uri.file(r.location.file) : t.uri!;
      message.location = new vscode.Location(uri, new vscode.Position(r.location.line - 1, Math.max(0, (r.location.column ?? 1) - 1)));
    } else if (t.uri && t.range) {
      message.location = new vscode.Location(t.uri, t.range.start);
    }
    return message;
  }

  private count(summary: TestRunSummary, t: vscode.TestItem, outcome: TestOutcome): void {
    summary.outcomes[t.id] = outcome;
    summary[outcome]++;
  }

  dispose(): void {
    for (const timer of this.editTimers.values()) clearTimeout(timer);
    for (const w of this.watchers) w.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
