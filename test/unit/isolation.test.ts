import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BOX_LAUNCHER, BOX_WORK, SANDBOX_UID, bwrapArgs, readHostLayout, runtimeRoot, type BwrapRun, type HostLayout } from '../../server/isolation';

const layout: HostLayout = {
  links: [
    { path: '/bin', target: 'usr/bin' },
    { path: '/lib64', target: 'usr/lib64' },
  ],
  dirs: ['/usr'],
  etc: '/state/etc',
  alternatives: true,
};

function run(over: Partial<BwrapRun> = {}): BwrapRun {
  return {
    bwrap: '/usr/bin/bwrap',
    layout,
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

  void it('starts with bwrap and ends with -- (the inner launcher follows)', () => {
    assert.equal(argv[0], '/usr/bin/bwrap');
    assert.equal(argv.at(-1), '--');
  });

  void it('unshares every namespace, drops privileges and dies with its parent', () => {
    for (const flag of ['--unshare-all', '--die-with-parent', '--new-session', '--as-pid-1', '--clearenv']) {
      assert.ok(argv.includes(flag), flag);
    }
    assert.ok(!argv.includes('--share-net'), 'the network stays unshared');
    assert.deepEqual(options(argv, '--cap-drop', 1), [['ALL']]);
    assert.deepEqual(options(argv, '--uid', 1), [[String(SANDBOX_UID)]]);
    assert.deepEqual(options(argv, '--gid', 1), [[String(SANDBOX_UID)]]);
  });

  void it('binds system dirs, its own /etc (with the launcher), the runtime prefix and the program read-only, and nothing writable', () => {
    const ro = options(argv, '--ro-bind', 2);
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
    assert.ok(joined.includes(`--size ${size} --tmpfs /tmp`));
    assert.ok(joined.includes(`--size ${size} --tmpfs ${BOX_WORK}`));
    assert.ok(joined.includes(`--dev /dev --size ${size} --tmpfs /dev/shm --remount-ro /dev`));
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
    try {
      const launcher = path.join(dir, 'fake-launcher');
      writeFileSync(launcher, '#!/bin/sh\n');
      const l = readHostLayout(dir, launcher);
      const passwd = readFileSync(path.join(l.etc, 'passwd'), 'utf8');
      assert.match(passwd, new RegExp(`^nobody:x:${SANDBOX_UID}:${SANDBOX_UID}:`));
      assert.equal(passwd.trim().split('\n').length, 1);
      assert.equal(readFileSync(path.join(l.etc, 'sbx-launch'), 'utf8'), '#!/bin/sh\n');
      assert.equal(statSync(path.join(l.etc, 'sbx-launch')).mode & 0o777, 0o755);
      const names = readdirSync(l.etc).sort();
      for (const secret of ['shadow', 'gshadow', 'sudoers', 'ssh', 'hostname']) assert.ok(!names.includes(secret), `${secret} copied`);
      assert.ok(l.dirs.includes('/usr'));
      for (const link of l.links) assert.ok(!l.dirs.includes(link.path));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
