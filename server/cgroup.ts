/**
 * Per-run cgroups: a memory limit the kernel enforces on the whole run (not a sampled RSS), a pids limit that holds
 * for root (RLIMIT_NPROC does not), exact CPU accounting of every process of the run, and a kill that a fork bomb
 * cannot outrun.
 *
 * Layout: `<base>/sandbox-runner/<serverPid>/<run>`, where `<base>` is the server's OWN cgroup in each hierarchy
 * (from /proc/self/cgroup), so a run stays inside whatever limits the server itself was started under and never
 * escapes its parent's accounting. On cgroup v1 a run has one directory per hierarchy used (memory, pids, cpuacct,
 * freezer); on v2 one directory. A process joins by writing "0" into each of `RunCgroup.procsFiles` (the launcher
 * does it before it starts the program).
 *
 * Detection result: `detectCgroups()` returns a manager or null; the reason for either is in `lastCgroupReason`
 * (or use `probeCgroups()`, which returns `{ manager, reason }`).
 *
 * All file work is synchronous: each call is a few microseconds on cgroupfs, measured faster than fs.promises
 * (which pays a thread-pool round trip per call); only the waits between kill rounds are asynchronous.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CgroupSupport {
  version: 'v1' | 'v2';
  /** The server's parent group(s), `<base>/sandbox-runner/<serverPid>`, one per hierarchy used. */
  serverDirs: string[];
  /** memory.max / memory.limit_in_bytes is set per run. */
  memory: boolean;
  /** pids.max is set per run. */
  pids: boolean;
  /** CPU time is accounted per run (v1 cpuacct, v2 cpu.stat). */
  cpu: boolean;
  /** destroy() can stop every process of a run at once (v1 freezer, v2 cgroup.kill or cgroup.freeze). */
  atomicKill: boolean;
}

export interface RunLimits {
  memoryBytes: number;
  processes: number;
}

export interface RunStats {
  peakMemoryBytes: number;
  cpuMs: number;
  oomKills: number;
  processes: number;
}

export interface RunCgroup {
  /** The `cgroup.procs` files a process must write "0" into to join the run's group(s) (one per v1 hierarchy,
   *  one for v2). */
  readonly procsFiles: string[];
  /** The run's group directories (one per hierarchy). */
  readonly dirs: string[];
  /** Counters now (for a run in a worker's group: since the run began). */
  stats(): Promise<RunStats>;
  /** Kills every process still in the group but `keep` (a worker's zygote), waits until only those are left
   *  (bounded) and, for a group of its own, removes it. Never throws. */
  destroy(keep?: readonly number[]): Promise<{ killed: number; error?: string }>;
}

export interface DetectOptions {
  /** Where the cgroup file systems are mounted; default /sys/fs/cgroup. */
  root?: string;
  /** Text of /proc/self/cgroup (for tests); default: read it. */
  procSelfCgroup?: string;
  /** Name of the shared parent group; default `sandbox-runner`. */
  name?: string;
  /** The server's pid, which names its parent group; default process.pid (for tests). */
  serverPid?: number;
}

/** Why the last detectCgroups() chose what it chose (one line, for SandboxInfo and logs). */
export let lastCgroupReason = '';

/** What a worker's group holds besides its run, at most: its zygote, the run's launcher, bwrap and pid 1 (~2 MiB,
 *  measured), with room to spare. */
const WORKER_OVERHEAD_BYTES = 8 * 1024 * 1024;

/** How long destroy() waits for a group to empty before giving up on it. */
const DRAIN_MS = 2000;
const POLL_MS = 3;

// ---------------------------------------------------------------------------------------------------------------
// Small file helpers (cgroupfs files are tiny; sync I/O is the cheapest way to touch them)

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? String(e);
}

function readPids(procsFile: string): number[] {
  const text = readText(procsFile);
  if (!text) return [];
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (line && Number.isInteger(pid) && pid > 0) out.push(pid);
  }
  return out;
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control) → the value of `key`, or null. */
function readKey(file: string, key: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

function readNumber(file: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM';
  }
}

/** When a process started, in ms since the epoch (from /proc/<pid>/stat), or null. */
function processStartMs(pid: number, bootMs: number): number | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the command name (which may hold spaces and parens); starttime is field 22 overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  // USER_HZ is 100 on every Linux architecture userspace sees.
  return Number.isFinite(ticks) ? bootMs + ticks * 10 : null;
}

function bootTimeMs(): number {
  const m = /^btime (\d+)$/m.exec(readText('/proc/stat') ?? '');
  return m ? Number(m[1]) * 1000 : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Killing and removing one group (one directory per hierarchy)

interface GroupPaths {
  /** One directory per hierarchy; the freezer's (v1) last, so it outlives the others while killing. */
  dirs: string[];
  /** v1 freezer.state, v2 cgroup.freeze: stops forks while we kill. */
  freeze?: { file: string; on: string; off: string };
  /** v2 cgroup.kill: kills the whole subtree atomically. */
  killFile?: string;
}

/** One kill round: freeze, SIGKILL every process listed, thaw. Returns the pids it signalled. */
function killRound(g: GroupPaths): number[] {
  const pids = new Set<number>();
  for (const dir of g.dirs) for (const pid of readPids(path.join(dir, 'cgroup.procs'))) pids.add(pid);
  if (pids.size === 0) return [];
  if (g.killFile) {
    try {
      fs.writeFileSync(g.killFile, '1');
      return [...pids];
    } catch {
      // Older kernels (< 5.14) have no cgroup.kill: fall through to signalling each process.
    }
  }
  let frozen = false;
  if (g.freeze) {
    try {
      fs.writeFileSync(g.freeze.file, g.freeze.on);
      frozen = true;
      // Re-read: a child forked while the freeze was being set is frozen too, but was not in the first list.
      for (const dir of g.dirs) for (const pid of readPids(path.join(dir, 'cgroup.procs'))) pids.add(pid);
    } catch {
      // The freezer group may already be gone; signalling alone still converges under the pids limit.
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  // A frozen process only acts on SIGKILL once thawed.
  if (frozen && g.freeze) {
    try {
      fs.writeFileSync(g.freeze.file, g.freeze.off);
    } catch {
      // Nothing more to do: the next round retries.
    }
  }
  return [...pids];
}

/** rmdir each directory. `busy`: the ones still populated (EBUSY), worth another kill round; any other failure
 *  (EACCES, ENOTEMPTY on a non-cgroup directory) will not change by retrying and only lands in `error`. */
function removeDirs(dirs: string[]): { busy: string[]; error?: string } {
  const busy: string[] = [];
  let error: string | undefined;
  for (const dir of dirs) {
    try {
      fs.rmdirSync(dir);
    } catch (e) {
      const code = errCode(e);
      if (code === 'EBUSY') busy.push(dir);
      else if (code !== 'ENOENT') error ??= `rmdir ${dir}: ${code}`;
    }
  }
  return { busy, error };
}

/**
 * Empties and removes a group. The common case (the launcher already reaped everything) is one rmdir per
 * hierarchy; only a populated group pays for kill rounds. Generator, so the async and the blocking (process
 * 'exit') callers share one loop: it yields whenever it wants to wait a poll interval.
 */
function* drain(g: GroupPaths, deadline: number): Generator<void, { killed: number; error?: string }> {
  let { busy, error } = removeDirs(g.dirs);
  const killed = new Set<number>();
  while (busy.length > 0 && Date.now() <= deadline) {
    // The kill round sees every hierarchy still left, so a v1 freezer group stays in it until the last round.
    for (const pid of killRound({ ...g, dirs: busy })) killed.add(pid);
    const r = removeDirs(busy);
    busy = r.busy;
    error ??= r.error;
    if (busy.length > 0) yield;
  }
  if (busy.length > 0) error ??= `still populated: ${busy.join(', ')}`;
  return error === undefined ? { killed: killed.size } : { killed: killed.size, error };
}

async function drainAsync(
  g: GroupPaths,
  deadline = Date.now() + DRAIN_MS,
): Promise<{ killed: number; error?: string }> {
  const it = drain(g, deadline);
  for (let r = it.next(); ; r = it.next()) {
    if (r.done) return r.value;
    await sleep(POLL_MS);
  }
}

function drainSync(g: GroupPaths, deadline: number): { killed: number; error?: string } {
  const it = drain(g, deadline);
  for (let r = it.next(); ; r = it.next()) {
    if (r.done) return r.value;
    sleepSync(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Hierarchies

type V1Controller = 'memory' | 'pids' | 'cpuacct' | 'freezer';

interface Hierarchy {
  /** v1: the controllers this hierarchy is used for (several when co-mounted, e.g. cpu,cpuacct); v2: none. */
  kinds: V1Controller[];
  /** `<base>/<name>`: the shared parent of every server's group. */
  shared: string;
}

/** Parses /proc/self/cgroup: v1 controller → path, and the v2 path (`0::/path`) under key ''. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const c of m[1].split(',')) out.set(c, m[2]);
  }
  return out;
}

const V1_PROBE: Record<V1Controller, string> = {
  memory: 'memory.limit_in_bytes',
  pids: 'pids.max',
  cpuacct: 'cpuacct.usage',
  freezer: 'freezer.state',
};

/** mkdir that accepts an existing directory (another server made it) and never creates parents. */
function tryMkdir(dir: string): string | null {
  try {
    fs.mkdirSync(dir);
    return null;
  } catch (e) {
    const code = errCode(e);
    return code === 'EEXIST' ? null : code;
  }
}

/** Removes a directory we created during detection if nothing else uses it (best effort). */
function rmdirQuiet(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // In use by another server, or not ours to remove.
  }
}

function detectV1(root: string, own: Map<string, string>, name: string): { hierarchies: Hierarchy[]; notes: string[] } {
  const hierarchies: (Hierarchy & { key: string })[] = [];
  const notes: string[] = [];
  for (const c of ['memory', 'pids', 'cpuacct', 'freezer'] as const) {
    const mount = path.join(root, c);
    // `tasks` exists only in v1 hierarchies; cgroup2 has no such file.
    if (!fs.existsSync(path.join(mount, 'tasks'))) {
      notes.push(`${c}: no v1 hierarchy`);
      continue;
    }
    let real: string;
    try {
      real = fs.realpathSync(mount);
    } catch {
      continue;
    }
    // A container may show host paths in /proc/self/cgroup while its own group is mounted as the root: then the
    // mount is the server's group. Never create the missing path: that would be a group somewhere else.
    let rel = own.get(c) ?? '/';
    if (!fs.existsSync(path.join(mount, rel))) rel = '/';
    const shared = path.join(mount, rel, name);
    // Co-mounted controllers (e.g. memory,pids) share one directory tree: one group serves both.
    const key = `${real}\0${rel}`;
    const same = hierarchies.find((h) => h.key === key);
    if (same) {
      same.kinds.push(c);
      continue;
    }
    const err = tryMkdir(shared);
    if (err) {
      notes.push(`${c}: cannot create ${shared} (${err})`);
      continue;
    }
    if (!fs.existsSync(path.join(shared, V1_PROBE[c]))) {
      notes.push(`${c}: ${shared} has no ${V1_PROBE[c]}`);
      rmdirQuiet(shared);
      continue;
    }
    hierarchies.push({ kinds: [c], shared, key });
  }
  return { hierarchies, notes };
}

function controllersOf(dir: string): Set<string> {
  return new Set((readText(path.join(dir, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean));
}

function enable(dir: string, controllers: string[]): string | null {
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), controllers.map((c) => `+${c}`).join(' '));
    return null;
  } catch (e) {
    return errCode(e);
  }
}

/** v2: returns the shared group (`<own>/<name>`, controllers enabled below it) or the reason it cannot. */
function detectV2(
  root: string,
  own: Map<string, string>,
  name: string,
): { shared: string; controllers: string[] } | { reason: string } {
  const ownRel = own.get('');
  if (ownRel === undefined) return { reason: 'cgroup v2: no `0::` line in /proc/self/cgroup' };
  const ownDir = path.join(root, ownRel);
  try {
    fs.accessSync(ownDir, fs.constants.W_OK);
    fs.accessSync(path.join(ownDir, 'cgroup.subtree_control'), fs.constants.W_OK);
  } catch {
    return { reason: `cgroup v2: the server's cgroup ${ownDir} is not writable (not delegated to this user)` };
  }
  const available = controllersOf(ownDir);
  const wanted = ['memory', 'pids', 'cpu'].filter((c) => available.has(c));
  if (!wanted.includes('memory') && !wanted.includes('pids')) {
    return { reason: `cgroup v2: neither memory nor pids is delegated to ${ownDir}` };
  }
  const enabled = new Set((readText(path.join(ownDir, 'cgroup.subtree_control')) ?? '').split(/\s+/));
  const missing = wanted.filter((c) => !enabled.has(c));
  // The "no internal processes" rule: a non-root group with processes cannot enable controllers for children,
  // and this server does not move itself out of its own group.
  const isRoot = ownRel === '/' || ownRel === '';
  if (missing.length > 0 && !isRoot && readPids(path.join(ownDir, 'cgroup.procs')).length > 0) {
    return {
      reason:
        `cgroup v2: ${ownDir} has processes (this server), so it cannot enable ${missing.join(', ')} for child ` +
        `groups (no internal processes rule); start the server in a leaf of a delegated subtree`,
    };
  }
  if (missing.length > 0) {
    const err = enable(ownDir, missing);
    if (err) {
      const why = err === 'EBUSY' ? ' (it has processes: no internal processes rule)' : '';
      return { reason: `cgroup v2: cannot enable ${missing.join(', ')} in ${ownDir}: ${err}${why}` };
    }
  }
  const shared = path.join(ownDir, name);
  const err = tryMkdir(shared) ?? enable(shared, wanted);
  if (err) return { reason: `cgroup v2: cannot set up ${shared}: ${err}` };
  return { shared, controllers: wanted };
}

/** Finds a usable cgroup setup and reports why (or why not). */
export async function probeCgroups(
  opts: DetectOptions = {},
): Promise<{ manager: CgroupManager | null; reason: string }> {
  const root = opts.root ?? '/sys/fs/cgroup';
  const name = opts.name ?? 'sandbox-runner';
  const serverPid = opts.serverPid ?? process.pid;
  const text = opts.procSelfCgroup ?? (await fs.promises.readFile('/proc/self/cgroup', 'utf8').catch(() => ''));
  const own = parseProcCgroup(text);

  if (fs.existsSync(path.join(root, 'cgroup.controllers'))) {
    const v2 = detectV2(root, own, name);
    if ('reason' in v2) return { manager: null, reason: v2.reason };
    const manager = new CgroupManager('v2', [{ kinds: [], shared: v2.shared }], serverPid, v2.controllers);
    return { manager, reason: `cgroup v2 at ${v2.shared} (${v2.controllers.join(', ')})` };
  }

  const { hierarchies, notes } = detectV1(root, own, name);
  const kinds = hierarchies.flatMap((h) => h.kinds);
  if (!kinds.includes('memory') && !kinds.includes('pids')) {
    for (const h of hierarchies) rmdirQuiet(h.shared);
    const why = notes.length ? notes.join('; ') : `no cgroup file system at ${root}`;
    return { manager: null, reason: `no writable memory or pids cgroup: ${why}` };
  }
  const manager = new CgroupManager('v1', hierarchies, serverPid, kinds);
  const where = hierarchies.map((h) => `${h.kinds.join(',')} ${h.shared}`).join(', ');
  return { manager, reason: `cgroup v1: ${where}${notes.length ? ` (${notes.join('; ')})` : ''}` };
}

/** The manager, or null when nothing usable is writable; `lastCgroupReason` says why. */
export async function detectCgroups(opts: DetectOptions = {}): Promise<CgroupManager | null> {
  const { manager, reason } = await probeCgroups(opts);
  lastCgroupReason = reason;
  return manager;
}

// ---------------------------------------------------------------------------------------------------------------

/** Keeps a client-chosen run id from naming anything outside the server's group, and keeps names unique. */
function groupName(seq: number, runId: string): string {
  const safe = runId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
  return `r${seq}-${safe}`;
}

export class CgroupManager implements CgroupSupport {
  readonly memory: boolean;
  readonly pids: boolean;
  readonly cpu: boolean;
  readonly atomicKill: boolean;
  readonly serverDirs: string[];
  private readonly live = new Set<BaseRun>();
  private readonly workers = new Map<string, WorkerGroup>();
  private seq = 0;

  /** Use detectCgroups(); the constructor trusts what it is given. */
  constructor(
    readonly version: 'v1' | 'v2',
    private readonly hierarchies: Hierarchy[],
    readonly serverPid: number,
    private readonly controllers: string[],
  ) {
    // Freezer last: it must outlive the other groups of a run while destroy() kills.
    const hasFreezer = (h: Hierarchy) => Number(h.kinds.includes('freezer'));
    this.hierarchies = [...hierarchies].sort((a, b) => hasFreezer(a) - hasFreezer(b));
    this.memory = controllers.includes('memory');
    this.pids = controllers.includes('pids');
    this.cpu = version === 'v2' || controllers.includes('cpuacct');
    this.atomicKill = version === 'v2' || controllers.includes('freezer');
    this.serverDirs = this.hierarchies.map((h) => path.join(h.shared, String(serverPid)));
  }

  private groupPaths(rel: string): GroupPaths {
    const dirs = this.hierarchies.map((h) => path.join(h.shared, rel));
    if (this.version === 'v2') {
      return {
        dirs,
        killFile: path.join(dirs[0], 'cgroup.kill'),
        freeze: { file: path.join(dirs[0], 'cgroup.freeze'), on: '1', off: '0' },
      };
    }
    const f = this.hierarchies.findIndex((h) => h.kinds.includes('freezer'));
    if (f < 0) return { dirs };
    return { dirs, freeze: { file: path.join(dirs[f], 'freezer.state'), on: 'FROZEN', off: 'THAWED' } };
  }

  /** Child directory names of `dir` (empty when it does not exist). */
  private static subdirs(dir: string): string[] {
    try {
      return fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  }

  /** Empties and removes `<shared>/<rel>` with every group below it, in every hierarchy. */
  private async sweep(rel: string): Promise<{ killed: number; error?: string }> {
    let killed = 0;
    let error: string | undefined;
    const children = new Set<string>();
    for (const h of this.hierarchies) for (const c of CgroupManager.subdirs(path.join(h.shared, rel))) children.add(c);
    for (const c of children) {
      const r = await this.sweep(path.join(rel, c));
      killed += r.killed;
      error ??= r.error;
    }
    const r = await drainAsync(this.groupPaths(rel));
    return { killed: killed + r.killed, error: error ?? r.error };
  }

  /**
   * Creates this server's parent group(s) `<shared>/<serverPid>` and removes the groups of servers that are gone
   * (pid dead, or reused by a process younger than the group), killing what still runs in them. Call once, before
   * create(); throws when the server's group cannot be made.
   */
  async init(): Promise<{ staleRemoved: number; processesKilled: number }> {
    const bootMs = bootTimeMs();
    const stale = new Set<string>();
    for (const h of this.hierarchies) {
      for (const entry of CgroupManager.subdirs(h.shared)) {
        const pid = Number(entry);
        if (!/^\d+$/.test(entry)) continue;
        // Our own pid's group can only be left over from an earlier server that had this pid.
        if (pid === this.serverPid) {
          stale.add(entry);
          continue;
        }
        if (!alive(pid)) {
          stale.add(entry);
          continue;
        }
        // A live pid that started after the group was last touched is a reused pid, not the group's server.
        const started = processStartMs(pid, bootMs);
        let touched = Infinity;
        try {
          touched = fs.statSync(path.join(h.shared, entry)).mtimeMs;
        } catch {
          // Gone meanwhile.
        }
        if (started !== null && started > touched + 1000) stale.add(entry);
      }
    }
    let staleRemoved = 0;
    let processesKilled = 0;
    for (const entry of stale) {
      const r = await this.sweep(entry);
      processesKilled += r.killed;
      if (entry !== String(this.serverPid) && !r.error) staleRemoved++;
    }
    for (const h of this.hierarchies) {
      // The shared group may have been removed since detection by another server's exit (it removes the shared
      // group when it looks unused), so it is made, and on v2 its controllers enabled, again.
      const dirs = [h.shared, path.join(h.shared, String(this.serverPid))];
      for (const dir of dirs) {
        const err = tryMkdir(dir) ?? (this.version === 'v2' ? enable(dir, this.controllers) : null);
        if (err) throw new Error(`cannot set up cgroup ${dir}: ${err}`);
      }
    }
    return { staleRemoved, processesKilled };
  }

  /**
   * A fresh group for one run, limits set: v1 memory.limit_in_bytes (+ memory.memsw.limit_in_bytes where swap is
   * accounted) and pids.max; v2 memory.max, memory.swap.max=0 and pids.max. The group is named `r<n>-<runId>`
   * with the run id reduced to [A-Za-z0-9_-], so a client-chosen id can neither escape nor collide. Throws (after
   * removing what it made) when a directory or limit cannot be written.
   */
  async create(runId: string, limits: RunLimits): Promise<RunCgroup> {
    const rel = path.join(String(this.serverPid), groupName(++this.seq, runId));
    const g = this.groupPaths(rel);
    const made: string[] = [];
    try {
      for (const dir of g.dirs) {
        fs.mkdirSync(dir);
        made.push(dir);
      }
      const mem = String(Math.max(1, Math.floor(limits.memoryBytes)));
      const pids = String(Math.max(1, Math.floor(limits.processes)));
      const run = this.version === 'v2' ? new V2Run(this, g) : new V1Run(this, g, this.hierarchies);
      run.applyLimits(this, mem, pids);
      this.live.add(run);
      return run;
    } catch (e) {
      removeDirs(made.reverse());
      throw e;
    }
  }

  /**
   * The group of one pool worker, `<serverPid>/w-<id>`, made on first use and kept for the server's life. The
   * worker's zygote joins it once at start, so every run it forks is born in it (see launcher.c: joining costs an
   * RCU grace period, 5-15 ms here, which a per-run group made every run pay). One run at a time uses a worker.
   */
  worker(id: string): WorkerGroup {
    let w = this.workers.get(id);
    if (!w) {
      const rel = path.join(String(this.serverPid), `w-${id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48)}`);
      const g = this.groupPaths(rel);
      for (const dir of g.dirs) tryMkdir(dir);
      w = new WorkerGroup(this, g, this.hierarchies);
      this.workers.set(id, w);
    }
    return w;
  }

  /** @internal */
  forget(run: BaseRun): void {
    this.live.delete(run);
  }

  /** Runs still alive (not destroyed). */
  get liveRuns(): number {
    return this.live.size;
  }

  /** Synchronous (for process 'exit'): kills everything in every run group (bounded by 2 s in all) and removes
   *  the run groups, the server's group and, when no other server uses it, the shared group. */
  disposeSync(): void {
    const deadline = Date.now() + DRAIN_MS;
    for (const run of this.live) drainSync(run.paths, deadline);
    this.live.clear();
    this.workers.clear();
    // Groups of runs this manager lost track of (should be none), then the server's own group.
    for (const h of this.hierarchies) {
      for (const c of CgroupManager.subdirs(path.join(h.shared, String(this.serverPid)))) {
        drainSync(this.groupPaths(path.join(String(this.serverPid), c)), deadline);
      }
    }
    drainSync(this.groupPaths(String(this.serverPid)), deadline);
    // The shared parent goes too when no other server uses it; otherwise rmdir fails and it stays.
    for (const h of this.hierarchies) rmdirQuiet(h.shared);
  }
}

abstract class BaseRun implements RunCgroup {
  readonly procsFiles: string[];
  readonly dirs: string[];
  private ended?: Promise<{ killed: number; error?: string }>;

  constructor(
    private readonly manager: CgroupManager,
    readonly paths: GroupPaths,
  ) {
    this.dirs = paths.dirs;
    this.procsFiles = paths.dirs.map((d) => path.join(d, 'cgroup.procs'));
  }

  abstract applyLimits(m: CgroupManager, memoryBytes: string, pids: string): void;
  abstract stats(): Promise<RunStats>;

  protected countProcs(): number {
    return readPids(this.procsFiles[0]).length;
  }

  /** Kills what is still in the group (freezing first where a freezer exists; v2 cgroup.kill), waits until it is
   *  empty (2 s at most) and removes it. Idempotent: a second call returns the first call's answer. */
  destroy(): Promise<{ killed: number; error?: string }> {
    this.ended ??= drainAsync(this.paths)
      .catch((e: unknown) => ({ killed: 0, error: String(e) }))
      .finally(() => this.manager.forget(this));
    return this.ended;
  }
}

class V1Run extends BaseRun {
  private readonly dirOf: Partial<Record<V1Controller, string>> = {};

  constructor(manager: CgroupManager, paths: GroupPaths, hierarchies: Hierarchy[]) {
    super(manager, paths);
    hierarchies.forEach((h, i) => h.kinds.forEach((k) => (this.dirOf[k] = paths.dirs[i])));
  }

  applyLimits(m: CgroupManager, memoryBytes: string, pids: string): void {
    const mem = this.dirOf.memory;
    if (m.memory && mem) {
      fs.writeFileSync(path.join(mem, 'memory.limit_in_bytes'), memoryBytes);
      // Swap counts too (memsw ≥ limit, so it is written second); absent without swap accounting.
      try {
        fs.writeFileSync(path.join(mem, 'memory.memsw.limit_in_bytes'), memoryBytes);
      } catch {
        // No swap accounting on this kernel.
      }
    }
    if (m.pids && this.dirOf.pids) fs.writeFileSync(path.join(this.dirOf.pids, 'pids.max'), pids);
  }

  async stats(): Promise<RunStats> {
    const mem = this.dirOf.memory;
    const cpu = this.dirOf.cpuacct;
    const pids = this.dirOf.pids;
    let oomKills = 0;
    let peak = 0;
    if (mem) {
      peak =
        readNumber(path.join(mem, 'memory.max_usage_in_bytes')) ??
        readNumber(path.join(mem, 'memory.usage_in_bytes')) ??
        0;
      // `oom_kill` in memory.oom_control since Linux 4.13; before that a hit limit is the best sign.
      oomKills =
        readKey(path.join(mem, 'memory.oom_control'), 'oom_kill') ??
        (readNumber(path.join(mem, 'memory.failcnt')) ? 1 : 0);
    }
    const ns = cpu ? (readNumber(path.join(cpu, 'cpuacct.usage')) ?? 0) : 0;
    const current = pids ? readNumber(path.join(pids, 'pids.current')) : null;
    const processes = current ?? this.countProcs();
    return { peakMemoryBytes: peak, cpuMs: ns / 1e6, oomKills, processes };
  }
}

class V2Run extends BaseRun {
  applyLimits(m: CgroupManager, memoryBytes: string, pids: string): void {
    const dir = this.dirs[0];
    if (m.memory) {
      fs.writeFileSync(path.join(dir, 'memory.max'), memoryBytes);
      try {
        fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      } catch {
        // No swap controller (swapaccount=0): nothing to cap.
      }
    }
    if (m.pids) fs.writeFileSync(path.join(dir, 'pids.max'), pids);
  }

  async stats(): Promise<RunStats> {
    const dir = this.dirs[0];
    const peak = readNumber(path.join(dir, 'memory.peak')) ?? readNumber(path.join(dir, 'memory.current')) ?? 0;
    const events = path.join(dir, 'memory.events');
    const oomKills = readKey(events, 'oom_kill') ?? (readKey(events, 'max') ? 1 : 0);
    const usec = readKey(path.join(dir, 'cpu.stat'), 'usage_usec') ?? 0;
    const processes = readNumber(path.join(dir, 'pids.current')) ?? this.countProcs();
    return { peakMemoryBytes: peak, cpuMs: usec / 1000, oomKills, processes };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Worker groups: one per pool worker, reused run after run

/** Kills every process of the group but `keep`, until only those are left or the deadline passes. */
async function emptyExcept(g: GroupPaths, keep: ReadonlySet<number>, deadline: number): Promise<{ killed: number; error?: string }> {
  const killed = new Set<number>();
  const others = (): number[] => {
    const pids = new Set<number>();
    for (const dir of g.dirs) for (const pid of readPids(path.join(dir, 'cgroup.procs'))) if (!keep.has(pid)) pids.add(pid);
    return [...pids];
  };
  for (let left = others(); left.length > 0; left = others()) {
    if (Date.now() > deadline) return { killed: killed.size, error: `still populated: ${left.length} process(es)` };
    let frozen = false;
    if (g.freeze) {
      try {
        fs.writeFileSync(g.freeze.file, g.freeze.on);
        frozen = true;
      } catch {
        // Signalling alone still converges under the pids limit.
      }
    }
    for (const pid of frozen ? others() : left) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // Already gone.
      }
    }
    if (frozen && g.freeze) {
      try {
        fs.writeFileSync(g.freeze.file, g.freeze.off);
      } catch {
        // The next round retries.
      }
    }
    if (others().length > 0) await sleep(POLL_MS);
  }
  return { killed: killed.size };
}

/** A pool worker's group. `begin()` sets one run's limits and takes the counters' starting point. */
export class WorkerGroup {
  readonly procsFiles: string[];
  readonly dirs: string[];
  private readonly dirOf: Partial<Record<V1Controller | 'v2', string>> = {};

  constructor(
    private readonly manager: CgroupManager,
    readonly paths: GroupPaths,
    hierarchies: Hierarchy[],
  ) {
    this.dirs = paths.dirs;
    this.procsFiles = paths.dirs.map((d) => path.join(d, 'cgroup.procs'));
    if (manager.version === 'v2') this.dirOf.v2 = paths.dirs[0];
    else hierarchies.forEach((h, i) => h.kinds.forEach((k) => (this.dirOf[k] = paths.dirs[i])));
  }

  /**
   * One run's limits, written before it starts: memory and pids (`extraProcesses` for the zygote, the launcher and,
   * in a sandbox, bwrap and its init). The memory limit is the run's own plus what the group holds that the run
   * cannot have (the zygote; at least WORKER_OVERHEAD_BYTES) — not the page cache earlier runs left in the group:
   * that is reclaimable, so counting it in would let each run hand the next a larger limit (a run that filled the
   * cache with 480 MB of /usr got the next one 1 GB under a 512 MB limit). Setting the limit reclaims any cache above
   * it; the rest stays, for the next run to find. Counters are reset (v1) or remembered (v2).
   */
  begin(limits: RunLimits, extraProcesses: number): RunCgroup {
    const m = this.manager;
    const v2 = this.dirOf.v2;
    const memDir = v2 ?? this.dirOf.memory;
    const cpuDir = v2 ?? this.dirOf.cpuacct;
    const pidsDir = v2 ?? this.dirOf.pids;
    const usageFile = v2 ? 'memory.current' : 'memory.usage_in_bytes';
    if (m.memory && memDir) {
      const usage = readNumber(path.join(memDir, usageFile)) ?? 0;
      const stat = path.join(memDir, 'memory.stat');
      // Reclaimable: page cache (v1 keeps tmpfs and shared memory on the anonymous lists; v2 counts them in `file`).
      const cache = v2
        ? Math.max(0, (readKey(stat, 'file') ?? 0) - (readKey(stat, 'shmem') ?? 0))
        : (readKey(stat, 'total_active_file') ?? 0) + (readKey(stat, 'total_inactive_file') ?? 0);
      const held = Math.max(WORKER_OVERHEAD_BYTES, usage - cache);
      const set = (bytes: number): void => {
        const mem = String(Math.max(1, Math.floor(bytes)));
        if (v2) {
          fs.writeFileSync(path.join(memDir, 'memory.max'), mem);
          tryWrite(path.join(memDir, 'memory.swap.max'), '0');
        } else {
          // memsw must stay ≥ the limit: raise it first when the limit goes up, lower it last when it goes down.
          tryWrite(path.join(memDir, 'memory.memsw.limit_in_bytes'), mem);
          fs.writeFileSync(path.join(memDir, 'memory.limit_in_bytes'), mem);
          tryWrite(path.join(memDir, 'memory.memsw.limit_in_bytes'), mem);
          // Socket buffers count only against this in v1 (v2 charges them to memory.current): loopback TCP is
          // otherwise the host's (tcp_mem) to fill.
          tryWrite(path.join(memDir, 'memory.kmem.tcp.limit_in_bytes'), mem);
        }
      };
      try {
        set(limits.memoryBytes + held);
      } catch {
        // v1 refuses (EBUSY) a limit below what it cannot reclaim: then the run gets its limit on top of all of it.
        set(limits.memoryBytes + usage);
      }
      if (!v2) tryWrite(path.join(memDir, 'memory.max_usage_in_bytes'), '0');
    }
    const baseUsage = memDir ? (readNumber(path.join(memDir, usageFile)) ?? 0) : 0;
    if (m.pids && pidsDir) fs.writeFileSync(path.join(pidsDir, 'pids.max'), String(Math.max(1, Math.floor(limits.processes + extraProcesses))));
    let peakFd: number | undefined;
    if (v2 && memDir) {
      // memory.peak is reset per open file (Linux 6.12+): the run's own peak is read back through this fd.
      try {
        peakFd = fs.openSync(path.join(memDir, 'memory.peak'), 'r+');
        fs.writeSync(peakFd, 'reset');
      } catch {
        if (peakFd !== undefined) fs.closeSync(peakFd);
        peakFd = undefined;
      }
    }
    if (!v2 && cpuDir) tryWrite(path.join(cpuDir, 'cpuacct.usage'), '0');
    const oomKills = (): number =>
      memDir
        ? (v2
            ? readKey(path.join(memDir, 'memory.events'), 'oom_kill')
            : readKey(path.join(memDir, 'memory.oom_control'), 'oom_kill')) ?? 0
        : 0;
    const cpuNow = (): number =>
      cpuDir ? (v2 ? (readKey(path.join(cpuDir, 'cpu.stat'), 'usage_usec') ?? 0) / 1000 : (readNumber(path.join(cpuDir, 'cpuacct.usage')) ?? 0) / 1e6) : 0;
    const base = { oom: oomKills(), cpu: v2 ? cpuNow() : 0 };
    const paths = this.paths;
    const procsFiles = this.procsFiles;
    let ended: Promise<{ killed: number; error?: string }> | undefined;
    return {
      procsFiles: [],
      dirs: this.dirs,
      stats: async () => {
        let peak = 0;
        if (memDir) {
          if (v2) {
            let text: string | null = null;
            if (peakFd !== undefined) {
              const buf = Buffer.alloc(32);
              text = buf.subarray(0, fs.readSync(peakFd, buf, 0, 32, 0)).toString();
            }
            peak = Number(text ?? readText(path.join(memDir, 'memory.current')) ?? 0);
          } else {
            peak = readNumber(path.join(memDir, 'memory.max_usage_in_bytes')) ?? 0;
          }
        }
        const processes = pidsDir ? (readNumber(path.join(pidsDir, 'pids.current')) ?? 0) : readPids(procsFiles[0]!).length;
        return {
          peakMemoryBytes: Math.max(0, peak - baseUsage),
          cpuMs: Math.max(0, cpuNow() - base.cpu),
          oomKills: oomKills() - base.oom,
          processes,
        };
      },
      destroy: (keep: readonly number[] = []) => {
        ended ??= emptyExcept(paths, new Set(keep), Date.now() + DRAIN_MS)
          .catch((e: unknown) => ({ killed: 0, error: String(e) }))
          .finally(() => {
            if (peakFd !== undefined) fs.closeSync(peakFd);
          });
        return ended;
      },
    };
  }
}

function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}
