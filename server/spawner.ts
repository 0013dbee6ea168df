/**
 * Starts runs through the launcher's zygote (server/launcher/zygote.c): a tiny process, started once per pool worker
 * with execa, that forks each run's launcher. fork() from the server itself costs 2-3 ms of the main thread per
 * run (the kernel copies the page tables of an ~80 MB Node process); from the zygote it costs next to nothing.
 *
 * A run's stdin/stdout/stderr/report are Unix sockets the launcher opens to us, each introduced by a header line
 * `<id> <name>`; the zygote tells us each launcher's pid when it forks it and its wait status when it ends. The
 * server never signals a pid itself: it asks the zygote to signal a run's launcher, which the zygote does only while
 * that launcher is its unreaped child (so never a recycled pid), and the launcher takes its run down.
 */
import { execa, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type StreamName = 'in' | 'out' | 'err' | 'rep';

/** Which zygote forks a run: one per pool worker. `args` are the zygote's options (see zygote.c): the cgroups it
 *  joins and its user namespace (`-i`); fixed for the zygote's life. */
export interface Slot {
  id: string;
  args: string[];
}

export interface SpawnRequest {
  slot?: Slot;
  cwd: string;
  env: Record<string, string>;
  /** Arguments for the launcher: rlimits, `--`, the program and its arguments. */
  launcherArgs: string[];
  withStdin: boolean;
  /** Called once per stream as the launcher connects it (in any order). */
  onStream: (name: StreamName, socket: net.Socket) => void;
}

export interface Spawned {
  /** The launcher's pid; it leads its own session, so `-pid` is its process group. */
  pid: number;
  /** Resolves when the launcher has ended, with its wait status (null when the zygote itself went away). */
  exited: Promise<{ code: number | null; signal: number | null }>;
  /** Asks the zygote to signal the launcher: SIGTERM (it kills its run, then reports), or with `force` SIGKILL to
   *  its process group. A no-op once the launcher has ended. */
  stop: (force: boolean) => void;
  /** The run is over (its streams drained): it no longer keeps the process alive. Idempotent. */
  release: () => void;
}

interface Pending {
  zygote: Zygote;
  spawned: (pid: number) => void;
  failed: (e: Error) => void;
  exited: Live['exited'];
}

interface Live {
  zygote: Zygote;
  id: string;
  exited: (r: { code: number | null; signal: number | null }) => void;
}

const HEADER_MAX = 200;
/** Longest line the zygote writes ("spawned <32 hex> <pid>"); anything longer is not the zygote's. */
const ZYGOTE_LINE_MAX = 256;
/** What is kept of a zygote's stderr, to say why it stopped. */
const ZYGOTE_STDERR_MAX = 1024;

/** One zygote process and how many runs it has under way (its stdout keeps the event loop alive only then). */
interface Zygote {
  proc: ResultPromise;
  holds: number;
  /** The end of what it said on stderr (why it could not start, typically). */
  stderr: string;
}

export class Spawner {
  /** Zygotes by slot ('' for runs without one). */
  private readonly zygotes = new Map<string, Zygote>();
  private server: net.Server | undefined;
  private readonly starting = new Map<string, Promise<Zygote>>();
  /** Runs asked for and not yet forked, by id. */
  private readonly pending = new Map<string, Pending>();
  /** Every run not yet ended, by id: its streams may connect before or after we learn its pid. */
  private readonly requests = new Map<string, SpawnRequest>();
  /** Forked launchers not yet ended, by pid. */
  private readonly live = new Map<number, Live>();
  private readonly sockPath: string;
  private disposed = false;
  private holds = 0;

  constructor(
    private readonly launcher: string,
    dir: string,
  ) {
    this.sockPath = path.join(dir, 'spawn.sock');
  }

  async spawn(request: SpawnRequest): Promise<Spawned> {
    const z = await this.start(request.slot?.id ?? '', request.slot?.args ?? []);
    const zygote = z.proc;
    if (!zygote.stdin || this.disposed) throw new Error('the run launcher is not running');
    const id = randomBytes(16).toString('hex');
    this.requests.set(id, request);
    this.hold(z);
    let exited!: Live['exited'];
    const done = new Promise<{ code: number | null; signal: number | null }>((resolve) => (exited = resolve));
    const pid = await new Promise<number>((spawned, failed) => {
      this.pending.set(id, { zygote: z, spawned, failed, exited });
      const fields = [
        'run',
        id,
        request.cwd,
        request.withStdin ? '1' : '0',
        String(request.launcherArgs.length),
        ...request.launcherArgs,
        String(Object.keys(request.env).length),
        ...Object.entries(request.env).map(([k, v]) => `${k}=${v}`),
      ];
      for (const f of fields) {
        if (f.includes('\0')) {
          this.pending.delete(id);
          this.requests.delete(id);
          return failed(new Error('arguments and environment may not contain NUL characters'));
        }
      }
      zygote.stdin!.write(fields.map((f) => `${f}\0`).join(''));
    }).catch((e: unknown) => {
      this.requests.delete(id);
      this.letGo(z);
      throw e;
    });
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.requests.delete(id);
      this.letGo(z);
    };
    const stop = (force: boolean): void => {
      if (z.proc.exitCode === null && !z.proc.killed) z.proc.stdin?.write(`kill\0${id}\0${force ? 9 : 15}\0`);
    };
    return { pid, exited: done, stop, release };
  }

  /** The pids of the zygotes while they run (for the cgroup sweep, tests and diagnostics). */
  get zygotePids(): number[] {
    return [...this.zygotes.values()].flatMap((z) => (z.proc.exitCode === null && z.proc.pid ? [z.proc.pid] : []));
  }

  /** Kills the zygotes (their launchers follow, taking their runs) and removes the socket. Synchronous. */
  dispose(): void {
    this.disposed = true;
    for (const z of this.zygotes.values()) {
      try {
        if (z.proc.pid) process.kill(z.proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.server?.close();
    rmSync(this.sockPath, { force: true });
  }

  private start(slot: string, args: string[]): Promise<Zygote> {
    const z = this.zygotes.get(slot);
    if (z && z.proc.exitCode === null && !z.proc.killed) return Promise.resolve(z);
    let starting = this.starting.get(slot);
    if (!starting) {
      starting = this.launch(slot, args).finally(() => this.starting.delete(slot));
      this.starting.set(slot, starting);
    }
    return starting;
  }

  private async launch(slot: string, args: string[]): Promise<Zygote> {
    if (!this.server) {
      rmSync(this.sockPath, { force: true });
      const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
      server.listen(this.sockPath);
      await once(server, 'listening');
      server.unref();
      this.server = server;
    }
    const zygote = execa(this.launcher, ['--zygote', this.sockPath, ...args], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
      extendEnv: false,
      env: {},
    });
    zygote.catch(() => undefined);
    const z: Zygote = { proc: zygote, holds: 0, stderr: '' };
    this.zygotes.set(slot, z);
    zygote.stdin?.on('error', () => undefined);
    zygote.stderr?.on('data', (d: Buffer) => (z.stderr = (z.stderr + d.toString('utf8')).slice(-ZYGOTE_STDERR_MAX)));
    let partial = '';
    zygote.stdout?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('latin1')).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > ZYGOTE_LINE_MAX) partial = ''; // not a line of the zygote's: drop it
      for (const line of lines) if (line.length <= ZYGOTE_LINE_MAX) this.onZygoteLine(line);
    });
    zygote.once('exit', () => {
      // Its runs waiting to start fail, saying why it stopped (its stderr may still be on its way: wait for its
      // end, briefly); its runs in flight end (their launchers got SIGTERM and swept them).
      const failPending = (): void => {
        const said = z.stderr.trim().split('\n').at(-1)?.replace(/^sbx-launch: /, '');
        for (const [id, p] of this.pending) {
          if (p.zygote !== z) continue;
          this.pending.delete(id);
          this.requests.delete(id);
          p.failed(new Error(`the run launcher stopped${said ? `: ${said}` : ''}`));
        }
      };
      const err = zygote.stderr;
      if (err && !err.readableEnded) {
        const timer = setTimeout(failPending, 200);
        err.once('end', () => {
          clearTimeout(timer);
          failPending();
        });
      } else failPending();
      for (const [pid, l] of this.live) {
        if (l.zygote !== z) continue;
        this.live.delete(pid);
        l.exited({ code: null, signal: null });
      }
      if (this.zygotes.get(slot) === z) this.zygotes.delete(slot);
    });
    zygote.unref();
    (zygote.stdout as net.Socket | undefined)?.unref?.();
    (zygote.stdin as net.Socket | undefined)?.unref?.();
    (zygote.stderr as net.Socket | undefined)?.unref?.();
    return z;
  }

  private onZygoteLine(line: string): void {
    const [word, a, b] = line.split(' ');
    if (word === 'spawned' && a && b) {
      const p = this.pending.get(a);
      if (!p) return;
      this.pending.delete(a);
      // Registered now, synchronously: its "exited" line may be the very next one.
      this.live.set(Number(b), { zygote: p.zygote, id: a, exited: p.exited });
      p.spawned(Number(b));
    } else if (word === 'failed' && a) {
      const p = this.pending.get(a);
      this.pending.delete(a);
      p?.failed(new Error(`fork failed (errno ${b})`));
    } else if (word === 'exited' && a && b) {
      const pid = Number(a);
      const status = Number(b);
      const l = this.live.get(pid);
      if (!l) return;
      this.live.delete(pid);
      // Decode the wait status: low 7 bits the signal, else the exit code in the next byte.
      const signal = status & 0x7f;
      l.exited(signal === 0 ? { code: (status >> 8) & 0xff, signal: null } : { code: null, signal });
    }
  }

  /** While runs are under way, the zygote's pipe and the socket server keep the event loop alive (we wait for
   *  their answers); when idle they must not keep the process alive. */
  private hold(z: Zygote): void {
    if (z.holds++ === 0) (z.proc.stdout as net.Socket | undefined)?.ref?.();
    // A launcher's connections can wait in the backlog after it has ended: keep accepting until the run is over.
    if (this.holds++ === 0) this.server?.ref();
  }

  private letGo(z: Zygote): void {
    if (z.holds > 0 && --z.holds === 0) (z.proc.stdout as net.Socket | undefined)?.unref?.();
    if (this.holds > 0 && --this.holds === 0) this.server?.unref();
  }

  /** A launcher connected one of its streams: read its header, then hand the socket to the run. */
  private accept(socket: net.Socket): void {
    let header = '';
    const onData = (chunk: Buffer): void => {
      header += chunk.toString('latin1');
      const nl = header.indexOf('\n');
      if (nl < 0) {
        if (header.length > HEADER_MAX) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const [id, name] = header.slice(0, nl).split(' ');
      const rest = Buffer.from(header.slice(nl + 1), 'latin1');
      const request = id ? this.requests.get(id) : undefined;
      if (!request || !['in', 'out', 'err', 'rep'].includes(name ?? '')) {
        socket.destroy();
        return;
      }
      if (rest.length > 0) socket.unshift(rest);
      request.onStream(name as StreamName, socket);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  }
}
