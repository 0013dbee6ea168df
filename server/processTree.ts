/**
 * The processes of a run, found in /proc: everything in the run's process group plus every descendant of its root
 * (a program can leave its group with setpgid/setsid, but not its parentage until its parent dies).
 * Used to sample CPU and memory with pidusage while a run lives. (Killing a run never goes by what /proc says: see
 * executor.ts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import pidusage from 'pidusage';

export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
}

/** Parses /proc/PID/stat; the command name may hold spaces and parentheses, so fields are read after the last ')'. */
export function parseStat(pid: number, text: string): ProcEntry | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  if (!Number.isInteger(ppid) || !Number.isInteger(pgid)) return undefined;
  return { pid, ppid, pgid };
}

function pidsOf(names: string[]): number[] {
  const pids: number[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/** Every process visible in /proc. Synchronous: ~1 ms for a hundred processes, and when killing no await may
 *  stand between finding a process and killing it. */
export function scanProcessesSync(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const pid of pidsOf(readdirSync('/proc'))) {
    try {
      const entry = parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (entry) out.push(entry);
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

/** The pids of a run: the members of process group `root` and every descendant of `root`. */
export function membersOf(root: number, table: ProcEntry[]): number[] {
  const members = new Set<number>();
  for (const e of table) if (e.pid === root || e.pgid === root) members.add(e.pid);
  // Descendants: repeat until no new child of a member appears (the table is small: one pass per generation).
  let grew = true;
  while (grew) {
    grew = false;
    for (const e of table) {
      if (!members.has(e.pid) && members.has(e.ppid)) {
        members.add(e.pid);
        grew = true;
      }
    }
  }
  return [...members];
}

const PIDUSAGE_MAXAGE_MS = 500;

/** The memory a process holds of its own, in bytes: its resident anonymous and shared-memory pages (RssAnon +
 *  RssShmem of /proc/PID/status, which any user may read). Not its file pages: the interpreter's binary and
 *  libraries are shared by every process that maps them, and summing them per process would count them again for
 *  each fork (32 forks of one Python are not 32 Pythons). Undefined when the process is gone. */
export function privateMemoryBytes(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0);
  return (kb('RssAnon') + kb('RssShmem')) * 1024;
}

export interface UsageSample {
  /** Sum of the memory of every process of the run that is its own (privateMemoryBytes), in bytes. */
  rssBytes: number;
  /** Sum of user+system CPU of the live processes of the run, in ms. */
  cpuMs: number;
}

/**
 * Samples every tracked run every `intervalMs` with one /proc scan and one pidusage call for all of them.
 * The timer runs only while something is tracked, and never keeps the process alive.
 */
export class UsageSampler {
  private readonly tracked = new Map<number, (s: UsageSample) => void>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(readonly intervalMs = 50) {}

  track(root: number, onSample: (s: UsageSample) => void): () => void {
    this.tracked.set(root, onSample);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.intervalMs);
      this.timer.unref();
    }
    return () => {
      this.tracked.delete(root);
      if (this.tracked.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  private async tick(): Promise<void> {
    if (this.ticking) return; // a slow scan never piles up
    this.ticking = true;
    try {
      // The synchronous scan costs ~1 ms here; the async one several times that in promise overhead.
      const table = scanProcessesSync();
      const groups = [...this.tracked.keys()].map((root) => ({ root, pids: membersOf(root, table) }));
      const all = groups.flatMap((g) => g.pids);
      if (all.length === 0) return;
      // pidusage keeps each pid's /proc/PID/stat open for `maxage` ms (for CPU %): keep that short, so fds of
      // finished runs are closed within a fraction of a second. (pidusage.clear() would drop them without closing.)
      const stats = await pidusage(all, { maxage: PIDUSAGE_MAXAGE_MS }).catch(() => ({}) as Record<number, pidusage.Status>);
      for (const { root, pids } of groups) {
        const onSample = this.tracked.get(root);
        if (!onSample || pids.length === 0) continue;
        let rssBytes = 0;
        let cpuMs = 0;
        for (const pid of pids) {
          const s = (stats as Record<number, pidusage.Status | undefined>)[pid];
          if (!s) continue;
          rssBytes += privateMemoryBytes(pid) ?? s.memory;
          cpuMs += s.ctime;
        }
        onSample({ rssBytes, cpuMs });
      }
    } catch {
      // /proc unreadable for a moment: the next tick tries again
    } finally {
      this.ticking = false;
    }
  }
}
