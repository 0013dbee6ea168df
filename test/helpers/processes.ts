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
