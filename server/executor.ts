/**
 * Runs one command as a timeout-controlled child process tree and reports how it ended, with the kernel's own
 * accounting of CPU time and peak memory.
 *
 * The command is started through `sbx-launch` (server/launcher/), forked by its zygote (server/spawner.ts), which
 * puts it in a process group of its own, applies rlimits, waits for it and reports its exit status and rusage on
 * fd 3; it is a subreaper and kills every process of the run before it reports. While the run lives, a shared
 * UsageSampler samples its process tree with pidusage every 50 ms (memory watchdog, CPU of runs that are killed);
 * when it ends, the launcher's rusage is what we report, so a run that ends between two samples still reports what
 * the kernel accounted for it.
 *
 * Nothing a run says is trusted further than it can be checked: the report is read up to REPORT_MAX bytes and
 * parsed strictly (a report that does not parse is an internal error, never a verdict); what pid 1 of a sandbox
 * reports reaches us only framed by the outer launcher, which runs outside the sandbox; and no pid from a report
 * is ever signalled: a run is stopped through its zygote (its launcher, provably the run's) and its cgroup.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Socket } from 'node:net';
import type { RunCgroup } from './cgroup';
import { UsageSampler } from './processTree';
import { Spawner, type Slot, type Spawned, type StreamName } from './spawner';

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
  /** The memory watchdog kills the run when the private memory of its tree (processTree.privateMemoryBytes)
   *  passes this. */
  memoryBytes: number;
  /** Cap per stream, in bytes. */
  outputBytes: number;
  rlimits?: Rlimits;
  /** The bwrap mode: bubblewrap's argv through pid 1's own options (server/isolation.ts bwrapArgs). pid 1,
   *  `sbx-launch --init`, applies the rlimits and reports the program's own end. */
  sandbox?: string[];
  /** The run's cgroup: the program joins it before it execs (unless it is born in it: `slot`); its counters give
   *  peak memory, CPU and OOM kills. The caller creates it and destroys it after the run. */
  cgroup?: RunCgroup;
  /** The pool worker's zygote to fork the run from (its cgroups and user namespace). */
  slot?: Slot;
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
  /** pid 1 of a sandbox is up (its first word): from then on, stderr may be the program's. */
  started?: boolean;
  execError?: string;
  /** pid 1 of a sandbox could not set it up (the user switch, the seccomp filter): the program never ran. */
  setupError?: string;
  exitCode?: number;
  signal?: number;
  cpuMs?: number;
  maxRssBytes?: number;
}

/** The outer launcher's report (about bwrap, in the bwrap mode) and, inside a sandbox, what pid 1 said (about the
 *  program itself); `invalid` when either does not parse. */
export interface LaunchReport extends ProgramReport {
  inner?: ProgramReport;
  invalid?: string;
}

/** Most bytes of a report read from a launcher; the launcher relays at most 4096 of pid 1's (INNER_REPORT_MAX). */
export const REPORT_MAX = 16 * 1024;
const INNER_MAX = 4096;
const LINE_MAX = 512;
const PROGRAM_LINES_MAX = 8;
const OVERFLOW = Buffer.from('inner-overflow\n');

class InvalidReport extends Error {}

const int = (s: string | undefined, max: number): number => {
  if (s === undefined || !/^\d{1,16}$/.test(s) || Number(s) > max) throw new InvalidReport(`not a number up to ${max}: ${JSON.stringify(s ?? '')}`);
  return Number(s);
};

/** Applies one line about a program to `into`; each fact may be said once. */
function programLine(line: string, into: ProgramReport): void {
  if (line.length > LINE_MAX) throw new InvalidReport(`a line of ${line.length} bytes`);
  const [word, ...rest] = line.split(' ');
  const once = (key: keyof ProgramReport): void => {
    if (into[key] !== undefined) throw new InvalidReport(`"${word}" said twice`);
  };
  switch (word) {
    case 'exit':
      once('exitCode');
      if (rest.length !== 1) throw new InvalidReport('exit takes one number');
      into.exitCode = int(rest[0], 255);
      return;
    case 'signal':
      once('signal');
      if (rest.length !== 1) throw new InvalidReport('signal takes one number');
      into.signal = int(rest[0], 64);
      return;
    case 'rusage':
      once('cpuMs');
      if (rest.length !== 3) throw new InvalidReport('rusage takes three numbers');
      into.cpuMs = (int(rest[0], Number.MAX_SAFE_INTEGER) + int(rest[1], Number.MAX_SAFE_INTEGER)) / 1000;
      into.maxRssBytes = int(rest[2], Number.MAX_SAFE_INTEGER / 1024) * 1024;
      return;
    case 'exec-error':
      once('execError');
      int(rest[0], 4095);
      into.execError = rest.slice(1).join(' ');
      return;
    case 'setup-error':
      once('setupError');
      into.setupError = rest.join(' ');
      return;
    case 'started':
      once('started');
      if (rest.length !== 0) throw new InvalidReport('started takes nothing');
      into.started = true;
      return;
    default:
      throw new InvalidReport(`unexpected line ${JSON.stringify(line.slice(0, 60))}`);
  }
}

/** pid 1's report, as relayed: a few lines about the program, nothing else. */
function parseProgramReport(text: string): ProgramReport {
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new InvalidReport('it does not end with a newline');
  if (lines.length > PROGRAM_LINES_MAX) throw new InvalidReport(`${lines.length} lines`);
  const out: ProgramReport = {};
  for (const line of lines) programLine(line, out);
  if (out.exitCode !== undefined && out.signal !== undefined) throw new InvalidReport('both an exit code and a signal');
  return out;
}

/**
 * Parses what a launcher wrote on fd 3: lines about its program (bwrap, in the bwrap mode) and, with `sandboxed`,
 * one frame `inner <n>\n` followed by exactly n bytes: what pid 1 of the sandbox said. Never throws: a report that
 * does not parse comes back with `invalid` saying why.
 */
export function parseLaunchReport(bytes: Buffer, sandboxed: boolean): LaunchReport {
  const report: LaunchReport = {};
  try {
    if (bytes.length > REPORT_MAX) throw new InvalidReport(`more than ${REPORT_MAX} bytes`);
    let at = 0;
    while (at < bytes.length) {
      const nl = bytes.indexOf(0x0a, at);
      if (nl < 0) throw new InvalidReport('a line without its end');
      const line = bytes.subarray(at, nl).toString('latin1');
      at = nl + 1;
      const frame = /^inner (\d{1,5})$/.exec(line);
      if (frame && sandboxed) {
        if (report.inner) throw new InvalidReport('two reports of pid 1');
        const n = Number(frame[1]);
        if (n > INNER_MAX || at + n > bytes.length) throw new InvalidReport(`a frame of ${n} bytes`);
        const said = bytes.subarray(at, at + n);
        at += n;
        // The launcher marks a report it had to cut: that, not the cut itself, is what went wrong.
        if (bytes.subarray(at, at + OVERFLOW.length).equals(OVERFLOW)) throw new InvalidReport(`pid 1 of the sandbox said more than ${INNER_MAX} bytes`);
        try {
          report.inner = parseProgramReport(said.toString('utf8'));
        } catch (e) {
          throw new InvalidReport(`pid 1 of the sandbox: ${(e as Error).message}`);
        }
      } else if (line === 'inner-overflow' && sandboxed) {
        throw new InvalidReport(`pid 1 of the sandbox said more than ${INNER_MAX} bytes`);
      } else {
        programLine(line, report);
      }
    }
  } catch (e) {
    if (!(e instanceof InvalidReport)) throw e;
    report.invalid = e.message;
  }
  return report;
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

  /** Stops every run in flight, synchronously (safe in a process 'exit' handler): asks each run's zygote to stop its
   *  launcher; dispose() then kills the zygotes, whose launchers take their runs with them. */
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
    if (spec.sandbox) launcherArgs.push('-b', '--', ...spec.sandbox, ...rlimitArgs, '--', spec.command, ...spec.args);
    else launcherArgs.push(...rlimitArgs, '--', spec.command, ...spec.args);

    const out = new CappedBuffer(spec.outputBytes);
    const err = new CappedBuffer(spec.outputBytes);
    const reportChunks: Buffer[] = [];
    let reportBytes = 0;
    let end: ExecEnd | undefined;
    let peakSampled = 0;
    let cpuSampled = 0;
    let graceTimer: NodeJS.Timeout | undefined;
    let spawned: Spawned | undefined;
    const sockets: Socket[] = [];

    // Stops the run through its zygote: the launcher kills its run and reports; if it doesn't within the grace, its
    // process group goes. Before the launcher exists, `end` alone says so and the spawn path stops it at once.
    const kill = (reason: ExecEnd): void => {
      if (end === undefined) end = reason;
      if (!spawned || graceTimer) return;
      spawned.stop(false);
      const s = spawned;
      graceTimer = setTimeout(() => s.stop(true), this.killGraceMs);
      graceTimer.unref();
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
        // Kept up to one byte past the most a valid report holds: enough to know it was too long.
        socket.on('data', (chunk: Buffer) => {
          if (reportBytes > REPORT_MAX) return;
          const kept = chunk.subarray(0, REPORT_MAX + 1 - reportBytes);
          reportChunks.push(kept);
          reportBytes += kept.length;
        });
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
      return this.spawnError(`could not start ${spec.command}: ${(e as Error).message}`, started);
    }
    const launcherPid = spawned.pid;
    this.live.set(launcherPid, () => kill('cancelled'));
    if (end !== undefined) {
      const reason = end;
      end = undefined;
      kill(reason); // a kill was asked before the launcher existed
    }
    // The sampler reads the launcher's tree from /proc: its program, bwrap, every process of the sandbox.
    const stopSampling = this.sampler.track(launcherPid, (sample) => {
      peakSampled = Math.max(peakSampled, sample.rssBytes);
      cpuSampled = Math.max(cpuSampled, sample.cpuMs);
      if (sample.rssBytes > spec.memoryBytes) kill('memory_limit');
    });

    const timer = setTimeout(() => kill('timeout'), spec.timeoutMs);
    const onAbort = (): void => kill('cancelled');
    if (spec.signal?.aborted) onAbort();
    else spec.signal?.addEventListener('abort', onAbort, { once: true });

    const exit = await spawned.exited;
    const durationMs = performance.now() - started;
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    stopSampling();
    // The launcher killed every process of the run before it ended (and the run's cgroup is swept after us). Let
    // the streams drain.
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([streamsDone, new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, STREAM_DRAIN_MS)))]);
    clearTimeout(drainTimer);
    for (const s of sockets) s.destroy();
    spawned.release();
    if (graceTimer) clearTimeout(graceTimer);
    this.live.delete(launcherPid);

    const report = parseLaunchReport(Buffer.concat(reportChunks), spec.sandbox !== undefined);
    // A report cut short by our own kill is expected; one that does not parse otherwise is the sandbox's fault.
    if (report.invalid && end === undefined) {
      return this.spawnError(`the sandbox's report could not be trusted (${report.invalid})`, started);
    }
    if (report.execError !== undefined && end === undefined) {
      return this.spawnError(`could not start ${report.execError}`, started);
    }
    // In a sandbox, the program's own story is pid 1's; bwrap's exit code can't tell a signal apart.
    const program: ProgramReport = spec.sandbox ? (report.inner ?? {}) : report;
    if (spec.sandbox && program.setupError !== undefined && end === undefined) {
      return this.spawnError(`the sandbox could not be set up: ${program.setupError}`, started);
    }
    if (spec.sandbox && program.execError !== undefined && end === undefined) {
      return this.spawnError(`could not start ${program.execError}`, started);
    }
    // The cgroup saw every process of the run, page cache and tmpfs included: its counters are the honest ones.
    const group = spec.cgroup ? await spec.cgroup.stats().catch(() => undefined) : undefined;
    const oomKilled = (group?.oomKills ?? 0) > 0;
    if (spec.sandbox && end === undefined && program.exitCode === undefined && program.signal === undefined && !oomKilled) {
      const how = report.exitCode ?? (report.signal !== undefined ? signalName(report.signal) : exit.code ?? exit.signal);
      // Once pid 1 was up, stderr is the program's too: nothing of it is quoted as bwrap's.
      if (program.started) return this.spawnError(`the sandbox ended before its program did (bwrap ended with ${how})`, started);
      // bwrap itself failed (a bind source missing, namespaces refused): it said why on stderr, before any program.
      const said = err.text().trim().split('\n').filter((l) => l.startsWith('bwrap:')).join('; ');
      return this.spawnError(`the sandbox did not start: ${said || `bwrap ended with ${how}`}`, started);
    }

    let exitCode: number | null = null;
    let signal: string | null = null;
    if (program.signal !== undefined) signal = signalName(program.signal);
    else if (program.exitCode !== undefined) exitCode = program.exitCode;
    else signal = 'SIGKILL'; // killed before it could report (by us, or by the OOM killer): so was its program

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
      oomKilled,
    };
  }

  private spawnError(message: string, started: number): ExecOutcome {
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
      error: message,
    };
  }
}
