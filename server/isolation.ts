/**
 * Isolation: which mode runs use (`bwrap` where bubblewrap works, else `process`), and the bubblewrap command line
 * of one run. The argument builder is pure, so what a sandbox can see is unit-tested line by line.
 *
 * A bwrap run gets new user, PID, network, IPC, UTS and cgroup namespaces; uid/gid 65534 inside; no capabilities
 * (and bwrap always sets no_new_privs, so setuid binaries don't elevate); a new session (no controlling terminal:
 * TIOCSTI fails); a cleared environment plus the allow-list; `--die-with-parent`. It sees, read-only: /usr (and the
 * merged-usr links /bin, /lib…), an /etc of its own with the few files dynamic linking and `id` need (a generated
 * passwd/group, never the host's) and the launcher, each runtime's own install prefix when it lives outside /usr (pyenv's under /root: that prefix
 * only, nothing else of /root or /home), the launcher, and — for test runs only — the workspace. It writes only to
 * /work (its cwd), /tmp and /dev/shm, each a fresh tmpfs of `diskMb`, gone when the run ends; everything else is
 * read-only. /proc is the namespace's own; /dev is minimal (null, zero, full, random, urandom, tty, pts, shm).
 */
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import which from 'which';
import type { IsolationMode, IsolationSetting } from './protocol';

/** uid and gid of a run inside the sandbox ("nobody"). */
export const SANDBOX_UID = 65534;
/** Where the run's work dir is inside the sandbox (its cwd and HOME). */
export const BOX_WORK = '/work';
/** Where the launcher is inside the sandbox (it is pid 1 there: `sbx-launch --init`): in the sandbox's /etc. */
export const BOX_LAUNCHER = '/etc/sbx-launch';

const SYSTEM_DIRS = ['/usr'];
/** Top-level entries that are links into /usr on merged-usr systems, or real dirs on older ones. */
const TOP_LEVEL = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** Files of /etc a program needs to start and to look itself up; nothing secret. Copied, with the launcher and a
 *  generated passwd and group, into one directory that is the sandbox's /etc: one mount, not six (each costs a run
 *  ~0.15 ms, measured). /etc/alternatives (hundreds of links into /usr: copying them cost every server start
 *  ~110 ms, measured) is bound on top instead. */
const ETC_FILES = ['ld.so.cache', 'localtime'];
const ALTERNATIVES = '/etc/alternatives';

/** What the host offers, read once at start (so every run's arguments are built without touching the disk). */
export interface HostLayout {
  /** Top-level links, e.g. `/lib64` → `usr/lib64`. */
  links: { path: string; target: string }[];
  /** Top-level entries that are real directories (bound read-only). */
  dirs: string[];
  /** The sandbox's /etc (a host directory): ETC_FILES, `passwd`, `group` and the launcher as `sbx-launch`. */
  etc: string;
  /** /etc/alternatives exists here (bound read-only into the sandbox's /etc). */
  alternatives: boolean;
}

export function readHostLayout(stateDir: string, launcher: string): HostLayout {
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
  mkdirSync(etc, { mode: 0o755 });
  for (const name of ETC_FILES) {
    const from = path.join('/etc', name);
    // localtime is a link on most systems: its file is copied.
    if (existsSync(from)) copyFileSync(from, path.join(etc, name));
  }
  const alternatives = existsSync(ALTERNATIVES);
  if (alternatives) mkdirSync(path.join(etc, path.basename(ALTERNATIVES))); // the mount point
  writeFileSync(path.join(etc, 'passwd'), `nobody:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:${BOX_WORK}:/usr/sbin/nologin\n`, { mode: 0o644 });
  writeFileSync(path.join(etc, 'group'), `nogroup:x:${SANDBOX_UID}:\n`, { mode: 0o644 });
  const boxLauncher = path.join(etc, path.basename(BOX_LAUNCHER));
  copyFileSync(launcher, boxLauncher);
  chmodSync(boxLauncher, 0o755);
  return { links, dirs, etc, alternatives };
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
  /** The launcher's zygote already lives in an empty network namespace of its own: share it, don't make one. */
  inheritNetwork?: boolean;
  env: Record<string, string>;
}

/** The argv of bwrap up to and including `--`; the inner launcher and the program follow. */
export function bwrapArgs(run: BwrapRun): string[] {
  const a: string[] = [
    // user, pid, net, ipc, uts, cgroup; or all but net, when the zygote's own empty network namespace is shared
    ...(run.inheritNetwork ? ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup'] : ['--unshare-all']),
    '--uid', String(SANDBOX_UID),
    '--gid', String(SANDBOX_UID),
    '--hostname', 'sandbox',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--as-pid-1',
    '--clearenv',
  ];
  for (const [k, v] of Object.entries(run.env)) a.push('--setenv', k, v);
  for (const d of run.layout.dirs) a.push('--ro-bind', d, d);
  for (const l of run.layout.links) a.push('--symlink', l.target, l.path);
  a.push('--ro-bind', run.layout.etc, '/etc');
  if (run.layout.alternatives) a.push('--ro-bind', ALTERNATIVES, ALTERNATIVES);
  const size = String(Math.max(1, Math.floor(run.diskBytes)));
  // bwrap's /dev is a tmpfs with no size limit: read-only, with a sized /dev/shm (POSIX semaphores need it).
  a.push('--proc', '/proc', '--dev', '/dev', '--size', size, '--tmpfs', '/dev/shm', '--remount-ro', '/dev');
  a.push('--size', size, '--tmpfs', '/tmp');
  if (run.writableWorkDir) a.push('--bind', run.writableWorkDir, BOX_WORK);
  else a.push('--size', size, '--tmpfs', BOX_WORK);
  // After the tmpfs mounts, which would otherwise hide what is bound below /tmp.
  for (const r of run.runtimeRoots) a.push('--ro-bind', r, r);
  for (const f of run.files) a.push('--ro-bind', f.host, path.posix.join(BOX_WORK, f.name));
  if (run.workspace) a.push('--ro-bind', run.workspace, run.workspace);
  // bwrap's root is a tmpfs of its own with no size limit, writable by the sandbox user (`../x`, `/big`, `/etc/x`
  // from /work): read-only once everything is mounted, so only /work and /tmp (sized above) take writes.
  a.push('--remount-ro', '/');
  a.push('--chdir', BOX_WORK, '--');
  return [run.bwrap, ...a];
}

export interface IsolationChoice {
  mode: IsolationMode;
  reason: string;
  bwrap: string | null;
}

/**
 * Picks the mode for this server: `bwrap` when asked for (or `auto`) and a trial sandbox starts here; `process`
 * when asked for, or when `auto` finds bwrap missing or unable to start (user namespaces off, say). Asking for
 * `bwrap` where it doesn't work is an error: the server must not quietly run code unsandboxed.
 */
export async function chooseIsolation(setting: IsolationSetting, layout: HostLayout): Promise<IsolationChoice> {
  if (setting === 'process') return { mode: 'process', reason: 'chosen by the isolation setting', bwrap: null };
  const found = await which('bwrap', { nothrow: true });
  const problem = found ? await trialSandbox(found, layout) : 'bwrap (Debian package bubblewrap) was not found on PATH';
  if (!problem) {
    const version = await execa(found!, ['--version'], { reject: false, timeout: 5000 });
    return { mode: 'bwrap', reason: `${String(version.stdout).trim() || 'bubblewrap'} works here`, bwrap: found! };
  }
  if (setting === 'bwrap') throw new Error(`isolation "bwrap" was asked for but cannot be used: ${problem}`);
  return { mode: 'process', reason: problem, bwrap: null };
}

/** Starts one empty sandbox the way runs are started; returns why it failed, or undefined. */
async function trialSandbox(bwrap: string, layout: HostLayout): Promise<string | undefined> {
  const argv = bwrapArgs({ bwrap, layout, runtimeRoots: [], files: [], diskBytes: 1024 * 1024, env: { PATH: '/usr/bin:/bin' } });
  const r = await execa(argv[0]!, [...argv.slice(1), BOX_LAUNCHER, '--init', '--', 'true'], {
    reject: false,
    timeout: 10_000,
    stdin: 'ignore',
    extendEnv: false,
    env: {},
  });
  if (r.exitCode === 0) return undefined;
  const said = String(r.stderr).trim().split('\n')[0];
  return `a trial bubblewrap sandbox failed${said ? `: ${said}` : ` (exit ${r.exitCode ?? r.signal})`}`;
}
