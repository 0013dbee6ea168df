/**
 * Finding the processes of a run on the host, however they tried to hide: by parentage below the server (but for
 * its zygote), by a marker on their command line, or by a PID namespace whose processes carry the marker.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

function isZombie(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  return !stat || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

function ppidOf(pid: number): number | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** esbuild's service (`…/esbuild --service=<version> --ping`), which `esbuild.transform` runs as a child. */
function isEsbuildService(pid: number): boolean {
  const argv = (readText(`/proc/${pid}/cmdline`) ?? '').split('\0');
  return /(^|\/)esbuild$/.test(argv[0] ?? '') && (argv[1] ?? '').startsWith('--service=');
}

/** Live processes that belong to a run: see the module comment. */
export function processesOfRun(serverPid: number, zygotes: readonly number[], runMarker: string): number[] {
  const zygote = new Set(zygotes);
  const pids = allPids().filter((p) => p !== process.pid && !isZombie(p));
  const parents = new Map(pids.map((p) => [p, ppidOf(p)] as const));
  const descends = (p: number): boolean => {
    for (let q = parents.get(p), hops = 0; q !== undefined && q > 1 && hops < 64; q = parents.get(q), hops++) {
      if (zygote.has(q)) return true; // launchers and their runs hang below a zygote
      // The server's own long-lived helpers are not a run's: its zygotes (one per pool worker), and esbuild's
      // service process (started by the first TypeScript transpile, kept for the server's life). A run can't make
      // a child of the server.
      if (q === serverPid) return !zygote.has(p) && !isEsbuildService(p);
    }
    return false;
  };
  const ownNs = readlinkSync('/proc/self/ns/pid');
  return pids.filter((p) => {
    if (descends(p)) return true;
    const cmd = readText(`/proc/${p}/cmdline`)?.replaceAll('\0', ' ') ?? '';
    if (cmd.includes(runMarker)) return true;
    try {
      // A process in another PID namespace whose init is the run's.
      if (readlinkSync(`/proc/${p}/ns/pid`) === ownNs) return false;
      const status = readText(`/proc/${p}/status`) ?? '';
      const nspids = /NSpid:\s+([\d\s]+)/.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
      return nspids.length > 1 && allPids().some((q) => (readText(`/proc/${q}/cmdline`) ?? '').includes(runMarker));
    } catch {
      return false;
    }
  });
}

/** The zygotes: the server's children running `sbx-launch --zygote` (one per pool worker that has run). */
export function zygotesOf(serverPid: number): number[] {
  return allPids().filter((p) => ppidOf(p) === serverPid && (readText(`/proc/${p}/cmdline`) ?? '').includes('--zygote'));
}


/** Every live process below the server but its zygotes (its runs: launchers, bwrap, programs, compilers). */
export function runProcessesOf(serverPid: number): number[] {
  return processesOfRun(serverPid, zygotesOf(serverPid), '\0no marker\0');
}

/** A process as any user may see it on the host (/proc/PID/status and cmdline are world-readable, its namespace
 *  links are not: so namespaces are told apart by NSpid, which lists the pid in each nested PID namespace). */
export interface HostProcess {
  pid: number;
  ppid: number;
  /** Real, effective, saved and filesystem uid, as the host sees them. */
  uids: number[];
  gids: number[];
  groups: number[];
  /** The pid in each PID namespace from the host's down: one entry for a host process, two in a sandbox. */
  nspid: number[];
  cmd: string;
}

function hostProcess(pid: number): HostProcess | undefined {
  const status = readText(`/proc/${pid}/status`);
  if (!status) return undefined;
  const field = (name: string): number[] =>
    (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  if (/^State:\s+Z/m.test(status)) return undefined;
  return {
    pid,
    ppid: field('PPid')[0] ?? 0,
    uids: field('Uid'),
    gids: field('Gid'),
    groups: field('Groups'),
    nspid: field('NSpid'),
    cmd: (readText(`/proc/${pid}/cmdline`) ?? '').replaceAll('\0', ' ').trim(),
  };
}

function hostProcesses(): Map<number, HostProcess> {
  const all = new Map<number, HostProcess>();
  for (const pid of allPids()) {
    const p = hostProcess(pid);
    if (p) all.set(pid, p);
  }
  return all;
}

/** `roots` and all their descendants in `all`. */
function withDescendants(all: Map<number, HostProcess>, roots: Iterable<number>): HostProcess[] {
  const members = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all.values()) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grew = true;
      }
    }
  }
  return [...members].flatMap((pid) => (all.has(pid) ? [all.get(pid)!] : []));
}

/** Every live process of the sandbox that holds a process whose command line carries `marker`: its pid 1 and all
 *  of pid 1's descendants, found by parentage (a sandbox's pid 1 is the first process, going up, whose parent lives
 *  in the host's PID namespace). */
export function sandboxProcesses(marker: string): HostProcess[] {
  const all = hostProcesses();
  const inits = new Set<number>();
  for (const p of all.values()) {
    if (!p.cmd.includes(marker) || p.nspid.length < 2) continue;
    let q = p;
    for (let parent = all.get(q.ppid); parent && parent.nspid.length >= 2; parent = all.get(q.ppid)) q = parent;
    inits.add(q.pid);
  }
  return withDescendants(all, inits);
}

/** Every live process below the server that lives in a sandbox (a PID namespace below the host's): its runs and
 *  compiles, whatever their command lines. */
export function sandboxedBelow(serverPid: number): HostProcess[] {
  const all = hostProcesses();
  return withDescendants(all, [serverPid]).filter((p) => p.nspid.length >= 2);
}
