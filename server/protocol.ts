/**
 * The Sandbox Runner protocol: every custom JSON-RPC request and notification between a client (the VS Code
 * extension, the `sbx` CLI) and the sandbox server, in one place. Each message is a namespace holding its
 * literal `method` and a typed `type`; the comment on each says which side sends it.
 *
 * Transport: JSON-RPC 2.0 over the server's stdio (LSP base protocol framing). The standard LSP lifecycle
 * (`initialize` with `initializationOptions: ServerConfig`, `initialized`, `shutdown`, `exit`) and the standard
 * `$/cancelRequest` apply: cancelling a `sandbox/execute`, `sandbox/executeBatch` or `sandbox/runTests` kills the
 * runs, which end with status `cancelled`.
 *
 * This module is shared by client, server and CLI, so it imports nothing but vscode-jsonrpc's message types.
 */
import { NotificationType, RequestType, RequestType0 } from 'vscode-jsonrpc';

// ---------------------------------------------------------------------------------------------------------------
// Shared shapes

/** Every verdict a run can end with. */
export const STATUSES = [
  'ok',
  'runtime_error',
  'timeout',
  'memory_limit',
  'output_limit',
  'compile_error',
  'rejected',
  'cancelled',
  'internal_error',
] as const;
export type RunStatus = (typeof STATUSES)[number];

/** Statuses whose result says nothing stable about the code, so they are never cached. */
export const UNCACHEABLE_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>([
  'timeout',
  'cancelled',
  'internal_error',
  'rejected',
]);

/** How a run was isolated. `process`: a plain child process with rlimits; `bwrap`: bubblewrap namespaces. */
export type IsolationMode = 'process' | 'bwrap';

/** The isolation setting: `auto` picks `bwrap` where it is installed and works, else `process` (with a warning). */
export type IsolationSetting = 'auto' | 'bwrap' | 'process';

/** Severity of a security-scan finding (the scan runs before every run; see ServerConfig.scanPolicy). */
export type FindingSeverity = 'info' | 'warning' | 'error';

/** One risky operation the static security scan found in a program. */
export interface Finding {
  /** Stable rule id, e.g. `network`, `subprocess`, `file-outside-workdir`, `dynamic-eval`, `native-code`,
   *  `unbounded-recursion`. */
  ruleId: string;
  /** One sentence: what the code does and why it matters in a sandbox. */
  message: string;
  /** 1-based line of the program where it was found. */
  line: number;
  /** 1-based column, where known. */
  column?: number;
  severity: FindingSeverity;
}

export interface Limits {
  /** Wall-clock limit; the whole sandbox (every process of the run) is killed when it passes. */
  timeoutMs: number;
  /** CPU time (user + system) of the program, RLIMIT_CPU, in ms (rounded up to whole seconds by the kernel). */
  cpuMs: number;
  /** Memory limit in MiB: the run's memory cgroup where one is writable, else RLIMIT_AS for native runtimes and
   *  `--max-old-space-size` for node; a watchdog of the tree's private memory backs both. */
  memoryMb: number;
  /** Cap per stream (stdout, stderr), in bytes. Passing it ends the run with `output_limit`. */
  outputBytes: number;
  /** Most processes and threads the run may have at once (pids cgroup where writable; RLIMIT_NPROC otherwise,
   *  which does not hold for root). */
  processes: number;
  /** Largest file the program may write, in MiB (RLIMIT_FSIZE). */
  fileSizeMb: number;
  /** Most open file descriptors per process (RLIMIT_NOFILE). */
  openFiles: number;
  /** Size of the run's writable work dir and /tmp (each a tmpfs in the bwrap mode), in MiB. */
  diskMb: number;
}

export interface ExecuteParams {
  /** Language id, e.g. `python`, `javascript`, `typescript`, `shell`, `c`, `cpp`, or one from the executor map. */
  language: string;
  /** The program text. Exactly one of `code` and `file` is given. */
  code?: string;
  /** Absolute path of a file the server reads the program from. */
  file?: string;
  /** Text fed to the program's stdin. Absent: stdin is closed (reads see end-of-file). */
  stdin?: string;
  /** Command-line arguments for the program. */
  args?: string[];
  /** Per-run limits; each missing field takes the server's default. */
  limits?: Partial<Limits>;
  /** Use the result cache (default true). `false` always runs and does not store the result. */
  cache?: boolean;
  /** Optional client-chosen id, echoed in `sandbox/output` and the result; the server makes one if absent. */
  runId?: string;
  /**
   * An absolute path of an existing directory the program may read and import from (a test run needs its own file
   * and that file's neighbours); anything else is `rejected`. A run with a workspace is NEVER cached: its result
   * depends on files there that the cache key cannot see. In the `process` isolation mode nothing more is needed
   * (the run can read the server user's files anyway); the bubblewrap mode will bind this directory read-only.
   */
  workspace?: string;
}

export interface ExecutionResult {
  runId: string;
  language: string;
  status: RunStatus;
  /** The program's exit code; null when it was killed by a signal or never ran. */
  exitCode: number | null;
  /** The signal that ended the program (e.g. `SIGKILL`), or null. */
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Wall-clock time of the program's run (compilation excluded), in ms. */
  durationMs: number;
  /** CPU time (user + system) of the program and its children, as the kernel accounted it, in ms. */
  cpuMs: number;
  /** Peak resident memory of the run, in bytes. */
  peakMemoryBytes: number;
  /** True when this result came from the cache instead of a new run. */
  cached: boolean;
  /** The pool worker that ran it, or null when it never reached one (cache hit, rejection). */
  workerId: string | null;
  isolation: IsolationMode;
  /** What the security scan found in the program (empty when nothing, or when the scan is off). */
  findings: Finding[];
  /** Human-readable explanation; always present on `rejected`, `internal_error` and `compile_error`. */
  message?: string;
  /** On a `rejected` result from the rate limit: how long to wait before the next request will be accepted. */
  retryAfterMs?: number;
}

export interface ExecuteBatchParams {
  items: ExecuteParams[];
  /** How many items of this batch may run at once (default and maximum: the pool size). */
  concurrency?: number;
}

export interface BatchSummary {
  total: number;
  /** Items whose status is `ok`. */
  ok: number;
  /** Items whose status is anything else. */
  failed: number;
  cached: number;
  byStatus: Partial<Record<RunStatus, number>>;
  /** Wall-clock time of the whole batch, in ms. */
  wallMs: number;
  /** Sum of every item's durationMs. */
  totalDurationMs: number;
}

export interface ExecuteBatchResult {
  /** One result per item, in the order of `items`. */
  results: ExecutionResult[];
  summary: BatchSummary;
}

export interface WorkerMetrics {
  id: string;
  busy: boolean;
  runs: number;
  failures: number;
  busyMs: number;
  /** busyMs divided by the time the worker has existed, 0..1. */
  utilisation: number;
}

export interface PoolStatus {
  size: number;
  busy: number;
  idle: number;
  queued: number;
  queueLimit: number;
}

export interface CacheStats {
  enabled: boolean;
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when there was no lookup. */
  hitRate: number;
  entries: number;
  bytes: number;
  evictions: number;
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
}

export interface RunRecord {
  runId: string;
  language: string;
  status: RunStatus;
  durationMs: number;
  cpuMs: number;
  peakMemoryBytes: number;
  cached: boolean;
  workerId: string | null;
  /** Epoch ms when the run finished. */
  finishedAt: number;
}

export interface Metrics {
  uptimeMs: number;
  runsTotal: number;
  runsByStatus: Record<RunStatus, number>;
  durationMs: { avg: number; p50: number; p95: number; max: number };
  /** Runs finished in the last 60 s. */
  runsPerMinute: number;
  /** Most runs in flight at once since start. */
  peakConcurrency: number;
  /** Highest peakMemoryBytes of any run since start. */
  peakMemoryBytes: number;
  queueLength: number;
  pool: PoolStatus;
  workers: WorkerMetrics[];
  cache: CacheStats;
  /** The last runs, newest first (at most 20). */
  recentRuns: RunRecord[];
  /** The server process itself. */
  server: { pid: number; rssBytes: number; heapUsedBytes: number };
}

export interface LanguageInfo {
  id: string;
  name: string;
  /** File extensions (with the dot) that map to this language. */
  extensions: string[];
  available: boolean;
  /** The real binary runs use, after following links (and, for built-ins, shims); null when unavailable. */
  binary: string | null;
  version: string | null;
  source: 'builtin' | 'executorMap';
  /** Why the language is unavailable, when it is. */
  message?: string;
}

export interface LanguagesResult {
  languages: LanguageInfo[];
  isolation: IsolationMode;
  /** How the sandbox is put together on this machine, and why. */
  sandbox: SandboxInfo;
}

/** What the server found on this machine and uses for every run. */
export interface SandboxInfo {
  isolation: IsolationMode;
  /** Why this mode: e.g. `bubblewrap 0.8.0 works` or `bwrap was not found on PATH`. */
  reason: string;
  /** The bwrap binary in use, in the bwrap mode. */
  bwrap: string | null;
  /** Which cgroup version holds the memory and pids limits, or null when none is writable (rlimits only). */
  cgroup: 'v1' | 'v2' | null;
  /** Who sandboxed programs are on the host, in the bwrap mode (null in the process mode): `dedicated`, ids of their
   *  own per pool worker that own nothing here; `server`, the server's own uid (an ordinary user without
   *  subordinate ids: `description` says how to fix it). Never root. */
  hostUser: { mode: 'dedicated' | 'server'; description: string } | null;
  /** The seccomp filter's rules, one line each (`deny ptrace: …`); empty without one (the process mode). */
  seccomp: string[];
  /** Which defence holds each limit, e.g. `{ memory: 'memory cgroup', processes: 'pids cgroup' }`. */
  enforcement: Record<'memory' | 'processes' | 'cpu' | 'wall' | 'disk', string>;
  /** The ceilings a request's limits may be raised to. */
  maxLimits: Limits;
}

/** One line of the audit log (JSON Lines, append-only): one record per run, cached or not. */
export interface AuditRecord {
  /** ISO 8601 time the run finished. */
  ts: string;
  runId: string;
  /** Who asked: the client's name and version from `initialize` (`clientInfo`), and its process id. */
  client: string;
  language: string;
  /** sha256 of the program text (hex); the text itself only with `audit.includeCode`. */
  codeSha256: string;
  code?: string;
  limits: Limits | null;
  isolation: IsolationMode;
  status: RunStatus;
  durationMs: number;
  cpuMs: number;
  peakMemoryBytes: number;
  cached: boolean;
  /** Rule ids of the security scan's findings. */
  findings: string[];
  message?: string;
}

/** A user-supplied runtime, like Code Runner's executorMap. `command` is looked up on PATH once at start. */
export interface ExecutorOverride {
  /** Interpreter to run, e.g. `python3.12` or `/opt/pypy/bin/pypy3`. */
  command: string;
  /** Arguments before the program file; `$file` stands for the program's path (appended when absent). */
  args?: string[];
  /** Extension the program file gets, e.g. `.py`. */
  extension?: string;
  /** File extensions that map to this language (for the CLI and the client). */
  extensions?: string[];
  name?: string;
}

export interface ServerConfig {
  /** Number of workers; default: the number of CPUs. */
  poolSize?: number;
  /** Most requests that may wait for a worker; past it a run is `rejected` ("queue full"). */
  queueLimit?: number;
  cache?: { enabled?: boolean; ttlMs?: number; maxEntries?: number; maxBytes?: number };
  /** Defaults for runs that don't say. */
  limits?: Partial<Limits>;
  /** Language id → runtime; adds languages or overrides built-in ones. */
  executorMap?: Record<string, ExecutorOverride>;
  /** Answer `textDocument/codeLens` with "Run in Sandbox" lenses (default true); `false` answers no lenses. */
  codeLens?: boolean;
  /** How runs are isolated (default `auto`: bubblewrap when it works here). Read at start only. */
  isolation?: IsolationSetting;
  /** The most a request (or `limits`) may raise each limit to; a request above it is `rejected`. */
  maxLimits?: Partial<Limits>;
  /** The security scan: `warn` (default) reports findings, `block` rejects a run that has any `warning` or
   *  `error` finding (`info` hints never block), `off` skips the scan. */
  scanPolicy?: 'off' | 'warn' | 'block';
  audit?: AuditConfig;
  /** Token bucket per connection: `perSecond` requests refill, `burst` at once; batch items count one by one.
   *  `perSecond: 0` turns it off. */
  rateLimit?: { perSecond?: number; burst?: number };
}

export interface AuditConfig {
  /** Write the audit log (default true). */
  enabled?: boolean;
  /** The log file (default `$XDG_STATE_HOME/sandbox-runner/audit.jsonl`, i.e. `~/.local/state/…`). */
  path?: string;
  /** Rotate when the file passes this size (default 10 MiB); `audit.jsonl.1` … are kept. */
  maxBytes?: number;
  /** How many rotated files to keep (default 3). */
  maxFiles?: number;
  /** Also record the program text (default false: only its sha256). */
  includeCode?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// CodeLens (server → client, through LSP's own `textDocument/codeLens`)

/** A position in a document: 0-based line and UTF-16 character, the same shape as LSP's `Position`. */
export interface SourcePosition {
  line: number;
  character: number;
}

/** A range in a document (end exclusive), the same shape as LSP's `Range`. */
export interface SourceRange {
  start: SourcePosition;
  end: SourcePosition;
}

/**
 * What a runnable unit is. `file`: the whole document; `main`: a Python `if __name__ == "__main__":` block (running
 * it runs the file); `test`: one test function or `test(...)`/`it(...)`/`describe(...)` call; `block`: a fenced code
 * block in Markdown (running it runs only `code`).
 */
export type RunUnitKind = 'file' | 'main' | 'test' | 'block';

/** The id of the client command every server CodeLens invokes, with one `RunUnitArgs` as its only argument. */
export const RUN_UNIT_COMMAND = 'sandbox.runUnit' as const;

/**
 * The argument of the client's `sandbox.runUnit` command, which the server's CodeLenses carry
 * (`command.arguments: [RunUnitArgs]`). The client turns it into a `sandbox/execute` (or, for tests, the
 * harness run it builds).
 */
export interface RunUnitArgs {
  /** The document's URI, as the client sent it in `textDocument/didOpen`. */
  uri: string;
  /** The document's language id, as the client sent it (e.g. `python`, `shellscript`, `markdown`). */
  languageId: string;
  /** The sandbox language to run with (`python`, `javascript`, `typescript`, `shell`, `c`, `cpp`); for a
   *  Markdown block, the block's language. */
  language: string;
  kind: RunUnitKind;
  /** Tests: `test_add`, `TestMath.test_add` (Python), `outer > inner > adds` (JS/TS `describe`/`test` path),
   *  `test_backup` (shell). Absent for other kinds. */
  name?: string;
  /** Where the unit is: the whole function / call / block / document. */
  range: SourceRange;
  /** Markdown blocks only: the block's text (without the fences), to run instead of the document. */
  code?: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Test Explorer (client → server: `sandbox/discoverTests`, `sandbox/runTests`)

export interface DiscoverTestsParams {
  /** The document's URI (echoed nowhere; for the server's log and future use). */
  uri: string;
  /** VS Code's language id (`python`, `javascript`, `typescript`, `shellscript`) or the sandbox's own. */
  languageId: string;
  /** The document's text. */
  text: string;
}

export interface DiscoveredTest {
  /** What `sandbox/runTests` selects it by: `test_add`, `TestMath.test_add`, `outer > inner > adds`, `test_backup`. */
  id: string;
  /** The name's parts (`['outer', 'inner', 'adds']`), for a test tree. */
  path: string[];
  /** The last part of the path, for a label. */
  name: string;
  kind: RunUnitKind;
  range: SourceRange;
}

export interface DiscoverTestsResult {
  /** The tests of the document, in document order (no `file`/`main`/`block` units). */
  tests: DiscoveredTest[];
}

/** One test to run: a test function (Python, shell) or a `test`/`describe` call (JS/TS) of a file on disk. */
export interface TestRunItem {
  /** The document's URI; echoed in the result. */
  uri: string;
  /** Absolute path of the test file (read from disk: save before running). */
  file: string;
  /** VS Code's language id or the sandbox's own (`python`, `javascript`, `typescript`, `shellscript`/`shell`). */
  languageId: string;
  /** A DiscoveredTest id. */
  testId: string;
  /** The directory the run may read and import from (ExecuteParams.workspace); default: the file's directory. */
  workspace?: string;
}

export interface RunTestsParams {
  items: TestRunItem[];
  /** How many runs at once (default and maximum: the pool size). */
  concurrency?: number;
  /** Limits for every run; each missing field takes the server's default. */
  limits?: Partial<Limits>;
}

/**
 * A test's verdict: `passed`; `failed` (its assertion or code failed, it timed out or ran out of memory); `errored`
 * (it could not be run: its file did not load, the test was not found, the sandbox refused it); `skipped` (marked
 * skip/todo, or the run was cancelled).
 */
export type TestOutcome = 'passed' | 'failed' | 'errored' | 'skipped';

export interface TestRunResult {
  uri: string;
  testId: string;
  outcome: TestOutcome;
  /** outcome === 'passed'. */
  passed: boolean;
  /** The test's own duration when its runner reports one (node:test), else its run's, in ms. */
  durationMs: number;
  /** Why it did not pass, in one or a few lines (an assertion's message, a traceback's last line). */
  message?: string;
  /** Where it failed, when the output names a place (1-based line and column, as server/traceback.ts gives). */
  location?: { file?: string; line: number; column?: number; message: string };
  /** The output of the test's run: for JS/TS, that of the whole file's run (all its tests ran together). */
  output: string;
  /** The run behind this test; absent when none was made (an unsupported language). JS/TS tests of one file
   *  share one run. */
  result?: ExecutionResult;
}

export interface RunTestsResult {
  /** One per item, in the order of `items`. */
  results: TestRunResult[];
  /** Of the runs made (fewer than the items when JS/TS tests of one file shared a run). */
  summary: BatchSummary;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests (client → server)

/** client → server: run one program. Cancellable with `$/cancelRequest`. */
export namespace ExecuteRequest {
  export const method = 'sandbox/execute' as const;
  export const type = new RequestType<ExecuteParams, ExecutionResult, void>(method);
}

/** client → server: run many programs through the pool; one item's failure never affects the others. */
export namespace ExecuteBatchRequest {
  export const method = 'sandbox/executeBatch' as const;
  export const type = new RequestType<ExecuteBatchParams, ExecuteBatchResult, void>(method);
}

/** client → server: a snapshot of the server's metrics. */
export namespace MetricsRequest {
  export const method = 'sandbox/metrics' as const;
  export const type = new RequestType0<Metrics, void>(method);
}

/** client → server: drop every cached result; answers how many entries were dropped. */
export namespace ClearCacheRequest {
  export const method = 'sandbox/clearCache' as const;
  export const type = new RequestType0<{ cleared: number }, void>(method);
}

/** client → server: the runtimes the server found at start, with their real binaries and versions. */
export namespace LanguagesRequest {
  export const method = 'sandbox/languages' as const;
  export const type = new RequestType0<LanguagesResult, void>(method);
}

/** client → server: change the configuration of the running server (settings changed); answers the result. */
export namespace ConfigureRequest {
  export const method = 'sandbox/configure' as const;
  export const type = new RequestType<ServerConfig, { languages: LanguageInfo[] }, void>(method);
}

/** client → server: the tests of a document's text (server/discovery.ts); nothing runs. */
export namespace DiscoverTestsRequest {
  export const method = 'sandbox/discoverTests' as const;
  export const type = new RequestType<DiscoverTestsParams, DiscoverTestsResult, void>(method);
}

/**
 * client → server: run tests of files on disk through the pool, each through a small harness the server builds
 * (server/testRuns.ts); one batch. Cancellable with `$/cancelRequest` (the runs are killed; their tests `skipped`).
 */
export namespace RunTestsRequest {
  export const method = 'sandbox/runTests' as const;
  export const type = new RequestType<RunTestsParams, RunTestsResult, void>(method);
}

// ---------------------------------------------------------------------------------------------------------------
// Notifications (server → client)

export interface OutputParams {
  runId: string;
  stream: 'stdout' | 'stderr';
  chunk: string;
}

/** server → client: a piece of a running program's output, as it is produced. */
export namespace OutputNotification {
  export const method = 'sandbox/output' as const;
  export const type = new NotificationType<OutputParams>(method);
}

/** server → client: the metrics changed; sent at most 4 times a second. */
export namespace MetricsChangedNotification {
  export const method = 'sandbox/metricsChanged' as const;
  export const type = new NotificationType<Metrics>(method);
}

/** Every custom method of the protocol, for validation and documentation. */
export const METHODS = [
  ExecuteRequest.method,
  ExecuteBatchRequest.method,
  MetricsRequest.method,
  ClearCacheRequest.method,
  LanguagesRequest.method,
  ConfigureRequest.method,
  DiscoverTestsRequest.method,
  RunTestsRequest.method,
  OutputNotification.method,
  MetricsChangedNotification.method,
] as const;
