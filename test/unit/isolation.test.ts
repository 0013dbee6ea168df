import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BOX_LAUNCHER, BOX_SECCOMP, BOX_WORK, SANDBOX_UID, bwrapArgs, identityArgs, readHostLayout, runtimeRoot, type BwrapRun, type HostLayout } from '../../server/isolation';

const layout: HostLayout = {
  links: [
    { path: '/bin', target: 'usr/bin' },
    { path: '/lib64', target: 'usr/lib64' },
  ],
  dirs: ['/usr'],
  etc: '/state/etc',
  alternatives: true,
  procMasks: { files: ['/proc/kcore', '/proc/keys'], dirs: ['/proc/acpi'] },
  procReadOnly: ['/proc/sys', '/proc/fs'],
  empty: '/state/empty',
};

function run(over: Partial<BwrapRun> = {}): BwrapRun {
  return {
    bwrap: '/usr/bin/bwrap',
    layout,
    userns: 'worker',
    runtimeRoots: ['/root/.pyenv/versions/3.11.7'],
    files: [{ host: '/tmp/sbx-1/run-a/main.py', name: 'main.py' }],
    diskBytes: 64 * 1024 * 1024,
    env: { PATH: '/usr/bin', HOME: BOX_WORK },
    ...over,
  };
}

/** The pairs/triples of one option, e.g. every `--ro-bind SRC DEST`. */
function options(argv: string[], name: string, arity: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === name) out.push(argv.slice(i + 1, i + 1 + arity));
  return out;
}

void describe('bwrapArgs', () => {
  const argv = bwrapArgs(run());

  void it('starts with bwrap and ends with pid 1 (the launcher) taking its options: become the sandbox user, load the filter', () => {
    assert.equal(argv[0], '/usr/bin/bwrap');
    const dashes = argv.indexOf('--');
    assert.deepEqual(argv.slice(dashes), ['--', BOX_LAUNCHER, '--init', '-u', '-w', '-s', BOX_SECCOMP]);
    assert.equal(path.dirname(BOX_SECCOMP), '/etc');
  });

  void it("in the worker's user namespace: makes none, keeps only what pid 1 needs to switch user, dies with its parent", () => {
    for (const flag of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-net', '--die-with-parent', '--new-session', '--as-pid-1', '--clearenv']) {
      assert.ok(argv.includes(flag), flag);
    }
    for (const flag of ['--unshare-user', '--unshare-all', '--share-net', '--uid', '--gid', '--userns']) assert.ok(!argv.includes(flag), flag);
    assert.deepEqual(options(argv, '--cap-drop', 1), [['ALL']]);
    assert.deepEqual(options(argv, '--cap-add', 1), [['CAP_CHOWN'], ['CAP_SETUID'], ['CAP_SETGID'], ['CAP_SETPCAP']]);
    assert.ok(argv.indexOf('--cap-add') > argv.indexOf('--cap-drop'), 'dropped first, then the three added back');
  });

  void it("with no ids of their own: bwrap makes the user namespace and maps the sandbox user; pid 1 has nothing to switch", () => {
    const own = bwrapArgs(run({ userns: 'per-run' }));
    assert.ok(own.includes('--unshare-user'));
    assert.deepEqual(options(own, '--uid', 1), [[String(SANDBOX_UID)]]);
    assert.deepEqual(options(own, '--gid', 1), [[String(SANDBOX_UID)]]);
    assert.deepEqual(options(own, '--cap-add', 1), []);
    assert.deepEqual(own.slice(own.indexOf('--')), ['--', BOX_LAUNCHER, '--init', '-s', BOX_SECCOMP]);
  });

  void it('a network namespace of its own for every run, whoever maps the user', () => {
    for (const userns of ['worker', 'per-run'] as const) assert.ok(bwrapArgs(run({ userns })).includes('--unshare-net'), userns);
  });

  void it('pid 1 gives /work to the sandbox user only when /work is its own tmpfs, never a bound host dir', () => {
    assert.deepEqual(argv.slice(argv.indexOf('--')), ['--', BOX_LAUNCHER, '--init', '-u', '-w', '-s', BOX_SECCOMP]);
    const compile = bwrapArgs(run({ files: [], writableWorkDir: '/tmp/sbx-1/run-b' }));
    assert.deepEqual(compile.slice(compile.indexOf('--')), ['--', BOX_LAUNCHER, '--init', '-u', '-s', BOX_SECCOMP]);
  });

  void it('/proc: the sysctls and /proc/fs read-only, the masked entries covered, all after /proc is mounted', () => {
    const ro = options(argv, '--ro-bind', 2);
    assert.deepEqual(ro.filter(([, d]) => d!.startsWith('/proc/')), [
      ['/proc/sys', '/proc/sys'],
      ['/proc/fs', '/proc/fs'],
      ['/dev/null', '/proc/kcore'],
      ['/dev/null', '/proc/keys'],
      ['/state/empty', '/proc/acpi'],
    ]);
    assert.ok(argv.indexOf('/proc/sys') > argv.indexOf('--proc'));
  });

  void it('the zygote gets the worker ids, and the map helpers only for an ordinary user', () => {
    const ids = { uid: 1900000003, gid: 1900000003 };
    const range = { first: 1900000000, count: 65536 };
    assert.deepEqual(identityArgs({ mode: 'dedicated', uids: range, gids: range, reason: '' }, ids), ['-i', '1900000003:1900000003']);
    const helpers = { newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap' };
    assert.deepEqual(identityArgs({ mode: 'dedicated', uids: range, gids: range, mapHelpers: helpers, reason: '' }, ids), [
      '-i', '1900000003:1900000003', '-M', '/usr/bin/newuidmap', '-N', '/usr/bin/newgidmap',
    ]);
    assert.deepEqual(identityArgs({ mode: 'server', reason: '' }, ids), []);
  });

  void it('binds system dirs, its own /etc (with the launcher), the runtime prefix and the program read-only, and nothing writable', () => {
    const ro = options(argv, '--ro-bind', 2).filter(([, d]) => !d!.startsWith('/proc/'));
    assert.deepEqual(ro, [
      ['/usr', '/usr'],
      ['/state/etc', '/etc'],
      ['/etc/alternatives', '/etc/alternatives'],
      ['/root/.pyenv/versions/3.11.7', '/root/.pyenv/versions/3.11.7'],
      ['/tmp/sbx-1/run-a/main.py', `${BOX_WORK}/main.py`],
    ]);
    assert.equal(path.dirname(BOX_LAUNCHER), '/etc');
    assert.deepEqual(options(argv, '--bind', 2), []);
    assert.deepEqual(options(argv, '--symlink', 2), [
      ['usr/bin', '/bin'],
      ['usr/lib64', '/lib64'],
    ]);
    // Nothing of /root or /home but the runtime's own prefix.
    const sources = ro.map(([src]) => src!);
    assert.ok(!sources.some((s) => s === '/root' || s === '/home' || s.startsWith('/home/')));
  });

  void it('gives /work, /tmp and /dev/shm a size-limited tmpfs each, a fresh /proc and a read-only minimal /dev', () => {
    const size = String(64 * 1024 * 1024);
    const joined = argv.join(' ');
    // /tmp and /dev/shm everyone's (sticky), as usual; /work pid 1 gives to the sandbox user.
    assert.ok(joined.includes(`--perms 1777 --size ${size} --tmpfs /tmp`));
    assert.ok(joined.includes(`--size ${size} --tmpfs ${BOX_WORK}`));
    assert.ok(joined.includes(`--dev /dev --perms 1777 --size ${size} --tmpfs /dev/shm --remount-ro /dev`));
    assert.deepEqual(options(argv, '--proc', 1), [['/proc']]);
    assert.deepEqual(options(argv, '--chdir', 1), [[BOX_WORK]]);
    // bwrap's own root and /dev are tmpfs with no size limit: read-only, so only the sized mounts take writes.
    assert.deepEqual(options(argv, '--remount-ro', 1), [['/dev'], ['/']]);
    assert.equal(argv.lastIndexOf('--remount-ro') > argv.lastIndexOf('--ro-bind'), true, 'the root goes read-only after every mount');
  });

  void it('sets exactly the given environment', () => {
    assert.deepEqual(options(argv, '--setenv', 2), [
      ['PATH', '/usr/bin'],
      ['HOME', BOX_WORK],
    ]);
  });

  void it('makes the parents of a runtime prefix or a workspace 0755 itself (bwrap 0.8 would make them 0700, out of reach)', () => {
    const withWorkspace = bwrapArgs(run({ workspace: '/home/me/project' }));
    assert.deepEqual(options(withWorkspace, '--dir', 1), [['/root'], ['/root/.pyenv'], ['/root/.pyenv/versions'], ['/home'], ['/home/me']]);
    const dirAt = (d: string) => withWorkspace.findIndex((a, i) => a === '--dir' && withWorkspace[i + 1] === d);
    const bindAt = (d: string) => withWorkspace.findIndex((a, i) => a === '--ro-bind' && withWorkspace[i + 2] === d);
    assert.ok(dirAt('/home/me') < bindAt('/home/me/project') && dirAt('/root/.pyenv/versions') < bindAt('/root/.pyenv/versions/3.11.7'));
    assert.ok(dirAt('/root') > withWorkspace.indexOf(BOX_WORK), 'after the tmpfs mounts');
    // Below /tmp: /tmp is the sandbox's own tmpfs, not made again.
    const underTmp = bwrapArgs(run({ runtimeRoots: [], workspace: '/tmp/x/project' }));
    assert.deepEqual(options(underTmp, '--dir', 1), [['/tmp/x']]);
  });

  void it('binds a workspace read-only at its own path, and a compile dir writable instead of the tmpfs', () => {
    const withWorkspace = bwrapArgs(run({ workspace: '/home/me/project' }));
    assert.deepEqual(options(withWorkspace, '--ro-bind', 2).filter(([s]) => s === '/home/me/project'), [['/home/me/project', '/home/me/project']]);
    const compile = bwrapArgs(run({ files: [], writableWorkDir: '/tmp/sbx-1/run-b' }));
    assert.deepEqual(options(compile, '--bind', 2), [['/tmp/sbx-1/run-b', BOX_WORK]]);
    assert.ok(!compile.join(' ').includes(`--tmpfs ${BOX_WORK}`));
  });
});

void describe('runtimeRoot', () => {
  void it('is nothing for binaries under the system dirs', () => {
    assert.equal(runtimeRoot('/usr/bin/node', layout), undefined);
    assert.equal(runtimeRoot('/bin/bash', layout), undefined);
    assert.equal(runtimeRoot(null, layout), undefined);
  });

  void it('is the install prefix of a binary in a bin dir elsewhere', () => {
    assert.equal(runtimeRoot('/root/.pyenv/versions/3.11.7/bin/python3.11', layout), '/root/.pyenv/versions/3.11.7');
    assert.equal(runtimeRoot('/opt/pypy/bin/pypy3', layout), '/opt/pypy');
  });

  void it('never widens to a whole top-level dir such as /root or /opt', () => {
    assert.equal(runtimeRoot('/root/bin/python', layout), '/root/bin');
    assert.equal(runtimeRoot('/opt/python', layout), '/opt');
    assert.notEqual(runtimeRoot('/root/python', layout), '/');
  });
});

void describe('readHostLayout', () => {
  void it('makes an /etc with a passwd and group naming only the sandbox user, the launcher, and nothing secret', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layout-'));
    const umask = process.umask(0o077); // a cautious user's umask: the sandbox user must read them all the same
    try {
      const launcher = path.join(dir, 'fake-launcher');
      writeFileSync(launcher, '#!/bin/sh\n');
      const l = readHostLayout(dir, launcher);
      const passwd = readFileSync(path.join(l.etc, 'passwd'), 'utf8');
      assert.match(passwd, new RegExp(`^nobody:x:${SANDBOX_UID}:${SANDBOX_UID}:`));
      assert.equal(passwd.trim().split('\n').length, 1);
      assert.equal(readFileSync(path.join(l.etc, 'sbx-launch'), 'utf8'), '#!/bin/sh\n');
      assert.equal(statSync(path.join(l.etc, 'sbx-launch')).mode & 0o777, 0o755);
      assert.equal(statSync(l.etc).mode & 0o777, 0o755);
      for (const f of ['passwd', 'group']) assert.equal(statSync(path.join(l.etc, f)).mode & 0o777, 0o644, f);
      assert.equal(statSync(l.empty).mode & 0o777, 0o555);
      assert.deepEqual(readdirSync(l.empty), []);
      const names = readdirSync(l.etc).sort();
      for (const secret of ['shadow', 'gshadow', 'sudoers', 'ssh', 'hostname']) assert.ok(!names.includes(secret), `${secret} copied`);
      assert.ok(l.dirs.includes('/usr'));
      for (const link of l.links) assert.ok(!l.dirs.includes(link.path));
    } finally {
      process.umask(umask);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('covers only the /proc entries this kernel has: files with /dev/null, directories with an empty one', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layout-'));
    try {
      const proc = path.join(dir, 'proc');
      mkdirSync(path.join(proc, 'sys'), { recursive: true });
      mkdirSync(path.join(proc, 'acpi'));
      writeFileSync(path.join(proc, 'keys'), '');
      writeFileSync(path.join(proc, 'kallsyms'), '');
      writeFileSync(path.join(proc, 'meminfo'), '');
      const launcher = path.join(dir, 'fake-launcher');
      writeFileSync(launcher, '');
      const l = readHostLayout(dir, launcher, proc);
      assert.deepEqual(l.procMasks, { files: ['/proc/keys', '/proc/kallsyms'], dirs: ['/proc/acpi'] });
      assert.deepEqual(l.procReadOnly, ['/proc/sys']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
