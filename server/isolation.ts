/**
 * Isolation: which mode runs use (`bwrap` where bubblewrap works, else `process`), and the bubblewrap command line
 * of one run. The argument builder is pure, so what a sandbox can see is unit-tested line by line.
 *
 * A bwrap run gets new PID, mount, IPC, UTS, cgroup and network namespaces, inside its worker's user namespace, in
 * which the sandbox user 65534 is the worker's own host uid (server/identity.ts); pid 1 (`sbx-launch --init -u`) drops every capability, becomes that user, makes itself
 * non-dumpable and loads the seccomp filter before the program starts. bwrap sets no_new_privs (setuid binaries
 * don't elevate) and a new session (no controlling terminal: TIOCSTI fails); the environment is cleared but for the
 * allow-list; `--die-with-parent`. It sees, read-only: /usr (and the merged-usr links /bin, /lib…), an /etc of its
 * own with the few files dynamic linking and `id` need (a generated passwd/group, never the host's), the launcher
 * and the seccomp filter, each runtime's own install prefix when it lives outside /usr (pyenv's under /root: that
 * prefix only, nothing else of /root or /home), and — for test runs only — the workspace. It writes only to /work
 * (its cwd), /tmp and /dev/shm, each a fresh tmpfs of `diskMb`, gone when the run ends; everything else is
 * read-only. /proc is the namespace's own, with /proc/sys, fs, irq and bus read-only and the files runc masks (kcore,
 * keys, kallsyms, timer_list, …) covered; /dev is minimal (null, zero, full, random, urandom, tty, pts, shm).
 */
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import which from 'which';
import type { HostIds, SandboxIdentity } from './identity';
import type { IsolationMode, IsolationSetting } from './protocol';

/** uid and gid of a run inside the sandbox ("nobody"); on the host, its worker's own ids (server/identity.ts). */
export const SANDBOX_UID = 65534;
/** Where the run's work dir is inside the sandbox (its cwd and HOME). */
export const BOX_WORK = '/work';
/** Where the launcher is inside the sandbox (it is pid 1 there: `sbx-launch --init`): in the sandbox's /etc. */
export const BOX_LAUNCHER = '/etc/sbx-launch';
/** The seccomp filter (BPF) pid 1 loads, in the sandbox's /etc. */
export const BOX_SECCOMP = '/etc/sbx-seccomp.bpf';

const SYSTEM_DIRS = ['/usr'];
/** Top-level entries that are links into /usr on merged-usr systems, or real dirs on older ones. */
const TOP_LEVEL = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** Files of /etc a program needs to start and to look itself up; nothing secret. Copied, with the launcher and a
 *  generated passwd and group, into one directory that is the sandbox's /etc: one mount, not six (each costs a run
 *  ~0.15 ms, measured). /etc/alternatives (hundreds of links into /usr: copying them cost every server start
 *  ~110 ms, measured) is bound on top instead. */
const ETC_FILES = ['ld.so.cache', 'localtime'];
const ALTERNATIVES = '/etc/alternatives';
/** Parts of /proc a run must not write (runc's read-only paths; bwrap covers /proc/irq and /proc/bus only when it
 *  finds them writable to its own uid, so a non-root server's sandboxes would get them writable where root-owned
 *  files allow it: bound read-only here whoever runs the server). */
const PROC_READ_ONLY = ['sys', 'fs', 'irq', 'bus'];
/** Parts of /proc a run must not see (runc's masked paths, and kallsyms, key-users and sysrq-trigger): kernel
 *  addresses and timers, keys, raw memory. Only those that exist here are covered (one mount each). */
const PROC_MASKED = ['acpi', 'asound', 'kcore', 'keys', 'key-users', 'kallsyms', 'latency_stats', 'timer_list', 'timer_stats', 'sched_debug', 'scsi', 'sysrq-trigger'];

/** Capabilities pid 1 keeps from bwrap in a worker's user namespace, each for one step before the program starts. */
const WORKER_CAPS = ['CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_SETPCAP'];
/** Directories the sandbox already has (mount points): a bind below one needs no `--dir` for it. */
const BOX_MOUNTS = new Set(['/tmp', BOX_WORK, '/usr', '/etc', '/proc', '/dev']);

/** What the host offers, read once at start (so every run's arguments are built without touching the disk). */
export interface HostLayout {
  /** Top-level links, e.g. `/lib64` → `usr/lib64`. */
  links: { path: string; target: string }[];
  /** Top-level entries that are real directories (bound read-only). */
  dirs: string[];
  /** The sandbox's /etc (a host directory): ETC_FILES, `passwd`, `group`, the launcher as `sbx-launch` and, once
   *  exportSeccomp() ran, the filter. */
  etc: string;
  /** /etc/alternatives exists here (bound read-only into the sandbox's /etc). */
  alternatives: boolean;
  /** /proc entries to cover: files with /dev/null, directories with `empty`. */
  procMasks: { files: string[]; dirs: string[] };
  /** /proc subdirectories bound read-only over themselves. */
  procReadOnly: string[];
  /** An empty, read-only directory (what a masked /proc directory shows). */
  empty: string;
}

/** Writes a file whose mode does not depend on the server's umask: the sandbox user (another uid) must read it. */
function writePublic(file: string, text: string, mode: number): void {
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
}

export function readHostLayout(stateDir: string, launcher: string, proc = '/proc'): HostLayout {
  const links: HostLayout['links'] = [];
  const dirs: string[] = [...SYSTEM_DIRS];
  for (const p of TOP_LEVEL) {
    try {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) links.push({ path: p, target: readlinkSync(p) });
      else if (st.isDirectory()) dirs.push(p);
    } catch {
      // not on this system
    }
  }
  const etc = path.join(stateDir, 'etc');
  rmSync(etc, { recursive: true, force: true });
  mkdirSync(etc);
  chmodSync(etc, 0o755);
  for (const name of ETC_FILES) {
    const from = path.join('/etc', name);
    // localtime is a link on most systems: its file is copied.
    if (existsSync(from)) {
      copyFileSync(from, path.join(etc, name));
      chmodSync(path.join(etc, name), 0o644);
    }
  }
  const alternatives = existsSync(ALTERNATIVES);
  if (alternatives) mkdirSync(path.join(etc, path.basename(ALTERNATIVES))); // the mount point
  writePublic(path.join(etc, 'passwd'), `nobody:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:${BOX_WORK}:/usr/sbin/nologin\n`, 0o644);
  writePublic(path.join(etc, 'group'), `nogroup:x:${SANDBOX_UID}:\n`, 0o644);
  const boxLauncher = path.join(etc, path.basename(BOX_LAUNCHER));
  copyFileSync(launcher, boxLauncher);
  chmodSync(boxLauncher, 0o755);
  const empty = path.join(stateDir, 'empty');
  rmSync(empty, { recursive: true, force: true });
  mkdirSync(empty);
  chmodSync(empty, 0o555);
  const procMasks: HostLayout['procMasks'] = { files: [], dirs: [] };
  for (const name of PROC_MASKED) {
    try {
      const st = lstatSync(path.join(proc, name));
      (st.isDirectory() ? procMasks.dirs : procMasks.files).push(path.posix.join('/proc', name));
    } catch {
      // not in this kernel
    }
  }
  const procReadOnly = PROC_READ_ONLY.filter((name) => existsSync(path.join(proc, name))).map((name) => path.posix.join('/proc', name));
  return { links, dirs, etc, alternatives, procMasks, procReadOnly, empty };
}

/** Writes the seccomp filter into the sandbox's /etc (the launcher builds it with libseccomp) and returns what it
 *  denies, one line per rule (`deny ptrace: …`). */
export async function exportSeccomp(launcher: string, layout: HostLayout): Promise<string[]> {
  const file = path.join(layout.etc, path.basename(BOX_SECCOMP));
  const r = await execa(launcher, ['--seccomp-export', file], { reject: false, timeout: 10_000, stdin: 'ignore', extendEnv: false, env: {} });
  if (r.exitCode !== 0) throw new Error(`cannot build the seccomp filter: ${String(r.stderr).trim() || `exit ${r.exitCode}`}`);
  chmodSync(file, 0o644);
  return String(r.stdout).split('\n').filter((l) => l.startsWith('deny ') || l.startsWith('enosys '));
}

/** The directory a runtime must see besides /usr: its install prefix (`…/versions/3.11.7` for
 *  `…/versions/3.11.7/bin/python3.11`), or nothing when it lives under a system dir. */
export function runtimeRoot(binary: string | null, layout: Pick<HostLayout, 'dirs' | 'links'>): string | undefined {
  if (!binary || !path.isAbsolute(binary)) return undefined;
  const system = [...layout.dirs, ...layout.links.map((l) => l.path)];
  if (system.some((d) => binary === d || binary.startsWith(`${d}/`))) return undefined;
  const dir = path.dirname(binary);
  // `…/bin/python` and pyenv's `…/shims/python3` (a script that runs `…/libexec/pyenv`) need their whole prefix.
  const prefix = ['bin', 'shims'].includes(path.basename(dir)) ? path.dirname(dir) : dir;
  // Never the whole of a home or /: a binary directly in / or /root would expose all of it.
  if (prefix === '/' || prefix.split('/').filter(Boolean).length < 2) return dir === '/' ? undefined : dir;
  return prefix;
}

export interface BwrapRun {
  bwrap: string;
  layout: HostLayout;
  /**
   * `worker`: bwrap starts inside its worker's user namespace (the zygote's, server/identity.ts) as root there,
   * makes no user namespace of its own, and pid 1 switches to the sandbox user (which is the worker's own host uid)
   * itself. `per-run`: bwrap makes one and maps the sandbox user onto the server's own uid (no ids of their own).
   */
  userns: 'worker' | 'per-run';
  /** Read-only install prefixes of the runtime (and compiler) outside /usr. */
  runtimeRoots: string[];
  /** Host files bound read-only into /work under these names (the program, a compiled binary). */
  files: { host: string; name: string }[];
  /** A host directory bound read-write as /work instead of a tmpfs (the compile step, whose output we keep). */
  writableWorkDir?: string;
  /** Bound read-only at its own path (test runs import their neighbours). */
  workspace?: string;
  /** Size of /work and /tmp, each. */
  diskBytes: number;
  env: Record<string, string>;
}

/** The argv of bwrap, through `--` and pid 1's own options (`sbx-launch --init …`); its rlimits, `--` and the
 *  program follow. */
export function bwrapArgs(run: BwrapRun): string[] {
  // A network namespace of its own each time (loopback only): one shared by a worker's runs carried TIME_WAIT
  // sockets, and /proc/net's view of them, from one run to the next (measured: +0.8 ms a run).
  const a: string[] = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-net'];
  if (run.userns === 'per-run') a.push('--unshare-user', '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_UID));
  a.push('--hostname', 'sandbox', '--die-with-parent', '--new-session', '--cap-drop', 'ALL');
  // pid 1 needs these for one thing: giving /work to the sandbox user, dropping the bounding set and switching to
  // that user (server/launcher/identity.c); it holds none of them when the program starts.
  if (run.userns === 'worker') a.push(...WORKER_CAPS.flatMap((c) => ['--cap-add', c]));
  a.push('--as-pid-1', '--clearenv');
  for (const [k, v] of Object.entries(run.env)) a.push('--setenv', k, v);
  for (const d of run.layout.dirs) a.push('--ro-bind', d, d);
  for (const l of run.layout.links) a.push('--symlink', l.target, l.path);
  a.push('--ro-bind', run.layout.etc, '/etc');
  if (run.layout.alternatives) a.push('--ro-bind', ALTERNATIVES, ALTERNATIVES);
  a.push('--proc', '/proc');
  // The host's /proc/sys shows each reader its own namespaces' values; bound read-only, no sysctl can be written.
  for (const p of run.layout.procReadOnly) a.push('--ro-bind', p, p);
  for (const p of run.layout.procMasks.files) a.push('--ro-bind', '/dev/null', p);
  for (const p of run.layout.procMasks.dirs) a.push('--ro-bind', run.layout.empty, p);
  const size = String(Math.max(1, Math.floor(run.diskBytes)));
  // bwrap's /dev is a tmpfs with no size limit: read-only, with a sized /dev/shm (POSIX semaphores need it). /tmp
  // and /dev/shm are everyone's, as usual; /work (a tmpfs owned by the sandbox's root) pid 1 gives to the user.
  a.push('--dev', '/dev', '--perms', '1777', '--size', size, '--tmpfs', '/dev/shm', '--remount-ro', '/dev');
  a.push('--perms', '1777', '--size', size, '--tmpfs', '/tmp');
  if (run.writableWorkDir) a.push('--bind', run.writableWorkDir, BOX_WORK);
  else a.push('--size', size, '--tmpfs', BOX_WORK);
  // After the tmpfs mounts, which would otherwise hide what is bound below /tmp. bwrap 0.8 makes the missing
  // parents of a bind 0700 (its own root's): the sandbox user could not reach the runtime. Made 0755 first.
  const made = new Set<string>();
  const bindWithParents = (dir: string): void => {
    const parents: string[] = [];
    for (let p = path.posix.dirname(dir); p !== '/' && !made.has(p); p = path.posix.dirname(p)) parents.unshift(p);
    for (const p of parents) {
      made.add(p);
      if (!BOX_MOUNTS.has(p)) a.push('--dir', p);
    }
    a.push('--ro-bind', dir, dir);
  };
  for (const r of run.runtimeRoots) bindWithParents(r);
  for (const f of run.files) a.push('--ro-bind', f.host, path.posix.join(BOX_WORK, f.name));
  if (run.workspace) bindWithParents(run.workspace);
  // bwrap's root is a tmpfs of its own with no size limit, writable by the sandbox user (`../x`, `/big`, `/etc/x`
  // from /work): read-only once everything is mounted, so only /work and /tmp (sized above) take writes.
  a.push('--remount-ro', '/');
  a.push('--chdir', BOX_WORK, '--');
  // pid 1: -u switch to the sandbox user; -w give it /work first (its own tmpfs, never a bound host dir).
  const init = run.userns === 'worker' ? ['-u', ...(run.writableWorkDir ? [] : ['-w'])] : [];
  return [run.bwrap, ...a, BOX_LAUNCHER, '--init', ...init, '-s', BOX_SECCOMP];
}

export interface IsolationChoice {
  mode: IsolationMode;
  reason: string;
  bwrap: string | null;
  /** Who sandboxed programs are on the host (bwrap mode); the identity the trial sandbox proved. */
  identity: SandboxIdentity | null;
}

/** The zygote's (and the trial's) options that make a worker's user namespace mapped to `ids`. */
export function identityArgs(identity: SandboxIdentity, ids: HostIds): string[] {
  return identity.mode === 'dedicated' ? ['-i', `${ids.uid}:${ids.gid}`, ...mapHelperArgs(identity)] : [];
}

function mapHelperArgs(identity: SandboxIdentity): string[] {
  return identity.mode === 'dedicated' && identity.mapHelpers ? ['-M', identity.mapHelpers.newuidmap, '-N', identity.mapHelpers.newgidmap] : [];
}

/**
 * Picks the mode for this server: `bwrap` when asked for (or `auto`) and a trial sandbox starts here, made exactly
 * as runs are (the worker's user namespace, pid 1 switching user, the seccomp filter); `process` when asked for, or
 * when `auto` finds bwrap missing or unable to start (user namespaces off, say). When ids of their own cannot be
 * set up for an ordinary user, sandboxes run as the server's uid (the identity says so). Asking for `bwrap` where it
 * doesn't work is an error: the server must not quietly run code unsandboxed.
 */
export async function chooseIsolation(
  setting: IsolationSetting,
  layout: HostLayout,
  launcher: string,
  identity: SandboxIdentity,
): Promise<IsolationChoice> {
  if (setting === 'process') return { mode: 'process', reason: 'chosen by the isolation setting', bwrap: null, identity: null };
  const found = await which('bwrap', { nothrow: true });
  let problem = found ? undefined : 'bwrap (Debian package bubblewrap) was not found on PATH';
  let proved: SandboxIdentity = identity;
  if (found) {
    problem = await trialSandbox(found, layout, launcher, identity);
    if (problem && identity.mode === 'dedicated' && identity.mapHelpers) {
      // An ordinary user's subordinate ids did not work here: bubblewrap's default (the user's own uid) still may.
      const fallback: SandboxIdentity = { mode: 'server', reason: `your subordinate ids could not be used (${problem})` };
      const again = await trialSandbox(found, layout, launcher, fallback);
      if (!again) proved = fallback;
      problem = again;
    }
  }
  if (!problem) {
    const version = await execa(found!, ['--version'], { reject: false, timeout: 5000 });
    return { mode: 'bwrap', reason: `${String(version.stdout).trim() || 'bubblewrap'} works here`, bwrap: found!, identity: proved };
  }
  if (setting === 'bwrap') throw new Error(`isolation "bwrap" was asked for but cannot be used: ${problem}`);
  return { mode: 'process', reason: problem, bwrap: null, identity: null };
}

/** Starts one empty sandbox the way runs are started; returns why it failed, or undefined. */
async function trialSandbox(bwrap: string, layout: HostLayout, launcher: string, identity: SandboxIdentity): Promise<string | undefined> {
  const argv = bwrapArgs({
    bwrap,
    layout,
    userns: identity.mode === 'dedicated' ? 'worker' : 'per-run',
    runtimeRoots: [],
    files: [],
    diskBytes: 1024 * 1024,
    env: { PATH: '/usr/bin:/bin' },
  });
  const command =
    identity.mode === 'dedicated'
      ? [launcher, '--userns-exec', `${identity.uids.first}:${identity.gids.first}`, ...mapHelperArgs(identity), '--', ...argv]
      : argv;
  // fd 3 is pid 1's report: a setup error (the user switch, the filter) is said there.
  const r = await execa(command[0]!, [...command.slice(1), '--', 'true'], {
    reject: false,
    timeout: 10_000,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    extendEnv: false,
    env: {},
  });
  if (r.exitCode === 0) return undefined;
  const reported = String(r.stdio[3] ?? '').split('\n').find((l) => l.startsWith('setup-error ') || l.startsWith('exec-error '));
  const said = reported ?? String(r.stderr).trim().split('\n')[0];
  return `a trial bubblewrap sandbox failed${said ? `: ${said}` : ` (exit ${r.exitCode ?? r.signal})`}`;
}
