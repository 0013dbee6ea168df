/**
 * The sandbox engine: one request's way through the server. Validated params → runtime → cache → pool → work dir →
 * prepare (transpile / compile) → executor → verdict → cache, metrics. Knows nothing of JSON-RPC, so it can be
 * driven by tests directly; server/main.ts wires it to the connection.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants as fsc, mkdtempSync, rmSync } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { ExecutionCache, cacheKey } from './cache';
import { Executor, type ExecOutcome } from './executor';
import { binaryKey, commandLine, languageInfo, resolveRuntimes, rlimitsFor, type Runtime } from './languages';
import { MetricsRecorder } from './metrics';
import { QueueFullError, ResourcePool, type Lease } from './pool';
import type {
  BatchSummary,
  ExecuteBatchResult,
  ExecuteParams,
  ExecutionResult,
  IsolationMode,
  LanguagesResult,
  Limits,
  Metrics,
  RunStatus,
  ServerConfig,
} from './protocol';
import { MAX_CODE_BYTES, MAX_STDIN_BYTES, MAX_ARGS_BYTES, parseExecute } from './validation';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface EngineOptions {
  /** Path of the compiled sbx-launch binary. */
  launcher: string;
  config?: ServerConfig;
  log?: Logger;
  /** Where work dirs and compiled binaries live; default: a fresh dir under the OS temp dir. */
  workRoot?: string;
}

export const DEFAULT_LIMITS: Limits = { timeoutMs: 10_000, memoryMb: 512, outputBytes: 1024 * 1024 };
export const DEFAULT_CACHE = { enabled: true, ttlMs: 10 * 60_000, maxEntries: 500, maxBytes: 64 * 1024 * 1024 };
export const DEFAULT_QUEUE_LIMIT = 256;
/** Compilers need more room than most programs: a compile step gets at least this much memory. */
const COMPILE_MEMORY_FLOOR_MB = 1024;
/** Compiled binaries kept (by source hash) for re-runs. */
const BINARY_CACHE_ENTRIES = 64;
/** A failed run that used this share of its memory limit ran out of memory. */
const OOM_SHARE = 0.8;

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export type OutputListener = (runId: string, stream: 'stdout' | 'stderr', chunk: string) => void;

/** What the program is, once its text is in hand. */
interface Program {
  runtime: Runtime;
  code: string;
  limits: Limits;
}

class Rejection extends Error {}

export class SandboxEngine {
  readonly isolation: IsolationMode = 'process';
  private readonly events = new EventEmitter();
  private readonly executor: Executor;
  private readonly pool: ResourcePool;
  private readonly cache: ExecutionCache;
  private readonly metricsRecorder = new MetricsRecorder();
  private readonly log: Logger;
  private readonly workRoot: string;
  private readonly binDir: string;
  private readonly binaries: LRUCache<string, string>;
  /** Compiles under way, by binary key: runs of the same source wait for one compile instead of racing. */
  private readonly compiling = new Map<string, Promise<{ file: string } | { status: RunStatus; message: string }>>();
  private runtimes = new Map<string, Runtime>();
  private config: Required<Pick<ServerConfig, 'poolSize' | 'queueLimit'>> & { limits: Limits };
  private disposed = false;

  private constructor(opts: EngineOptions) {
    this.log = opts.log ?? silent;
    const cfg = opts.config ?? {};
    this.config = {
      poolSize: cfg.poolSize ?? os.availableParallelism(),
      queueLimit: cfg.queueLimit ?? DEFAULT_QUEUE_LIMIT,
      limits: { ...DEFAULT_LIMITS, ...cfg.limits },
    };

    this.pool = new ResourcePool({ size: this.config.poolSize, queueLimit: this.config.queueLimit });
    this.pool.onChange = () => this.changed();
    this.cache = new ExecutionCache({ ...DEFAULT_CACHE, ...cfg.cache });
    this.workRoot = opts.workRoot ?? mkdtempSync(path.join(os.tmpdir(), 'sbx-'));
    this.executor = new Executor({ launcher: opts.launcher, socketDir: this.workRoot });
    this.binDir = path.join(this.workRoot, 'bin');
    this.binaries = new LRUCache<string, string>({
      max: BINARY_CACHE_ENTRIES,
      dispose: (file) => void rm(file, { force: true }),
    });
  }

  static async create(opts: EngineOptions): Promise<SandboxEngine> {
    const engine = new SandboxEngine(opts);
    await mkdir(engine.binDir, { recursive: true });
    engine.runtimes = await resolveRuntimes(opts.config?.executorMap);
    for (const r of engine.runtimes.values()) {
      if (r.available) engine.log.info(`${r.id}: ${r.binary} ${r.version}`);
      else engine.log.warn(`${r.id} is unavailable: ${r.message}`);
    }
    engine.log.warn(
      'isolation: process (child processes with rlimits). Runs can read what the server user can read; do not run hostile code yet.',
    );
    return engine;
  }

  /** Subscribe to "something in the metrics changed" (unthrottled; the connection throttles). */
  onChanged(listener: () => void): () => void {
    this.events.on('changed', listener);
    return () => this.events.off('changed', listener);
  }

  private changed(): void {
    this.events.emit('changed');
  }

  // ------------------------------------------------------------------------------------------------------------
  // Requests

  async execute(params: ExecuteParams, signal?: AbortSignal, onOutput?: OutputListener): Promise<ExecutionResult> {
    const runId = params.runId ?? randomUUID();
    const language = params.language;
    let lease: Lease | undefined;
    let result: ExecutionResult;
    try {
      const program = await this.program(params);
      // A run with a workspace reads files the key cannot see: never cached (ExecuteParams.workspace).
      const key =
        params.cache !== false && params.workspace === undefined
          ? cacheKey({
              language: program.runtime.id,
              // The whole command line, not just the binary: executorMap arguments change results too.
              binary: JSON.stringify([program.runtime.command, program.runtime.preparation]),
              version: program.runtime.version ?? '',
              code: program.code,
              stdin: params.stdin ?? null,
              args: params.args ?? [],
              limits: program.limits,
              isolation: this.isolation,
            })
          : undefined;
      const hit = key !== undefined ? this.cache.lookup(key) : undefined;
      if (hit) {
        result = { ...hit, runId, cached: true, workerId: null };
      } else {
        if (signal?.aborted) throw new DOMException('cancelled', 'AbortError');
        lease = await this.pool.acquire(signal);
        result = await this.run(runId, program, params, lease.workerId, signal, onOutput);
        if (key !== undefined) this.cache.store(key, result);
      }
    } catch (e) {
      result = this.failure(runId, language, e);
    }
    lease?.release(result.status !== 'ok');
    this.record(result);
    return result;
  }

  async executeBatch(
    items: unknown[],
    concurrency: number | undefined,
    signal?: AbortSignal,
    onOutput?: OutputListener,
  ): Promise<ExecuteBatchResult> {
    const started = performance.now();
    const results: ExecutionResult[] = new Array<ExecutionResult>(items.length);
    const width = Math.max(1, Math.min(concurrency ?? this.config.poolSize, this.config.poolSize, items.length || 1));
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < items.length) {
        const i = next++;
        const parsed = parseExecute(items[i]);
        if (!parsed.ok) {
          const runId = randomUUID();
          const lang = (items[i] as { language?: unknown } | null)?.language;
          results[i] = this.rejected(runId, typeof lang === 'string' ? lang : '', `item ${i}: ${parsed.message}`);
          this.record(results[i]);
          continue;
        }
        results[i] = await this.execute(parsed.value, signal, onOutput);
      }
    };
    await Promise.all(Array.from({ length: width }, lane));
    return { results, summary: summarize(results, performance.now() - started) };
  }

  metrics(): Metrics {
    const memory = process.memoryUsage();
    return {
      ...this.metricsRecorder.snapshot(this.pool, this.cache.stats()),
      server: { pid: process.pid, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
    };
  }

  clearCache(): number {
    const n = this.cache.clear();
    this.changed();
    return n;
  }

  languages(): LanguagesResult {
    return { languages: [...this.runtimes.values()].map(languageInfo), isolation: this.isolation };
  }

  async configure(cfg: ServerConfig): Promise<void> {
    if (cfg.poolSize !== undefined || cfg.queueLimit !== undefined) {
      this.config.poolSize = cfg.poolSize ?? this.config.poolSize;
      this.config.queueLimit = cfg.queueLimit ?? this.config.queueLimit;
      this.pool.resize(this.config.poolSize, this.config.queueLimit);
    }
    if (cfg.limits) this.config.limits = { ...this.config.limits, ...cfg.limits };
    if (cfg.cache) this.cache.configure({ ...DEFAULT_CACHE, ...cfg.cache });
    if (cfg.executorMap) this.runtimes = await resolveRuntimes(cfg.executorMap);
    this.changed();
  }

  /** Kills every run and removes every file the engine made. Synchronous: safe in a process 'exit' handler. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.executor.dispose();
    rmSync(this.workRoot, { recursive: true, force: true });
  }

  // ------------------------------------------------------------------------------------------------------------
  // Steps

  /** Finds the runtime, reads the program and settles the limits, or throws a Rejection saying why not. */
  private async program(params: ExecuteParams): Promise<Program> {
    const runtime = this.runtimes.get(params.language);
    if (!runtime) {
      const known = [...this.runtimes.keys()].sort().join(', ');
      throw new Rejection(`unknown language "${params.language}"; known languages: ${known}`);
    }
    if (!runtime.available) throw new Rejection(`${runtime.id} is not available here: ${runtime.message}`);
    if (params.workspace !== undefined) await checkWorkspace(params.workspace);
    const code = params.code ?? (await readProgramFile(params.file ?? ''));
    if (Buffer.byteLength(code) > MAX_CODE_BYTES) {
      throw new Rejection(`the program is larger than ${MAX_CODE_BYTES} bytes`);
    }
    if (params.stdin !== undefined && Buffer.byteLength(params.stdin) > MAX_STDIN_BYTES) {
      throw new Rejection(`stdin is larger than ${MAX_STDIN_BYTES} bytes`);
    }
    const argBytes = (params.args ?? []).reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
    if (argBytes > MAX_ARGS_BYTES) throw new Rejection(`the arguments are larger than ${MAX_ARGS_BYTES} bytes`);
    return { runtime, code, limits: { ...this.config.limits, ...params.limits } };
  }

  private async run(
    runId: string,
    program: Program,
    params: ExecuteParams,
    workerId: string,
    signal: AbortSignal | undefined,
    onOutput: OutputListener | undefined,
  ): Promise<ExecutionResult> {
    const { runtime, limits } = program;
    const workDir = await mkdtemp(path.join(this.workRoot, 'run-'));
    try {
      const file = path.join(workDir, runtime.fileName);
      const prepared = await this.prepare(runtime, program.code, file, workDir, limits, signal);
      if ('status' in prepared) return this.result(runId, runtime.id, workerId, prepared.status, prepared.outcome, prepared.message);
      // A program in the work dir (the cwd) is named relatively, so tracebacks say `main.py`, not a server path.
      const target = path.dirname(prepared.file) === workDir ? path.basename(prepared.file) : prepared.file;
      const [command, ...args] = commandLine(runtime, target, params.args ?? []);
      const outcome = await this.executor.run({
        command: command!,
        args,
        cwd: workDir,
        env: sandboxEnv(workDir, runtime),
        stdin: params.stdin ?? null,
        timeoutMs: limits.timeoutMs,
        memoryBytes: limits.memoryMb * 1024 * 1024,
        outputBytes: limits.outputBytes,
        rlimits: rlimitsFor(runtime, limits.memoryMb),
        signal,
        onOutput: onOutput && ((stream, chunk) => onOutput(runId, stream, chunk)),
      });
      return this.result(runId, runtime.id, workerId, this.verdict(runtime, outcome, limits), outcome, outcome.error);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  /** Writes the program and, where the language needs it, transpiles or compiles it. */
  private async prepare(
    runtime: Runtime,
    code: string,
    file: string,
    workDir: string,
    limits: Limits,
    signal: AbortSignal | undefined,
  ): Promise<{ file: string } | { status: RunStatus; outcome?: ExecOutcome; message: string }> {
    const prep = runtime.preparation;
    if (prep.kind === 'none') {
      await writeFile(file, code, { mode: 0o644, flag: 'wx' });
      return { file };
    }
    if (prep.kind === 'transpile-ts') {
      const esbuild = await import('esbuild');
      try {
        const out = await esbuild.transform(code, { loader: 'ts', format: 'cjs', target: 'node20', sourcefile: 'main.ts' });
        await writeFile(file, out.code, { mode: 0o644, flag: 'wx' });
        return { file };
      } catch (e) {
        const errors = (e as { errors?: { text: string; location?: { line: number; column: number } | null }[] }).errors;
        const message = errors?.length
          ? errors.map((m) => `main.ts${m.location ? `:${m.location.line}:${m.location.column + 1}` : ''}: error: ${m.text}`).join('\n')
          : String((e as Error).message);
        return { status: 'compile_error', message };
      }
    }
    // A compiled language: reuse the binary of the same source, join a compile of it already under way, or
    // compile it under the run's limits.
    const key = binaryKey(runtime, code);
    const cached = this.binaries.get(key);
    if (cached) return { file: cached };
    const underWay = this.compiling.get(key);
    if (underWay) {
      const shared = await underWay;
      // A compile error is the source's own; a compile that was cut short (timeout, cancel) was the other run's:
      // then this run compiles for itself, under its own limits.
      if ('file' in shared || shared.status === 'compile_error') return shared;
    }
    const compile = this.compile(runtime, prep, key, code, workDir, limits, signal);
    this.compiling.set(key, compile);
    try {
      return await compile;
    } finally {
      if (this.compiling.get(key) === compile) this.compiling.delete(key);
    }
  }

  private async compile(
    runtime: Runtime,
    prep: Extract<Runtime['preparation'], { kind: 'compile' }>,
    key: string,
    code: string,
    workDir: string,
    limits: Limits,
    signal: AbortSignal | undefined,
  ): Promise<{ file: string } | { status: RunStatus; outcome?: ExecOutcome; message: string }> {
    const ext = path.extname(runtime.fileName);
    const source = path.join(workDir, `main${ext}`);
    await writeFile(source, code, { mode: 0o644, flag: 'wx' });
    const out = path.join(workDir, 'main');
    // Relative names (the compiler runs in the work dir) keep server paths out of the compiler's messages.
    const flags = prep.flags.map((f) => (f === '$out' ? 'main' : f === '$file' ? path.basename(source) : f));
    const compileStarted = performance.now();
    const memoryMb = Math.max(limits.memoryMb, COMPILE_MEMORY_FLOOR_MB);
    const outcome = await this.executor.run({
      command: prep.compiler,
      args: flags,
      cwd: workDir,
      env: sandboxEnv(workDir, runtime),
      stdin: null,
      timeoutMs: limits.timeoutMs,
      memoryBytes: memoryMb * 1024 * 1024,
      outputBytes: limits.outputBytes,
      rlimits: { as: memoryMb * 1024 * 1024 },
      signal,
    });
    const compilerSays = (outcome.stderr + outcome.stdout).trim();
    switch (outcome.end) {
      case 'exited':
        if (outcome.exitCode === 0) break;
        return { status: 'compile_error', outcome, message: compilerSays || `${path.basename(prep.compiler)} failed` };
      case 'timeout':
        return { status: 'timeout', outcome, message: `compilation took longer than ${limits.timeoutMs} ms` };
      case 'cancelled':
        return { status: 'cancelled', outcome, message: 'cancelled while compiling' };
      case 'spawn_error':
        return { status: 'internal_error', outcome, message: outcome.error ?? 'the compiler could not start' };
      default:
        return { status: 'compile_error', outcome, message: `the compiler hit the ${outcome.end.replace('_', ' ')}` };
    }
    this.log.info(`${runtime.id}: compiled ${key.slice(0, 12)} in ${Math.round(performance.now() - compileStarted)} ms`);
    const kept = path.join(this.binDir, key);
    const temp = `${kept}.${path.basename(workDir)}.tmp`; // unique per run: never two writers of one file
    await copyFile(out, temp);
    await rename(temp, kept);
    this.binaries.set(key, kept);
    return { file: kept };
  }

  private verdict(runtime: Runtime, o: ExecOutcome, limits: Limits): RunStatus {
    switch (o.end) {
      case 'spawn_error':
        return 'internal_error';
      case 'timeout':
      case 'output_limit':
      case 'memory_limit':
      case 'cancelled':
        return o.end;
      case 'exited':
        if (o.exitCode === 0 && o.signal === null) return 'ok';
        if (runtime.outOfMemory?.test(o.stderr)) return 'memory_limit';
        if (o.peakMemoryBytes >= OOM_SHARE * limits.memoryMb * 1024 * 1024) return 'memory_limit';
        return 'runtime_error';
    }
  }

  private result(
    runId: string,
    language: string,
    workerId: string,
    status: RunStatus,
    o: ExecOutcome | undefined,
    message?: string,
  ): ExecutionResult {
    const r: ExecutionResult = {
      runId,
      language,
      status,
      exitCode: o?.exitCode ?? null,
      signal: o?.signal ?? null,
      stdout: o?.stdout ?? '',
      stderr: o?.stderr ?? (status === 'compile_error' ? (message ?? '') : ''),
      stdoutTruncated: o?.stdoutTruncated ?? false,
      stderrTruncated: o?.stderrTruncated ?? false,
      durationMs: o?.durationMs ?? 0,
      cpuMs: o?.cpuMs ?? 0,
      peakMemoryBytes: o?.peakMemoryBytes ?? 0,
      cached: false,
      workerId,
      isolation: this.isolation,
    };
    if (status === 'compile_error') {
      // A compile error is about the program, not the compiler's run: its text is the message and the stderr.
      r.exitCode = null;
      r.signal = null;
      r.stdout = '';
      r.stderr = message ?? r.stderr;
      r.durationMs = 0;
      r.cpuMs = 0;
      r.peakMemoryBytes = 0;
    }
    if (message && (status === 'compile_error' || status === 'internal_error' || status === 'timeout' || status === 'cancelled')) {
      r.message = message;
    }
    return r;
  }

  private rejected(runId: string, language: string, message: string): ExecutionResult {
    return { ...this.result(runId, language, '', 'rejected', undefined, undefined), workerId: null, message };
  }

  private failure(runId: string, language: string, e: unknown): ExecutionResult {
    if (e instanceof Rejection) return this.rejected(runId, language, e.message);
    if (e instanceof QueueFullError) return this.rejected(runId, language, e.message);
    if ((e as { name?: string })?.name === 'AbortError') {
      return { ...this.result(runId, language, '', 'cancelled', undefined, 'cancelled before it started'), workerId: null };
    }
    const message = `internal error: ${(e as Error)?.message ?? String(e)}`;
    this.log.error(`run ${runId}: ${(e as Error)?.stack ?? message}`);
    return { ...this.result(runId, language, '', 'internal_error', undefined, message), workerId: null };
  }

  private record(r: ExecutionResult): void {
    this.metricsRecorder.record({
      runId: r.runId,
      language: r.language,
      status: r.status,
      durationMs: r.durationMs,
      cpuMs: r.cpuMs,
      peakMemoryBytes: r.peakMemoryBytes,
      cached: r.cached,
      workerId: r.workerId,
      finishedAt: Date.now(),
    });
    this.changed();
  }
}

/**
 * A run's workspace must be an absolute path of an existing directory. In the `process` isolation mode that is all
 * (the run can read it like any file of the server's user); the bubblewrap mode will bind it read-only.
 */
async function checkWorkspace(dir: string): Promise<void> {
  if (!path.isAbsolute(dir)) throw new Rejection(`workspace must be an absolute path, got "${dir}"`);
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new Rejection(`workspace ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new Rejection(`workspace ${dir} is not a directory`);
}

/** Reads a program from a path, refusing anything that is not a regular file of a sane size. */
async function readProgramFile(file: string): Promise<string> {
  if (!path.isAbsolute(file)) throw new Rejection(`file must be an absolute path, got "${file}"`);
  let st;
  try {
    st = await lstat(file);
  } catch {
    throw new Rejection(`cannot read ${file}: no such file`);
  }
  if (!st.isFile()) throw new Rejection(`cannot read ${file}: not a regular file`);
  if (st.size > MAX_CODE_BYTES) throw new Rejection(`${file} is larger than ${MAX_CODE_BYTES} bytes`);
  try {
    const fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new Rejection(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The whole environment of a sandboxed program: an allow-list, nothing of the server's own. */
export function sandboxEnv(workDir: string, runtime: Runtime): Record<string, string> {
  const binDir = runtime.binary ? path.dirname(runtime.binary) : undefined;
  const PATH = [binDir, '/usr/local/bin', '/usr/bin', '/bin'].filter((d, i, all) => d && all.indexOf(d) === i).join(':');
  return {
    PATH,
    HOME: workDir,
    TMPDIR: workDir,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TERM: 'dumb',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONIOENCODING: 'utf-8',
  };
}

export function summarize(results: ExecutionResult[], wallMs: number): BatchSummary {
  const byStatus: Partial<Record<RunStatus, number>> = {};
  let ok = 0;
  let cached = 0;
  let totalDurationMs = 0;
  for (const r of results) {
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (r.status === 'ok') ok++;
    if (r.cached) cached++;
    totalDurationMs += r.durationMs;
  }
  return {
    total: results.length,
    ok,
    failed: results.length - ok,
    cached,
    byStatus,
    wallMs: Math.round(wallMs * 100) / 100,
    totalDurationMs: Math.round(totalDurationMs * 100) / 100,
  };
}
