/**
 * Runs one command as a timeout-controlled child process tree and reports how it ended, with the kernel's own
 * accounting of CPU time and peak memory.
 *
 * The command is started through `sbx-launch` (server/launcher.c), forked by its zygote (server/spawner.ts), which
 * puts it in a process group of its own, applies rlimits, waits for it and writes its pid, exit status and rusage
 * on fd 3; it is a subreaper and kills every process of the run before it reports. While the run
 * lives, a shared UsageSampler samples its process tree with pidusage every 50 ms (memory watchdog, CPU of runs
 * that are killed); when it ends, the launcher's rusage is what we report, so a run that ends between two samples
 * still reports what the kernel accounted for it.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Socket } from 'node:net';
import type { RunCgroup } from './cgroup';
import { BOX_LAUNCHER } from './isolation';
import { killGroup, killTree, UsageSampler } from './processTree';
import { Spawner, type StreamName } from './spawner';

export type ExecEnd = 'exited' | 'timeout' | 'output_limit' | 'memory_limit' | 'cancelled' | 'spawn_error';

export type Rlimits = Partial<Record<'as' | 'cpu' | 'fsize' | 'nofile' | 'nproc' | 'core', number>>;

export interface ExecSpec {
  command: string;
  args: string[];
  cwd: string;
  /** The child's whole environment: nothing of the server's leaks in. */
  env: Record<string, string>;
  /** Text for stdin, or null to give the program an empty, closed stdin. */
  stdin: string | null;
  timeoutMs: number;
  /** The memory watchdog kills the run when the resident memory of its tree passes this. */
  memoryBytes: number;
  /** Cap per stream, in bytes. */
  outputBytes: number;
  rlimits?: Rlimits;
  /** The bwrap mode: bubblewrap's argv up to its `--` (server/isolation.ts). The program then runs under the
   *  launcher's `--init` mode, pid 1 of the sandbox, which applies the rlimits and reports the program's own end. */
  sandbox?: string[];
  /** The run's cgroup: the program joins it before it execs (unless it is born in it: `slot`); its counters give
   *  peak memory, CPU and OOM kills. The caller creates it and destroys it after the run. */
  cgroup?: RunCgroup;
  /** The pool worker's zygote to fork the run from, the cgroups that zygote lives in, and whether it has a network
   *  namespace of its own (its sandboxes then share it instead of making one each). */
  slot?: { id: string; join: string[]; network?: boolean };
  signal?: AbortSignal;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: string) => void;
}

export interface ExecOutcome {
  end: ExecEnd;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
  cpuMs: number;
  peakMemoryBytes: number;
  /** The kernel OOM-killed a process of the run (its memory cgroup was full). */
  oomKilled: boolean;
  /** Why the command could not be started (spawn_error). */
  error?: string;
}

export interface ExecutorOptions {
  /** Path of the compiled sbx-launch binary. */
  launcher: string;
  /** A private directory for the launcher's socket. */
  socketDir: string;
  sampler?: UsageSampler;
  /** After a kill, how long to wait for the launcher's report before killing the launcher too. */
  killGraceMs?: number;
}

const SIGNAL_NAMES: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  24: 'SIGXCPU', 25: 'SIGXFSZ', 31: 'SIGSYS',
};

export function signalName(n: number): string {
  return SIGNAL_NAMES[n] ?? `SIG${n}`;
}

/** What a launcher wrote on fd 3 about its program. */
export interface ProgramReport {
  execError?: string;
  exitCode?: number;
  signal?: number;
  cpuMs?: number;
  maxRssBytes?: number;
}

/** The outer launcher's report (about bwrap, in the bwrap mode) and, inside a sandbox, the inner one's
 *  (`inner-…` lines: about the program itself). */
export interface LaunchReport extends ProgramReport {
  pid?: number;
  inner?: ProgramReport;
}

export function parseLaunchReport(text: string, into: LaunchReport = {}): LaunchReport {
  for (const line of text.split('\n')) {
    const [first, ...rest] = line.split(' ');
    let word = first;
    let target: ProgramReport = into;
    if (word?.startsWith('inner-')) {
      word = word.slice('inner-'.length);
      target = into.inner ??= {};
    } else if (word === 'pid') {
      into.pid = Number(rest[0]);
      continue;
    }
    if (word === 'exec-error') target.execError = rest.slice(1).join(' ');
    else if (word === 'exit') target.exitCode = Number(rest[0]);
    else if (word === 'signal') target.signal = Number(rest[0]);
    else if (word === 'rusage') {
      target.cpuMs = (Number(rest[0]) + Number(rest[1])) / 1000;
      target.maxRssBytes = Number(rest[2]) * 1024;
    }
  }
  return into;
}

/** Keeps at most `cap` bytes of a stream; reports whether more came. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly cap: number) {}

  /** Returns the decoded text of the part that was kept (for live streaming). */
  push(chunk: Buffer): string {
    const room = this.cap - this.size;
    if (chunk.length > room) this.truncated = true;
    const kept = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
    if (kept.length === 0) return '';
    this.chunks.push(kept);
    this.size += kept.length;
    return this.decoder.write(kept);
  }

  /** At the end of the stream: what the decoder still holds (an incomplete character decodes to U+FFFD, as it
   *  does in text()). Nothing after a truncation: text() drops a cut character there. */
  flush(): string {
    return this.truncated ? '' : this.decoder.end();
  }

  /** The kept bytes as text. Invalid or cut UTF-8 decodes to U+FFFD, which may take more bytes than it replaced:
   *  the text is trimmed again so that what we return never passes the cap. */
  text(): string {
    const text = Buffer.concat(this.chunks, this.size).toString('utf8');
    if (Buffer.byteLength(text) <= this.cap) return text;
    this.truncated = true;
    let end = this.cap;
    const bytes = Buffer.from(text);
    while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back to the start of a character
    return bytes.subarray(0, end).toString('utf8');
  }
}

const STREAM_DRAIN_MS = 200;

export class Executor {
  private readonly sampler: UsageSampler;
  private readonly killGraceMs: number;
  private readonly spawner: Spawner;
  /** Launcher pid → kill function, for every run in flight: killed all at once on shutdown. */
  private readonly live = new Map<number, () => void>();

  constructor(opts: ExecutorOptions) {
    this.sampler = opts.sampler ?? new UsageSampler(50);
    this.killGraceMs = opts.killGraceMs ?? 1000;
    this.spawner = new Spawner(opts.launcher, opts.socketDir);
  }

  get running(): number {
    return this.live.size;
  }

  /** The zygote of runs without a slot (for tests). */
  get zygotePid(): number | undefined {
    return this.spawner.zygotePids[0];
  }

  /** Every zygote's pid: they live in the workers' cgroups, and a cgroup sweep must leave them be. */
  get zygotePids(): number[] {
    return this.spawner.zygotePids;
  }

  /** Kills every run in flight and the zygote, synchronously (safe in a process 'exit' handler). */
  killAll(): void {
    for (const kill of this.live.values()) kill();
  }

  dispose(): void {
    this.killAll();
    this.spawner.dispose();
  }

  async run(spec: ExecSpec): Promise<ExecOutcome> {
    const rlimitArgs: string[] = [];
    for (const [name, value] of Object.entries(spec.rlimits ?? {})) {
      if (value !== undefined) rlimitArgs.push('-r', `${name}=${Math.max(0, Math.floor(value))}`);
    }
    const launcherArgs: string[] = [];
    for (const procs of spec.cgroup?.procsFiles ?? []) launcherArgs.push('-c', procs);
    if (spec.sandbox) {
      launcherArgs.push('-k', '--', ...spec.sandbox, BOX_LAUNCHER, '--init', ...rlimitArgs, '--', spec.command, ...spec.args);
    } else {
      launcherArgs.push(...rlimitArgs, '--', spec.command, ...spec.args);
    }

    const out = new CappedBuffer(spec.outputBytes);
    const err = new CappedBuffer(spec.outputBytes);
    const report: LaunchReport = {};
    let reportText = '';
    let end: ExecEnd | undefined;
    let peakSampled = 0;
    let cpuSampled = 0;
    let stopSampling: (() => void) | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    /** Known once the zygote has forked the launcher; the kill path may run before that. */
    const launcher = { pid: 0 };
    const sockets: Socket[] = [];

    const kill = (reason: ExecEnd): void => {
      if (end === undefined) end = reason;
      if (report.pid) killTree(report.pid);
      if (launcher.pid && !graceTimer) {
        // The launcher reports and exits once its program is dead; if it doesn't, it goes too.
        const pid = launcher.pid;
        graceTimer = setTimeout(() => killGroup(pid), report.pid ? this.killGraceMs : 0);
        graceTimer.unref();
      }
    };

    const onReport = (chunk: Buffer): void => {
      reportText += chunk.toString('utf8');
      const nl = reportText.lastIndexOf('\n');
      if (nl < 0) return;
      parseLaunchReport(reportText.slice(0, nl), report);
      reportText = reportText.slice(nl + 1);
      if (report.pid && !stopSampling) {
        stopSampling = this.sampler.track(report.pid, (sample) => {
          peakSampled = Math.max(peakSampled, sample.rssBytes);
          cpuSampled = Math.max(cpuSampled, sample.cpuMs);
          if (sample.rssBytes > spec.memoryBytes) kill('memory_limit');
        });
        if (end !== undefined) killTree(report.pid); // a kill was asked before the pid was known
      }
    };

    // Each stream is done at its end (or when the drain after exit gives up on it).
    const doneOf = {} as Record<'out' | 'err' | 'rep', () => void>;
    const streamsDone = Promise.all(
      (['out', 'err', 'rep'] as const).map((n) => new Promise<void>((resolve) => (doneOf[n] = resolve))),
    );
    const onStream = (name: StreamName, socket: Socket): void => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      if (name === 'in') {
        socket.end(spec.stdin ?? ''); // then end-of-file: the program never waits for more
        return;
      }
      socket.once('end', () => {
        if (name !== 'rep') {
          const buf = name === 'out' ? out : err;
          const rest = buf.flush();
          if (rest && spec.onOutput) spec.onOutput(name === 'out' ? 'stdout' : 'stderr', rest);
        }
        doneOf[name]();
      });
      socket.once('close', () => doneOf[name]());
      if (name === 'rep') {
        socket.on('data', onReport);
      } else {
        const buf = name === 'out' ? out : err;
        const stream = name === 'out' ? 'stdout' : 'stderr';
        socket.on('data', (chunk: Buffer) => {
          const text = buf.push(chunk);
          if (text && spec.onOutput) spec.onOutput(stream, text);
          if (buf.truncated) kill('output_limit');
        });
      }
      socket.resume();
    };

    const started = performance.now();
    let spawned;
    try {
      spawned = await this.spawner.spawn({
        slot: spec.slot,
        cwd: spec.cwd,
        env: spec.env,
        launcherArgs,
        withStdin: spec.stdin !== null,
        onStream,
      });
    } catch (e) {
      for (const s of sockets) s.destroy();
      return this.spawnError(spec, (e as Error).message, started);
    }
    launcher.pid = spawned.pid;
    this.live.set(launcher.pid, () => kill('cancelled'));

    const timer = setTimeout(() => kill('timeout'), spec.timeoutMs);
    const onAbort = (): void => kill('cancelled');
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener('abort', onAbort, { once: true });

    const exit = await spawned.exited;
    const durationMs = performance.now() - started;
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    // The launcher killed every process of the run before it ended. If the launcher itself was killed (a kill
    // path, or a program that shot it), sweep the group and the tree from here. Then let the streams drain.
    if (report.pid && (end !== undefined || exit.code === null)) killTree(report.pid);
    else if (report.pid) killGroup(report.pid);
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([streamsDone, new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, STREAM_DRAIN_MS)))]);
    clearTimeout(drainTimer);
    for (const s of sockets) s.destroy();
    spawned.release();
    if (reportText) parseLaunchReport(reportText, report);
    stopSampling?.();
    if (graceTimer) clearTimeout(graceTimer);
    this.live.delete(launcher.pid);

    if (report.execError !== undefined && end === undefined) {
      return this.spawnError(spec, `could not start ${report.execError}`, started);
    }
    // In a sandbox, the program's own story is the inner launcher's; bwrap's exit code can't tell a signal apart.
    const program: ProgramReport = spec.sandbox ? (report.inner ?? {}) : report;
    if (spec.sandbox && program.execError !== undefined && end === undefined) {
      return this.spawnError(spec, `could not start ${program.execError}`, started);
    }
    if (spec.sandbox && end === undefined && program.exitCode === undefined && program.signal === undefined) {
      // bwrap itself failed (a bind source missing, namespaces refused): it said why on stderr.
      const said = err.text().trim().split('\n').filter((l) => l.startsWith('bwrap:')).join('; ');
      return this.spawnError(spec, `the sandbox did not start: ${said || `bwrap ended with ${report.exitCode ?? report.signal}`}`, started);
    }

    let exitCode: number | null = null;
    let signal: string | null = null;
    if (program.signal !== undefined) signal = signalName(program.signal);
    else if (program.exitCode !== undefined) exitCode = program.exitCode;
    else signal = 'SIGKILL'; // the launcher was killed before it could report: so was its program

    // The cgroup saw every process of the run, page cache and tmpfs included: its counters are the honest ones.
    const group = spec.cgroup ? await spec.cgroup.stats().catch(() => undefined) : undefined;

    return {
      end: end ?? 'exited',
      exitCode,
      signal,
      stdout: out.text(),
      stderr: err.text(),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      durationMs: Math.round(durationMs * 100) / 100,
      cpuMs: Math.round((program.cpuMs ?? Math.max(group?.cpuMs ?? 0, cpuSampled)) * 100) / 100,
      // With a memory cgroup, the peak is what the run added to its worker's group: the memory the limit governs.
      // (A process's RSS also counts shared pages that other runs already brought in — node's own binary, libc —
      // which the limit doesn't, so it can pass the limit without the limit having been passed.)
      peakMemoryBytes: group?.peakMemoryBytes ? group.peakMemoryBytes : Math.max(program.maxRssBytes ?? 0, peakSampled),
      oomKilled: (group?.oomKills ?? 0) > 0,
    };
  }

  private spawnError(spec: ExecSpec, message: string, started: number): ExecOutcome {
    return {
      end: 'spawn_error',
      exitCode: null,
      signal: null,
      stdout: '',
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      durationMs: performance.now() - started,
      cpuMs: 0,
      peakMemoryBytes: 0,
      oomKilled: false,
      error: message.startsWith('could not start') ? message : `could not start ${spec.command}: ${message}`,
    };
  }
}
