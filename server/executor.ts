/**
 * Runs one command as a timeout-controlled child process tree and reports how it ended, with the kernel's own
 * accounting of CPU time and peak memory.
 *
 * The command is started through `sbx-launch` (server/launcher.c), which puts it in a process group of its own,
 * applies rlimits, waits for it with wait4() and writes its pid, exit status and rusage on fd 3. While the run
 * lives, a shared UsageSampler samples its process tree with pidusage every 50 ms (memory watchdog, CPU of runs
 * that are killed); when it ends, the launcher's rusage is what we report, so a run that ends between two samples
 * still reports what the kernel accounted for it.
 */
import { execa } from 'execa';
import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';
import { killGroup, killTree, UsageSampler } from './processTree';

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
  /** Why the command could not be started (spawn_error). */
  error?: string;
}

export interface ExecutorOptions {
  /** Path of the compiled sbx-launch binary. */
  launcher: string;
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

/** What the launcher wrote on fd 3. */
export interface LaunchReport {
  pid?: number;
  execError?: string;
  exitCode?: number;
  signal?: number;
  cpuMs?: number;
  maxRssBytes?: number;
}

export function parseLaunchReport(text: string, into: LaunchReport = {}): LaunchReport {
  for (const line of text.split('\n')) {
    const [word, ...rest] = line.split(' ');
    if (word === 'pid') into.pid = Number(rest[0]);
    else if (word === 'exec-error') into.execError = rest.slice(1).join(' ');
    else if (word === 'exit') into.exitCode = Number(rest[0]);
    else if (word === 'signal') into.signal = Number(rest[0]);
    else if (word === 'rusage') {
      into.cpuMs = (Number(rest[0]) + Number(rest[1])) / 1000;
      into.maxRssBytes = Number(rest[2]) * 1024;
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
  /** Launcher pid → kill function, for every run in flight: killed all at once on shutdown. */
  private readonly live = new Map<number, () => void>();

  constructor(private readonly opts: ExecutorOptions) {
    this.sampler = opts.sampler ?? new UsageSampler(50);
    this.killGraceMs = opts.killGraceMs ?? 1000;
  }

  get running(): number {
    return this.live.size;
  }

  /** Kills every run in flight, synchronously (safe in a process 'exit' handler). */
  killAll(): void {
    for (const kill of this.live.values()) kill();
  }

  async run(spec: ExecSpec): Promise<ExecOutcome> {
    const launcherArgs: string[] = [];
    for (const [name, value] of Object.entries(spec.rlimits ?? {})) {
      if (value !== undefined) launcherArgs.push('-r', `${name}=${Math.max(0, Math.floor(value))}`);
    }
    launcherArgs.push('--', spec.command, ...spec.args);

    const started = performance.now();
    const child = execa(this.opts.launcher, launcherArgs, {
      cwd: spec.cwd,
      env: spec.env,
      extendEnv: false,
      stdio: [spec.stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      detached: true, // the launcher leads a session of its own: the server's signals don't reach it by accident
      cleanup: true,
      encoding: 'buffer',
    });
    // Every outcome is read from events below; the promise only must not be left unhandled.
    child.catch(() => undefined);

    const out = new CappedBuffer(spec.outputBytes);
    const err = new CappedBuffer(spec.outputBytes);
    const report: LaunchReport = {};
    let reportText = '';
    let end: ExecEnd | undefined;
    let peakSampled = 0;
    let cpuSampled = 0;
    let stopSampling: (() => void) | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const launcherPid = child.pid;

    const kill = (reason: ExecEnd): void => {
      if (end === undefined) end = reason;
      if (report.pid) killTree(report.pid);
      if (launcherPid && !graceTimer) {
        // The launcher reports and exits once its program is dead; if it doesn't, it goes too.
        graceTimer = setTimeout(() => {
          try {
            process.kill(-launcherPid, 'SIGKILL');
          } catch {
            // already gone
          }
        }, report.pid ? this.killGraceMs : 0);
        graceTimer.unref();
      }
    };

    if (launcherPid === undefined) {
      return new Promise((resolve) => {
        child.once('error', (e: Error) => resolve(this.spawnError(spec, e.message, started)));
      });
    }
    this.live.set(launcherPid, () => kill('cancelled'));

    const streamDone = (s: Readable | null, name: 'stdout' | 'stderr', buf: CappedBuffer): Promise<void> =>
      new Promise((resolve) => {
        if (!s) return resolve();
        s.on('data', (chunk: Buffer) => {
          const text = buf.push(chunk);
          if (text && spec.onOutput) spec.onOutput(name, text);
          if (buf.truncated) kill('output_limit');
        });
        s.once('end', () => {
          const rest = buf.flush();
          if (rest && spec.onOutput) spec.onOutput(name, rest);
          resolve();
        });
        s.once('close', () => resolve());
        s.once('error', () => resolve());
      });
    const stdoutDone = streamDone(child.stdout, 'stdout', out);
    const stderrDone = streamDone(child.stderr, 'stderr', err);
    const reportStream = child.stdio[3] as Readable | null;
    const reportDone = new Promise<void>((resolve) => {
      if (!reportStream) return resolve();
      reportStream.once('end', () => resolve());
      reportStream.once('close', () => resolve());
      reportStream.once('error', () => resolve());
    });
    reportStream?.on('data', (chunk: Buffer) => {
      reportText += chunk.toString('utf8');
      const nl = reportText.lastIndexOf('\n');
      if (nl < 0) return;
      parseLaunchReport(reportText.slice(0, nl), report);
      reportText = reportText.slice(nl + 1);
      if (report.pid && !stopSampling) {
        stopSampling = this.sampler.track(report.pid, (s) => {
          peakSampled = Math.max(peakSampled, s.rssBytes);
          cpuSampled = Math.max(cpuSampled, s.cpuMs);
          if (s.rssBytes > spec.memoryBytes) kill('memory_limit');
        });
        if (end !== undefined) killTree(report.pid); // a kill was asked before the pid was known
      }
    });

    if (spec.stdin !== null && child.stdin) {
      const stdin = child.stdin as Writable;
      stdin.on('error', () => undefined); // the program may exit without reading
      stdin.end(spec.stdin);
    }

    const timer = setTimeout(() => kill('timeout'), spec.timeoutMs);
    const onAbort = (): void => kill('cancelled');
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener('abort', onAbort, { once: true });

    const exit = await new Promise<{ code: number | null; error?: string }>((resolve) => {
      child.once('exit', (code) => resolve({ code }));
      child.once('error', (e: Error) => resolve({ code: null, error: e.message }));
    });
    const durationMs = performance.now() - started;
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    // The launcher killed what was left of the program's group when it ended. If the launcher itself was killed
    // (a kill path, or a program that shot it), sweep the group and the tree from here. Then give the pipes a
    // moment to drain: a process that left the group may still hold them open.
    if (report.pid && (end !== undefined || report.exitCode === undefined && report.signal === undefined)) {
      killTree(report.pid);
    } else if (report.pid) {
      killGroup(report.pid);
    }
    const drained = Promise.all([stdoutDone, stderrDone, reportDone]);
    const drainTimer = new Promise<void>((resolve) => setTimeout(resolve, STREAM_DRAIN_MS).unref());
    await Promise.race([drained, drainTimer]);
    child.stdout?.destroy();
    child.stderr?.destroy();
    reportStream?.destroy();
    if (reportText) parseLaunchReport(reportText, report);
    stopSampling?.();
    if (graceTimer) clearTimeout(graceTimer);
    this.live.delete(launcherPid);

    if (exit.error && report.pid === undefined) return this.spawnError(spec, exit.error, started);
    if (report.execError !== undefined && end === undefined) {
      return this.spawnError(spec, `could not start ${report.execError}`, started);
    }

    let exitCode: number | null = null;
    let signal: string | null = null;
    if (report.signal !== undefined) signal = signalName(report.signal);
    else if (report.exitCode !== undefined) exitCode = report.exitCode;
    else if (exit.code !== null) exitCode = exit.code;
    else signal = 'SIGKILL'; // the launcher itself was killed before it could report

    return {
      end: end ?? 'exited',
      exitCode,
      signal,
      stdout: out.text(),
      stderr: err.text(),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      durationMs: Math.round(durationMs * 100) / 100,
      cpuMs: Math.round((report.cpuMs ?? cpuSampled) * 100) / 100,
      peakMemoryBytes: Math.max(report.maxRssBytes ?? 0, peakSampled),
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
      error: message.startsWith('could not start') ? message : `could not start ${spec.command}: ${message}`,
    };
  }
}
