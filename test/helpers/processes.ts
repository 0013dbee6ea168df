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
export function processesOfRun(serverPid: number, zygotePid: number | undefined, runMarker: string): number[] {
  const pids = allPids().filter((p) => p !== process.pid && !isZombie(p));
  const parents = new Map(pids.map((p) => [p, ppidOf(p)] as const));
  const descends = (p: number): boolean => {
    for (let q = parents.get(p), hops = 0; q !== undefined && q > 1 && hops < 64; q = parents.get(q), hops++) {
      if (q === zygotePid) return true; // launchers and their runs hang below the zygote
      // The server's own long-lived helpers are not a run's: its zygote, and esbuild's service process (started by
      // the first TypeScript transpile, kept for the server's life). A run can't make a child of the server.
      if (q === serverPid) return p !== zygotePid && !isEsbuildService(p);
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

/** The zygote: the server's child running `sbx-launch --zygote`. */
export function zygoteOf(serverPid: number): number | undefined {
  return allPids().find((p) => ppidOf(p) === serverPid && (readText(`/proc/${p}/cmdline`) ?? '').includes('--zygote'));
}


/** Every live process below the server but its zygote (its runs: launchers, bwrap, programs, compilers). */
export function runProcessesOf(serverPid: number): number[] {
  return processesOfRun(serverPid, zygoteOf(serverPid), '\0no marker\0');
}
