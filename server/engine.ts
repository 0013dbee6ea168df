/**
 * The sandbox engine: one request's way through the server. Validated params → runtime → cache → pool → work dir →
 * prepare (transpile / compile) → executor → verdict → cache, metrics. Knows nothing of JSON-RPC, so it can be
 * driven by tests directly; server/main.ts wires it to the connection.
 */
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants as fsc, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { AuditLog, auditRecord, defaultAuditPath } from './audit';
import { ExecutionCache, cacheKey } from './cache';
import { probeCgroups, type CgroupManager, type RunCgroup } from './cgroup';
import { Executor, type ExecOutcome, type ExecSpec } from './executor';
import { chooseIdentity, describeIdentity, IdAllocator, type SandboxIdentity } from './identity';
import { BOX_WORK, bwrapArgs, chooseIsolation, exportSeccomp, identityArgs, readHostLayout, runtimeRoot, type HostLayout } from './isolation';
import { binaryKey, commandLine, languageInfo, resolveRuntimes, rlimitsFor, type Runtime } from './languages';
import { LimitError, resolveLimits, resolveMaxLimits } from './limits';
import { MetricsRecorder } from './metrics';
import { QueueFullError, ResourcePool, type Lease } from './pool';
import { TokenBucket } from './rateLimit';
import { blockingFindings, describeFindings, scanProgram } from './scanner';
import type {
  BatchSummary,
  ExecuteBatchResult,
  ExecuteParams,
  ExecutionResult,
  Finding,
  IsolationMode,
  LanguagesResult,
  Limits,
  Metrics,
  RunStatus,
  SandboxInfo,
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
  /** Who this engine serves, for the audit log (e.g. `vscode 1.96.4 (pid 123)`). */
  client?: string;
}

export { DEFAULT_LIMITS } from './limits';
/** Work roots are named `sbx-<random>` in the temp dir; each holds `server.pid` naming the server that owns it. */
const WORK_ROOT_PREFIX = 'sbx-';
export const DEFAULT_RATE_LIMIT = { perSecond: 100, burst: 1000 };
export const DEFAULT_CACHE = { enabled: true, ttlMs: 10 * 60_000, maxEntries: 500, maxBytes: 64 * 1024 * 1024 };
export const DEFAULT_QUEUE_LIMIT = 256;
/** Compilers need more room than most programs: a compile step gets at least this much memory. */
const COMPILE_MEMORY_FLOOR_MB = 1024;
/** Compiled binaries kept (by source hash) for re-runs: at most this many, and this many bytes on the host's disk (a
 *  tiny source can compile to a binary as large as fileSizeMb). A binary larger than the budget is not kept. */
const BINARY_CACHE_ENTRIES = 64;
const BINARY_CACHE_BYTES = 256 * 1024 * 1024;
/** A failed run that used this share of its memory limit ran out of memory. */
const OOM_SHARE = 0.8;

/** Scans remembered by program hash. */
const SCAN_CACHE_ENTRIES = 256;

/** Built-in runtimes that run on V8 (their heap limit is a flag, not an rlimit). */
const V8_RUNTIMES = new Set(['javascript', 'typescript']);

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export type OutputListener = (runId: string, stream: 'stdout' | 'stderr', chunk: string) => void;

/** What the program is, once its text is in hand. */
interface Program {
  runtime: Runtime;
  code: string;
  limits: Limits;
  findings: Finding[];
}

class Rejection extends Error {
  constructor(
    message: string,
    readonly extra: { findings?: Finding[]; retryAfterMs?: number } = {},
  ) {
    super(message);
  }
}

/** What the audit record of a result needs besides the result. */
interface AuditContext {
  code: string | null;
  limits: Limits | null;
}

export class SandboxEngine {
  isolation: IsolationMode = 'process';
  private sandboxInfo!: SandboxInfo;
  private layout: HostLayout | undefined;
  private bwrap: string | null = null;
  private cgroups: CgroupManager | null = null;
  /** Who sandboxed programs are on the host (bwrap mode), and each worker's ids when they have their own. */
  private identity: SandboxIdentity | null = null;
  private ids: IdAllocator | null = null;
  private audit: AuditLog | undefined;
  private readonly rateLimit: TokenBucket;
  private readonly launcher: string;
  private readonly client: string;
  private readonly events = new EventEmitter();
  private readonly executor: Executor;
  private readonly pool: ResourcePool;
  private readonly cache: ExecutionCache;
  private readonly metricsRecorder = new MetricsRecorder();
  private readonly log: Logger;
  private readonly workRoot: string;
  private readonly binDir: string;
  private readonly binaries: LRUCache<string, { file: string; bytes: number }>;
  /** Compiles under way, by binary key: runs of the same source wait for one compile instead of racing. */
  private readonly compiling = new Map<string, Promise<{ file: string } | { status: RunStatus; message: string }>>();
  private runtimes = new Map<string, Runtime>();
  private config: Required<Pick<ServerConfig, 'poolSize' | 'queueLimit' | 'scanPolicy'>> & {
    limits: Partial<Limits>;
    maxLimits: Limits;
    audit: NonNullable<ServerConfig['audit']>;
  };
  private disposed = false;
  private readonly scans = new LRUCache<string, Finding[]>({ max: SCAN_CACHE_ENTRIES });

  private constructor(opts: EngineOptions) {
    this.log = opts.log ?? silent;
    this.launcher = opts.launcher;
    this.client = opts.client ?? 'unknown client';
    const cfg = opts.config ?? {};
    this.config = {
      poolSize: cfg.poolSize ?? os.availableParallelism(),
      queueLimit: cfg.queueLimit ?? DEFAULT_QUEUE_LIMIT,
      limits: { ...cfg.limits },
      maxLimits: resolveMaxLimits(cfg.maxLimits),
      scanPolicy: cfg.scanPolicy ?? 'warn',
      audit: { ...cfg.audit },
    };
    this.rateLimit = new TokenBucket({ ...DEFAULT_RATE_LIMIT, ...cfg.rateLimit });

    this.pool = new ResourcePool({ size: this.config.poolSize, queueLimit: this.config.queueLimit });
    this.pool.onChange = () => this.changed();
    this.cache = new ExecutionCache({ ...DEFAULT_CACHE, ...cfg.cache });
    this.workRoot = opts.workRoot ?? mkdtempSync(path.join(os.tmpdir(), WORK_ROOT_PREFIX));
    writeFileSync(path.join(this.workRoot, 'server.pid'), String(process.pid));
    this.executor = new Executor({ launcher: opts.launcher, socketDir: this.workRoot });
    this.binDir = path.join(this.workRoot, 'bin');
    this.binaries = new LRUCache<string, { file: string; bytes: number }>({
      max: BINARY_CACHE_ENTRIES,
      maxSize: BINARY_CACHE_BYTES,
      sizeCalculation: (b) => Math.max(1, b.bytes),
      dispose: (b) => void rm(b.file, { force: true }),
    });
  }

  static async create(opts: EngineOptions): Promise<SandboxEngine> {
    const engine = new SandboxEngine(opts);
    try {
      await engine.start(opts);
    } catch (e) {
      engine.dispose();
      throw e;
    }
    return engine;
  }

  private async start(opts: EngineOptions): Promise<void> {
    await mkdir(this.binDir, { recursive: true });
    const swept = sweepStaleWorkRoots(path.dirname(this.workRoot), this.workRoot);
    if (swept > 0) this.log.info(`removed ${swept} work dir(s) left by a server that was killed`);
    this.runtimes = await resolveRuntimes(opts.config?.executorMap);
    for (const r of this.runtimes.values()) {
      if (r.available) this.log.info(`${r.id}: ${r.binary} ${r.version}`);
      else this.log.warn(`${r.id} is unavailable: ${r.message}`);
    }
    this.layout = readHostLayout(this.workRoot, this.launcher);
    const setting = opts.config?.isolation ?? 'auto';
    let seccomp: string[] = [];
    let identity: SandboxIdentity | undefined;
    let unsandboxable: string | undefined;
    if (setting !== 'process') {
      try {
        seccomp = await exportSeccomp(this.launcher, this.layout);
        identity = await chooseIdentity(this.config.poolSize);
      } catch (e) {
        unsandboxable = (e as Error).message;
      }
    }
    if (unsandboxable && setting === 'bwrap') throw new Error(`isolation "bwrap" was asked for but cannot be used: ${unsandboxable}`);
    const choice = identity
      ? await chooseIsolation(setting, this.layout, this.launcher, identity)
      : { mode: 'process' as const, reason: unsandboxable ?? 'chosen by the isolation setting', bwrap: null, identity: null };
    this.isolation = choice.mode;
    this.bwrap = choice.bwrap;
    this.identity = choice.identity;
    this.ids = this.identity?.mode === 'dedicated' ? new IdAllocator(this.identity) : null;
    if (this.identity) this.checkRuntimesReadable();
    const detected = await probeCgroups();
    this.cgroups = detected.manager;
    if (this.cgroups) {
      const stale = await this.cgroups.init();
      if (stale.staleRemoved > 0) {
        this.log.info(`removed ${stale.staleRemoved} cgroup(s) left by a server that was killed (${stale.processesKilled} process(es) killed)`);
      }
    }
    const cg = this.cgroups;
    const bw = this.isolation === 'bwrap';
    const ownIds = this.identity?.mode === 'dedicated';
    this.sandboxInfo = {
      isolation: this.isolation,
      reason: choice.reason,
      bwrap: this.bwrap,
      cgroup: cg?.version ?? null,
      hostUser: this.identity ? { mode: this.identity.mode, description: describeIdentity(this.identity) } : null,
      seccomp: bw ? seccomp : [],
      enforcement: {
        memory: cg?.memory
          ? `memory cgroup (${cg.version})`
          : 'RLIMIT_AS (python, shell, C, C++), --max-old-space-size (node), a 50 ms watchdog of the tree\'s private memory',
        processes: cg?.pids
          ? `pids cgroup (${cg.version})${bw ? ' + PID namespace' : ''}`
          : bw
            ? `RLIMIT_NPROC of the sandbox user${ownIds ? ' (its own host uid)' : ''} + PID namespace`
            : 'none: no pids cgroup is writable and RLIMIT_NPROC would count all of the user\'s processes',
        cpu: 'RLIMIT_CPU (SIGXCPU) + wall-clock timer',
        wall: bw ? 'timer kills the whole sandbox (PID namespace)' : 'timer kills the process group and tree',
        disk: bw ? 'tmpfs /work and /tmp of limits.diskMb each + RLIMIT_FSIZE' : 'RLIMIT_FSIZE only (work dir on the host disk)',
      },
      maxLimits: this.config.maxLimits,
    };
    this.log.info(`cgroups: ${cg ? `${cg.version} (memory ${cg.memory}, pids ${cg.pids})` : `none (${detected.reason})`}`);
    if (bw) {
      this.log.info(`isolation: bwrap (${choice.reason}); seccomp: ${seccomp.length} rules`);
      if (this.identity?.mode === 'server') this.log.warn(`sandboxed programs run as ${describeIdentity(this.identity)}`);
      else if (this.identity) this.log.info(`sandboxed programs run as ${describeIdentity(this.identity)}`);
    } else {
      this.log.warn(
        `isolation: process (${choice.reason}). Runs are plain child processes with rlimits: they can read and write what the server's user can and reach the network. Install bubblewrap to sandbox them.`,
      );
    }
    this.openAudit();
  }

  private openAudit(): void {
    this.audit?.close();
    this.audit = undefined;
    const a = this.config.audit;
    if (a.enabled === false) return;
    const file = a.path ?? defaultAuditPath();
    this.audit = new AuditLog({
      path: file,
      maxBytes: a.maxBytes,
      maxFiles: a.maxFiles,
      includeCode: a.includeCode,
      onError: (m) => this.log.warn(`audit log ${file}: ${m}`),
    });
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
    const audit: AuditContext = { code: params.code ?? null, limits: null };
    try {
      const allowed = this.rateLimit.take(1);
      if (!allowed.ok) {
        throw new Rejection(
          `rate limit: too many requests from this client; retry in ${allowed.retryAfterMs} ms (rateLimit setting)`,
          { retryAfterMs: allowed.retryAfterMs },
        );
      }
      const program = await this.program(params);
      audit.code = program.code;
      audit.limits = program.limits;
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
        result = { ...hit, runId, cached: true, workerId: null, findings: program.findings };
      } else {
        if (signal?.aborted) throw new DOMException('cancelled', 'AbortError');
        lease = await this.pool.acquire(signal);
        result = await this.run(runId, program, params, lease.workerId, signal, onOutput);
        result.findings = program.findings;
        if (key !== undefined) this.cache.store(key, result);
      }
    } catch (e) {
      result = this.failure(runId, language, e);
    }
    lease?.release(result.status !== 'ok');
    this.record(result, audit);
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
          this.record(results[i], { code: null, limits: null });
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
    return { languages: [...this.runtimes.values()].map(languageInfo), isolation: this.isolation, sandbox: this.sandboxInfo };
  }

  async configure(cfg: ServerConfig): Promise<void> {
    if (cfg.poolSize !== undefined || cfg.queueLimit !== undefined) {
      this.config.poolSize = cfg.poolSize ?? this.config.poolSize;
      this.config.queueLimit = cfg.queueLimit ?? this.config.queueLimit;
      this.pool.resize(this.config.poolSize, this.config.queueLimit);
    }
    if (cfg.limits) this.config.limits = { ...this.config.limits, ...cfg.limits };
    if (cfg.maxLimits) {
      this.config.maxLimits = resolveMaxLimits(cfg.maxLimits);
      this.sandboxInfo.maxLimits = this.config.maxLimits;
    }
    if (cfg.scanPolicy) this.config.scanPolicy = cfg.scanPolicy;
    if (cfg.rateLimit) this.rateLimit.configure({ ...DEFAULT_RATE_LIMIT, ...cfg.rateLimit });
    if (cfg.audit) {
      this.config.audit = { ...cfg.audit };
      this.openAudit();
    }
    if (cfg.isolation && cfg.isolation !== 'auto' && cfg.isolation !== this.isolation) {
      this.log.warn(`isolation "${cfg.isolation}" takes effect when the server restarts (it is ${this.isolation} now)`);
    }
    if (cfg.cache) this.cache.configure({ ...DEFAULT_CACHE, ...cfg.cache });
    if (cfg.executorMap) {
      this.runtimes = await resolveRuntimes(cfg.executorMap);
      this.checkRuntimesReadable();
    }
    this.changed();
  }

  /** Kills every run and removes every file the engine made. Synchronous: safe in a process 'exit' handler. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.executor.dispose();
    this.cgroups?.disposeSync();
    this.audit?.close();
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
    // With ids of their own, sandboxed programs read the workspace as any other user of this machine would.
    if (params.workspace !== undefined) await checkWorkspace(params.workspace, this.isolation === 'bwrap' && this.ids !== null);
    const code = params.code ?? (await readProgramFile(params.file ?? ''));
    if (Buffer.byteLength(code) > MAX_CODE_BYTES) {
      throw new Rejection(`the program is larger than ${MAX_CODE_BYTES} bytes`);
    }
    if (params.stdin !== undefined && Buffer.byteLength(params.stdin) > MAX_STDIN_BYTES) {
      throw new Rejection(`stdin is larger than ${MAX_STDIN_BYTES} bytes`);
    }
    const argBytes = (params.args ?? []).reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
    if (argBytes > MAX_ARGS_BYTES) throw new Rejection(`the arguments are larger than ${MAX_ARGS_BYTES} bytes`);
    let limits: Limits;
    try {
      limits = resolveLimits(runtime.id, this.config.limits, params.limits, this.config.maxLimits);
    } catch (e) {
      if (e instanceof LimitError) throw new Rejection(e.message);
      throw e;
    }
    const findings = this.config.scanPolicy === 'off' ? [] : this.scan(runtime.id, code);
    if (this.config.scanPolicy === 'block') {
      const blocking = blockingFindings(findings);
      if (blocking.length > 0) {
        throw new Rejection(`blocked by the security scan (scanPolicy "block"):\n${describeFindings(blocking)}`, { findings });
      }
    }
    return { runtime, code, limits, findings };
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
      const prepared = await this.prepare(runtime, program.code, file, workDir, limits, signal, workerId);
      if ('status' in prepared) return this.result(runId, runtime.id, workerId, prepared.status, prepared.outcome, prepared.message);
      const sandboxed = this.isolation === 'bwrap';
      const compiled = runtime.preparation.kind === 'compile';
      // A program in the work dir (the cwd) is named relatively, so tracebacks say `main.py`, not a server path. In
      // a sandbox the program (or the compiled binary) is bound read-only into the sandbox's own /work.
      const boxName = compiled ? 'main' : path.basename(prepared.file);
      const target = sandboxed
        ? compiled
          ? path.posix.join(BOX_WORK, boxName)
          : boxName
        : path.dirname(prepared.file) === workDir
          ? path.basename(prepared.file)
          : prepared.file;
      const [command, ...args] = commandLine(runtime, target, params.args ?? []);
      const outcome = await this.spawn(runId, {
        command: command!,
        args: this.memoryFlags(runtime, limits, args),
        cwd: workDir,
        env: this.runEnv(workDir, runtime),
        stdin: params.stdin ?? null,
        timeoutMs: limits.timeoutMs,
        memoryBytes: limits.memoryMb * 1024 * 1024,
        outputBytes: limits.outputBytes,
        rlimits: this.rlimits(runtime, limits, limits.memoryMb),
        signal,
        onOutput: onOutput && ((stream, chunk) => onOutput(runId, stream, chunk)),
      }, limits, {
        workerId,
        runtime,
        files: [{ host: prepared.file, name: boxName }],
        workspace: params.workspace,
      });
      return this.result(runId, runtime.id, workerId, this.verdict(runtime, outcome, limits), outcome, this.explain(outcome, limits));
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  /** A run's environment: in a sandbox HOME is its /work and TMPDIR its /tmp; otherwise both are the host work dir. */
  private runEnv(workDir: string, runtime: Runtime): Record<string, string> {
    return this.isolation === 'bwrap' ? sandboxEnv(BOX_WORK, runtime, '/tmp') : sandboxEnv(workDir, runtime);
  }

  /** node without a memory cgroup: V8's heap limit is what holds it (RLIMIT_AS would break V8's reservations). */
  private memoryFlags(runtime: Runtime, limits: Limits, args: string[]): string[] {
    if (this.cgroups?.memory || runtime.source !== 'builtin' || !V8_RUNTIMES.has(runtime.id)) return args;
    const heapMb = Math.max(8, Math.floor(limits.memoryMb * 0.75));
    return [`--max-old-space-size=${heapMb}`, ...args];
  }

  /** The rlimits of a run: address space for runtimes that tolerate it, CPU, file size, open files, core dumps
   *  off; and, inside a sandbox's own user namespace, a process count. */
  private rlimits(runtime: Runtime | undefined, limits: Limits, memoryMb: number): NonNullable<ExecSpec['rlimits']> {
    return {
      ...(runtime ? rlimitsFor(runtime, memoryMb) : { as: memoryMb * 1024 * 1024 }),
      cpu: Math.ceil(limits.cpuMs / 1000),
      fsize: limits.fileSizeMb * 1024 * 1024,
      nofile: limits.openFiles,
      core: 0,
      // RLIMIT_NPROC counts every process of the real uid in its user namespace: in a sandbox that is the run alone,
      // pid 1 included (hence + 1), and never root, whom the kernel would exempt.
      ...(this.isolation === 'bwrap' ? { nproc: limits.processes + 1 } : {}),
    };
  }

  /** Runs one command the way this server isolates: forked by its worker's zygote (which lives in the worker's
   *  cgroup and user namespace) and, in the bwrap mode, in a fresh sandbox. */
  private async spawn(
    runId: string,
    spec: ExecSpec,
    limits: Limits,
    box: { workerId: string; runtime: Runtime; files: { host: string; name: string }[]; workspace?: string; writableWorkDir?: string },
  ): Promise<ExecOutcome> {
    let cgroup: RunCgroup | undefined;
    const sandboxed = this.isolation === 'bwrap' && this.layout !== undefined && this.bwrap !== null;
    // The worker's own ids: its zygote makes and enters a user namespace that maps the sandbox user onto them.
    const ownIds = sandboxed && this.ids !== null && this.identity !== null;
    const zygoteArgs = ownIds ? identityArgs(this.identity!, this.ids!.idsFor(box.workerId)) : [];
    try {
      if (this.cgroups) {
        // The worker's group: its zygote lives there, so the run is born in it (no per-run move, see cgroup.ts).
        // The zygote and the launcher (and, in a sandbox, bwrap and its init) don't count against the run.
        const worker = this.cgroups.worker(box.workerId);
        cgroup = worker.begin(
          { memoryBytes: limits.memoryMb * 1024 * 1024, processes: limits.processes },
          sandboxed ? 4 : 2,
        );
        zygoteArgs.push(...worker.procsFiles);
      }
      spec.slot = { id: box.workerId, args: zygoteArgs };
      if (sandboxed) {
        const roots = new Set<string>();
        for (const b of [box.runtime.binary, box.runtime.preparation.kind === 'compile' ? box.runtime.preparation.compiler : null]) {
          const root = runtimeRoot(b, this.layout!);
          if (root) roots.add(root);
        }
        spec.sandbox = bwrapArgs({
          bwrap: this.bwrap!,
          layout: this.layout!,
          userns: ownIds ? 'worker' : 'per-run',
          runtimeRoots: [...roots],
          files: box.files,
          writableWorkDir: box.writableWorkDir,
          workspace: box.workspace,
          diskBytes: limits.diskMb * 1024 * 1024,
          env: spec.env,
        });
      }
      // Where the memory cgroup holds the run, the kernel's count is the honest one: the watchdog sums the
      // resident memory of every process, so 32 forks sharing one interpreter's pages (copy-on-write) would look
      // like 32 interpreters and end a fork bomb as `memory_limit` far below the limit. It backs up the rest only.
      const memoryBytes = cgroup && this.cgroups?.memory ? Number.POSITIVE_INFINITY : spec.memoryBytes;
      return await this.executor.run({ ...spec, cgroup, memoryBytes });
    } finally {
      // Whatever is still in the cgroup goes now: when the result is returned, no process of the run exists.
      if (cgroup) {
        const swept = await cgroup.destroy(this.executor.zygotePids);
        if (swept.error) this.log.warn(`run ${runId}: cgroup not removed: ${swept.error}`);
      }
    }
  }

  /** With ids of their own, sandboxed programs read a runtime as any other user would: say so at start when one
   *  cannot be (a prefix installed with umask 077), rather than fail every run with a permission error. */
  private checkRuntimesReadable(): void {
    if (this.identity?.mode !== 'dedicated') return;
    for (const r of this.runtimes.values()) {
      if (!r.available || !r.binary) continue;
      try {
        const mode = statSync(r.binary).mode;
        if ((mode & 0o001) === 0) {
          this.log.warn(`${r.id}: ${r.binary} is not executable by other users (mode ${(mode & 0o777).toString(8)}), so sandboxed runs cannot start it: chmod o+rx it and its directories`);
        }
      } catch {
        // resolveRuntimes said it is there; a race with an uninstall is not ours to report
      }
    }
  }

  /** The scan of a program, remembered by its hash: a re-run (or a cached result) doesn't pay for it again, and a
   *  large program costs tens of milliseconds of the server's only thread. */
  private scan(language: string, code: string): Finding[] {
    const key = createHash('sha256').update(language).update('\0').update(code).digest('hex');
    let findings = this.scans.get(key);
    if (!findings) {
      findings = scanProgram(language, code);
      this.scans.set(key, findings);
    }
    return findings;
  }

  /** The message of a run that hit a limit: which one, and how much it was. */
  private explain(o: ExecOutcome, limits: Limits): string | undefined {
    if (o.error) return o.error;
    if (cpuLimitHit(o, limits)) return `CPU time limit of ${limits.cpuMs} ms reached`;
    if (o.end === 'timeout') return `wall-clock limit of ${limits.timeoutMs} ms reached`;
    if (o.end === 'memory_limit' || o.oomKilled) return `memory limit of ${limits.memoryMb} MiB reached`;
    return undefined;
  }

  /** Writes the program and, where the language needs it, transpiles or compiles it. */
  private async prepare(
    runtime: Runtime,
    code: string,
    file: string,
    workDir: string,
    limits: Limits,
    signal: AbortSignal | undefined,
    workerId: string,
  ): Promise<{ file: string } | { status: RunStatus; outcome?: ExecOutcome; message: string }> {
    const prep = runtime.preparation;
    if (prep.kind === 'none') {
      await writePublicFile(file, code, 0o644);
      return { file };
    }
    if (prep.kind === 'transpile-ts') {
      const esbuild = await import('esbuild');
      try {
        const out = await esbuild.transform(code, { loader: 'ts', format: 'cjs', target: 'node20', sourcefile: 'main.ts' });
        await writePublicFile(file, out.code, 0o644);
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
    if (cached) return { file: cached.file };
    const underWay = this.compiling.get(key);
    if (underWay) {
      const shared = await underWay;
      // A compile error is the source's own; a compile that was cut short (timeout, cancel) was the other run's:
      // then this run compiles for itself, under its own limits.
      if ('file' in shared || shared.status === 'compile_error') return shared;
    }
    const compile = this.compile(runtime, prep, key, code, workDir, limits, signal, workerId);
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
    workerId: string,
  ): Promise<{ file: string } | { status: RunStatus; outcome?: ExecOutcome; message: string }> {
    const ext = path.extname(runtime.fileName);
    const source = path.join(workDir, `main${ext}`);
    await writePublicFile(source, code, 0o644);
    // The compiler writes its output into this dir as the sandbox user: with ids of their own, another uid than
    // ours. Open to all, inside the server's private (0700) work root, which no other host user can enter.
    if (this.isolation === 'bwrap' && this.ids) await chmod(workDir, 0o777);
    const out = path.join(workDir, 'main');
    // Relative names (the compiler runs in the work dir) keep server paths out of the compiler's messages.
    const flags = prep.flags.map((f) => (f === '$out' ? 'main' : f === '$file' ? path.basename(source) : f));
    const compileStarted = performance.now();
    const memoryMb = Math.max(limits.memoryMb, COMPILE_MEMORY_FLOOR_MB);
    // The compiler is untrusted input's first reader (`#include "/dev/random"`): it runs sandboxed too, with the
    // run's limits (more memory), in a work dir of its own that we read the binary back from.
    const compileLimits: Limits = { ...limits, memoryMb, processes: Math.max(limits.processes, 16), cpuMs: limits.timeoutMs };
    const outcome = await this.spawn(`compile-${key.slice(0, 12)}`, {
      command: prep.compiler,
      args: flags,
      cwd: workDir,
      env: this.runEnv(workDir, runtime),
      stdin: null,
      timeoutMs: limits.timeoutMs,
      memoryBytes: memoryMb * 1024 * 1024,
      outputBytes: limits.outputBytes,
      rlimits: this.rlimits(undefined, compileLimits, memoryMb),
      signal,
    }, compileLimits, { workerId, runtime, files: [], writableWorkDir: workDir });
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
    let bytes: number;
    try {
      bytes = await copyRegularFile(out, temp, BINARY_CACHE_BYTES);
    } catch (e) {
      return { status: 'compile_error', outcome, message: `the compiler's output is not a program: ${(e as Error).message}` };
    }
    await rename(temp, kept);
    this.binaries.set(key, { file: kept, bytes });
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
        if (o.oomKilled) return 'memory_limit';
        if (cpuLimitHit(o, limits)) return 'timeout';
        if (runtime.outOfMemory?.test(o.stderr)) return 'memory_limit';
        // A failed run that filled its limit ran out of memory, even when no OOM kill was counted: an allocation
        // refused by RLIMIT_AS ends a program with its own error (bash segfaults, C gets NULL from malloc).
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
      findings: [],
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
    if (message && (status === 'compile_error' || status === 'internal_error' || status === 'timeout' || status === 'cancelled' || status === 'memory_limit')) {
      r.message = message;
    }
    return r;
  }

  private rejected(runId: string, language: string, message: string): ExecutionResult {
    return { ...this.result(runId, language, '', 'rejected', undefined, undefined), workerId: null, message };
  }

  private failure(runId: string, language: string, e: unknown): ExecutionResult {
    if (e instanceof Rejection) {
      const r = this.rejected(runId, language, e.message);
      if (e.extra.findings) r.findings = e.extra.findings;
      if (e.extra.retryAfterMs !== undefined) r.retryAfterMs = e.extra.retryAfterMs;
      return r;
    }
    if (e instanceof QueueFullError) return this.rejected(runId, language, e.message);
    if ((e as { name?: string })?.name === 'AbortError') {
      return { ...this.result(runId, language, '', 'cancelled', undefined, 'cancelled before it started'), workerId: null };
    }
    const message = `internal error: ${(e as Error)?.message ?? String(e)}`;
    this.log.error(`run ${runId}: ${(e as Error)?.stack ?? message}`);
    return { ...this.result(runId, language, '', 'internal_error', undefined, message), workerId: null };
  }

  private record(r: ExecutionResult, ctx: AuditContext): void {
    this.audit?.append(
      auditRecord(r, { code: ctx.code, limits: ctx.limits, client: this.client, includeCode: this.config.audit.includeCode === true }),
    );
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
 * The program hit RLIMIT_CPU: SIGXCPU at the soft limit or, for a program that ignores or handles SIGXCPU, the
 * kernel's SIGKILL at the hard limit (one second later, see launcher.c) after it used more CPU than the soft limit.
 * Nobody else sends that SIGKILL to an `exited` run: the server's kills end as timeout/cancelled/…, and an OOM kill
 * is told apart before this is asked.
 */
function cpuLimitHit(o: ExecOutcome, limits: Limits): boolean {
  if (o.signal === 'SIGXCPU') return true;
  return o.end === 'exited' && o.signal === 'SIGKILL' && !o.oomKilled && o.cpuMs >= Math.ceil(limits.cpuMs / 1000) * 1000;
}

/**
 * A run's workspace must be an absolute path of an existing directory. In the `process` isolation mode that is all
 * (the run can read it like any file of the server's user); the bubblewrap mode binds it read-only, and where the
 * sandbox user is a uid of its own (`othersRead`), it must be open to other users: a run could not even list it.
 */
async function checkWorkspace(dir: string, othersRead: boolean): Promise<void> {
  if (!path.isAbsolute(dir)) throw new Rejection(`workspace must be an absolute path, got "${dir}"`);
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new Rejection(`workspace ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new Rejection(`workspace ${dir} is not a directory`);
  if (othersRead && (st.mode & 0o005) !== 0o005) {
    throw new Rejection(
      `workspace ${dir} cannot be read in the sandbox: its mode is ${(st.mode & 0o777).toString(8).padStart(4, '0')}, and sandboxed ` +
        `programs run as a user of their own, who reads what any user of this machine may; make it readable (chmod -R o+rX ${dir})`,
    );
  }
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
    // O_NONBLOCK: a FIFO swapped in since the lstat must not hold the open (it is then refused as not a file).
    const fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    try {
      if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new Rejection(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The whole environment of a sandboxed program: an allow-list, nothing of the server's own. */
export function sandboxEnv(workDir: string, runtime: Runtime, tmpDir = workDir): Record<string, string> {
  const binDir = runtime.binary ? path.dirname(runtime.binary) : undefined;
  const PATH = [binDir, '/usr/local/bin', '/usr/bin', '/bin'].filter((d, i, all) => d && all.indexOf(d) === i).join(':');
  return {
    PATH,
    HOME: workDir,
    TMPDIR: tmpDir,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TERM: 'dumb',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONIOENCODING: 'utf-8',
  };
}

/** Writes a new file with exactly `mode`, whatever the server's umask: the sandbox user (another uid) reads it. */
async function writePublicFile(file: string, data: string | Buffer, mode: number): Promise<void> {
  await writeFile(file, data, { mode, flag: 'wx' });
  await chmod(file, mode);
}

/** Copies a file the compiler wrote, refusing anything but a regular file of at most `maxBytes` (a symlink planted in
 *  the work dir must not make the server read or copy its target; a FIFO must not hold the open, hence
 *  O_NONBLOCK). Returns its size. */
async function copyRegularFile(from: string, to: string, maxBytes: number): Promise<number> {
  const src = await open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await src.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > maxBytes) throw new Error(`it is ${Math.ceil(st.size / 1048576)} MiB, more than the ${maxBytes / 1048576} MiB the server keeps of compiled programs`);
    const data = await src.readFile();
    await writePublicFile(to, data, 0o755);
    return data.length;
  } finally {
    await src.close();
  }
}

/** Removes work roots (`sbx-*` in the temp dir) whose server is gone: a server killed with SIGKILL leaves its own. */
export function sweepStaleWorkRoots(tmpDir: string, own: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(tmpDir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(WORK_ROOT_PREFIX)) continue;
    const dir = path.join(tmpDir, name);
    if (dir === own) continue;
    let pid: number;
    try {
      pid = Number(readFileSync(path.join(dir, 'server.pid'), 'utf8'));
    } catch {
      continue; // not ours, or made by an older version: leave it
    }
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) continue;
    rmSync(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
