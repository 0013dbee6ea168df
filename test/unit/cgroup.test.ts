import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CgroupManager, detectCgroups, lastCgroupReason, parseProcCgroup, probeCgroups } from '../../server/cgroup';
import type { RunCgroup } from '../../server/cgroup';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Why the real-cgroup tests cannot run here, or false when they can. */
function v1Skip(): string | false {
  if (process.platform !== 'linux') return 'cgroups are Linux-only';
  if (!fs.existsSync('/sys/fs/cgroup/memory/tasks')) return 'no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory';
  try {
    fs.accessSync('/sys/fs/cgroup/memory', fs.constants.W_OK);
  } catch {
    return '/sys/fs/cgroup/memory is not writable (needs root)';
  }
  if (process.getuid?.() !== 0) return 'writing cgroup v1 groups needs root';
  return false;
}
const skipV1 = v1Skip();

let nameSeq = 0;
/** A shared-group name of its own per test, so tests (and a real server on this machine) never see each other. */
const testName = () => `sandbox-runner-test-${process.pid}-${++nameSeq}`;

/** Everything a test creates, cleaned up even when it fails. */
function tracker() {
  const managers: CgroupManager[] = [];
  const children: ChildProcess[] = [];
  return {
    manager(m: CgroupManager | null): CgroupManager {
      assert.ok(m, `no cgroup manager: ${lastCgroupReason}`);
      managers.push(m);
      return m;
    },
    child(c: ChildProcess): ChildProcess {
      children.push(c);
      return c;
    },
    cleanup() {
      // Only pids this test started; everything else was inside the test's own groups, which disposeSync empties.
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      for (const m of managers) m.disposeSync();
    },
  };
}

/** Starts `script` (sh) after the shell has joined every group of `run`. */
function spawnIn(run: RunCgroup, script: string, shell = 'sh', stdout: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const join = 'for f in "$@"; do echo 0 > "$f" || exit 99; done; ';
  return spawn(shell, ['-c', join + script, shell, ...run.procsFiles], { stdio: ['ignore', stdout, 'ignore'] });
}

function pidsIn(run: RunCgroup): number[] {
  const pids = new Set<number>();
  for (const f of run.procsFiles) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n')) if (line) pids.add(Number(line));
  }
  return [...pids];
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

function exited(c: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve({ code: c.exitCode, signal: c.signalCode });
  return new Promise((resolve) => c.once('exit', (code, signal) => resolve({ code, signal })));
}

/** A pid is gone when /proc has no entry for it or it is a zombie waiting for its parent. */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

void describe('parseProcCgroup', () => {
  void it('maps each v1 controller (co-mounted ones too) and the v2 path', () => {
    const m = parseProcCgroup('9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/user.slice/x.scope\n');
    assert.equal(m.get('memory'), '/a/b');
    assert.equal(m.get('cpu'), '/c');
    assert.equal(m.get('cpuacct'), '/c');
    assert.equal(m.get(''), '/user.slice/x.scope');
  });
});

void describe('cgroup v1 (the real hierarchies of this machine)', { skip: skipV1 }, () => {
  const t = tracker();
  after(() => t.cleanup());

  void it('detects v1 with memory, pids, cpuacct and freezer, nested under the server\'s own groups', async () => {
    const name = testName();
    const m = t.manager(await detectCgroups({ name }));
    assert.equal(m.version, 'v1');
    assert.ok(m.memory && m.pids && m.cpu && m.atomicKill, lastCgroupReason);
    const own = parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    assert.ok(m.serverDirs.includes(path.join('/sys/fs/cgroup/memory', own.get('memory') ?? '/', name, String(process.pid))));
    assert.deepEqual(await m.init(), { staleRemoved: 0, processesKilled: 0 });
    for (const d of m.serverDirs) assert.ok(fs.statSync(d).isDirectory(), d);
    m.disposeSync();
    for (const d of m.serverDirs) assert.ok(!fs.existsSync(d), `${d} left behind`);
    // The shared parent goes too when nothing else uses it.
    for (const d of m.serverDirs) assert.ok(!fs.existsSync(path.dirname(d)), `${path.dirname(d)} left behind`);
  });

  void it('sets the limits, holds a joined process, and destroy kills it and removes the groups', async () => {
    const m = t.manager(await detectCgroups({ name: testName() }));
    await m.init();
    const run = await m.create('../../evil/../id with spaces', { memoryBytes: 64 << 20, processes: 20 });
    assert.equal(run.procsFiles.length, 4);
    for (const d of run.dirs) assert.equal(path.dirname(d), m.serverDirs[run.dirs.indexOf(d)], 'run id escaped');
    const mem = run.dirs.find((d) => d.includes('/memory/'))!;
    const pids = run.dirs.find((d) => d.includes('/pids/'))!;
    assert.equal(fs.readFileSync(path.join(mem, 'memory.limit_in_bytes'), 'utf8').trim(), String(64 << 20));
    assert.equal(fs.readFileSync(path.join(pids, 'pids.max'), 'utf8').trim(), '20');
    if (fs.existsSync(path.join(mem, 'memory.memsw.limit_in_bytes'))) {
      assert.equal(fs.readFileSync(path.join(mem, 'memory.memsw.limit_in_bytes'), 'utf8').trim(), String(64 << 20));
    }

    const child = t.child(spawnIn(run, 'exec sleep 30'));
    await waitFor(() => run.procsFiles.every((f) => fs.readFileSync(f, 'utf8').split('\n').includes(String(child.pid))));
    assert.equal((await run.stats()).processes, 1);

    const r = await run.destroy();
    assert.deepEqual(r, { killed: 1 });
    assert.equal((await exited(child)).signal, 'SIGKILL');
    for (const d of run.dirs) assert.ok(!fs.existsSync(d), `${d} left behind`);
    // A second destroy is the same answer, not a second kill.
    assert.deepEqual(await run.destroy(), { killed: 1 });
    assert.equal(m.liveRuns, 0);
  });

  void it('OOM-kills a memory hog at the memory limit and counts it', async () => {
    const m = t.manager(await detectCgroups({ name: testName() }));
    await m.init();
    const limit = 64 << 20;
    const run = await m.create('hog', { memoryBytes: limit, processes: 20 });
    // Filled, so every page is really touched (a zeroed allocation may never be).
    const hog = t.child(spawnIn(run, `exec "${process.execPath}" -e "Buffer.alloc(300 * 1024 * 1024, 1)"`));
    const end = await exited(hog);
    assert.equal(end.signal, 'SIGKILL', `hog ended with ${JSON.stringify(end)}`);
    const s = await run.stats();
    assert.ok(s.oomKills >= 1, `oomKills ${s.oomKills}`);
    assert.ok(s.peakMemoryBytes > 16 << 20 && s.peakMemoryBytes <= limit + (1 << 20), `peak ${s.peakMemoryBytes}`);
    assert.equal((await run.destroy()).error, undefined);
  });

  void it('holds a fork bomb under the pids limit, and destroy kills every process of it', async () => {
    const m = t.manager(await detectCgroups({ name: testName() }));
    await m.init();
    const run = await m.create('bomb', { memoryBytes: 256 << 20, processes: 20 });
    t.child(spawnIn(run, 'f() { f | f & }; f', 'bash'));
    const seen = new Set<number>();
    let most = 0;
    const end = Date.now() + 400;
    while (Date.now() < end) {
      most = Math.max(most, (await run.stats()).processes);
      for (const pid of pidsIn(run)) seen.add(pid);
      await sleep(10);
    }
    assert.ok(most >= 10, `the bomb never grew (${most} processes)`);
    assert.ok(most <= 20, `${most} processes, limit 20`);

    const r = await run.destroy();
    assert.equal(r.error, undefined);
    assert.ok(r.killed >= 1);
    for (const d of run.dirs) assert.ok(!fs.existsSync(d), `${d} left behind`);
    // Orphans are reaped by init; give it a moment, then nothing we saw may still run.
    await waitFor(() => [...seen].every(gone), 2000).catch(() => undefined);
    const survivors = [...seen].filter((pid) => !gone(pid));
    assert.deepEqual(survivors, []);
  });

  void it('accounts the CPU time of a busy loop', async () => {
    const m = t.manager(await detectCgroups({ name: testName() }));
    await m.init();
    const run = await m.create('busy', { memoryBytes: 256 << 20, processes: 20 });
    const before = (await run.stats()).cpuMs;
    // The loop reports the CPU time the kernel accounted to itself: the group's count must cover it. (Wall time
    // is no yardstick: on a busy VM a 300 ms spin may get far less than 300 ms of CPU.)
    const spin = 'const e = Date.now() + 300; while (Date.now() < e); const u = process.cpuUsage(); ' +
      'process.stdout.write(String((u.user + u.system) / 1000));';
    const busy = t.child(spawnIn(run, `exec "${process.execPath}" -e "${spin}"`, 'sh', 'pipe'));
    let out = '';
    busy.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const ended = new Promise((resolve) => busy.stdout!.once('end', resolve));
    assert.equal((await exited(busy)).code, 0);
    await ended;
    const own = Number(out);
    const after = (await run.stats()).cpuMs;
    assert.ok(before < 50, `cpu before ${before}`);
    assert.ok(own >= 30, `the spin got only ${own} ms of CPU`);
    assert.ok(after >= own - 1 && after - before >= 30, `group ${after} ms, the process itself ${own} ms`);
    await run.destroy();
  });

  void it('init() sweeps the groups of a dead server, killing what is still in them', async () => {
    const name = testName();
    // A pid that certainly belonged to a process that is gone now.
    const dead = spawn('true');
    await exited(dead);
    const deadPid = dead.pid!;
    const old = t.manager(await detectCgroups({ name, serverPid: deadPid }));
    await old.init();
    const run = await old.create('left-behind', { memoryBytes: 64 << 20, processes: 20 });
    const orphan = t.child(spawnIn(run, 'exec sleep 30'));
    await waitFor(() => pidsIn(run).includes(orphan.pid!));

    const m = t.manager(await detectCgroups({ name }));
    assert.deepEqual(await m.init(), { staleRemoved: 1, processesKilled: 1 });
    assert.equal((await exited(orphan)).signal, 'SIGKILL');
    for (const d of [...run.dirs, ...old.serverDirs]) assert.ok(!fs.existsSync(d), `${d} left behind`);
    for (const d of m.serverDirs) assert.ok(fs.existsSync(d));
  });

  void it('disposeSync kills and removes every live run group', async () => {
    const m = t.manager(await detectCgroups({ name: testName() }));
    await m.init();
    const runs = [await m.create('a', { memoryBytes: 64 << 20, processes: 20 }), await m.create('b', { memoryBytes: 64 << 20, processes: 20 })];
    const kids = runs.map((r) => t.child(spawnIn(r, 'exec sleep 30')));
    await waitFor(() => runs.every((r, i) => pidsIn(r).includes(kids[i].pid!)));
    m.disposeSync();
    for (const k of kids) assert.equal((await exited(k)).signal, 'SIGKILL');
    for (const d of [...runs.flatMap((r) => r.dirs), ...m.serverDirs]) assert.ok(!fs.existsSync(d), `${d} left behind`);
  });
});

void describe('cgroup v2 (a fake tree)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgroup-v2-'));
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A unified root with the server in `/user.slice/app.scope`. */
  function tree(opts: { controllers?: string; procs?: string } = {}): { root: string; own: string } {
    const root = fs.mkdtempSync(path.join(tmp, 'root-'));
    fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
    const own = path.join(root, 'user.slice', 'app.scope');
    fs.mkdirSync(own, { recursive: true });
    fs.writeFileSync(path.join(own, 'cgroup.controllers'), opts.controllers ?? 'cpu io memory pids\n');
    fs.writeFileSync(path.join(own, 'cgroup.subtree_control'), '');
    fs.writeFileSync(path.join(own, 'cgroup.procs'), opts.procs ?? '');
    return { root, own };
  }
  const self = '1:name=systemd:/\n0::/user.slice/app.scope\n';
  const read = (f: string) => fs.readFileSync(f, 'utf8');

  void it('refuses when the server\'s own group has processes (no internal processes rule)', async () => {
    const { root, own } = tree({ procs: '4242\n' });
    const r = await probeCgroups({ root, procSelfCgroup: self });
    assert.equal(r.manager, null);
    assert.match(r.reason, /no internal processes/);
    assert.equal(read(path.join(own, 'cgroup.subtree_control')), '', 'wrote subtree_control anyway');
    assert.equal(await detectCgroups({ root, procSelfCgroup: self }), null);
    assert.match(lastCgroupReason, /has processes/);
  });

  void it('refuses when neither memory nor pids is delegated', async () => {
    const { root } = tree({ controllers: 'cpu io\n' });
    const r = await probeCgroups({ root, procSelfCgroup: self });
    assert.equal(r.manager, null);
    assert.match(r.reason, /neither memory nor pids/);
  });

  void it('refuses without any cgroup file system', async () => {
    const root = fs.mkdtempSync(path.join(tmp, 'empty-'));
    const r = await probeCgroups({ root, procSelfCgroup: '' });
    assert.equal(r.manager, null);
    assert.match(r.reason, /no writable memory or pids cgroup/);
  });

  void it('enables the controllers down the tree and writes the limits of a run', async () => {
    const { root, own } = tree();
    const m = await detectCgroups({ root, procSelfCgroup: self, serverPid: 777 });
    assert.ok(m, lastCgroupReason);
    assert.equal(m.version, 'v2');
    assert.ok(m.memory && m.pids && m.cpu && m.atomicKill);
    const shared = path.join(own, 'sandbox-runner');
    assert.equal(read(path.join(own, 'cgroup.subtree_control')), '+memory +pids +cpu');
    assert.equal(read(path.join(shared, 'cgroup.subtree_control')), '+memory +pids +cpu');
    assert.deepEqual(m.serverDirs, [path.join(shared, '777')]);

    // A stale sibling whose server is gone (pid far beyond pid_max) is swept; the fake group has no processes.
    fs.mkdirSync(path.join(shared, '99999999', 'r1-x'), { recursive: true });
    assert.deepEqual(await m.init(), { staleRemoved: 1, processesKilled: 0 });
    assert.ok(!fs.existsSync(path.join(shared, '99999999')));
    assert.equal(read(path.join(shared, '777', 'cgroup.subtree_control')), '+memory +pids +cpu');

    const run = await m.create('a/../../b', { memoryBytes: 64 << 20, processes: 20 });
    const dir = run.dirs[0];
    assert.equal(path.dirname(dir), path.join(shared, '777'));
    assert.deepEqual(run.procsFiles, [path.join(dir, 'cgroup.procs')]);
    assert.equal(read(path.join(dir, 'memory.max')), String(64 << 20));
    assert.equal(read(path.join(dir, 'memory.swap.max')), '0');
    assert.equal(read(path.join(dir, 'pids.max')), '20');

    fs.writeFileSync(path.join(dir, 'memory.peak'), '5000000\n');
    fs.writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n');
    fs.writeFileSync(path.join(dir, 'cpu.stat'), 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n');
    fs.writeFileSync(path.join(dir, 'pids.current'), '3\n');
    assert.deepEqual(await run.stats(), { peakMemoryBytes: 5_000_000, cpuMs: 123.456, oomKills: 1, processes: 3 });
    // Older kernels: no memory.peak (falls back to memory.current), no oom_kill line (a hit limit counts).
    fs.rmSync(path.join(dir, 'memory.peak'));
    fs.writeFileSync(path.join(dir, 'memory.current'), '4000\n');
    fs.writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 2\noom 0\n');
    assert.deepEqual(await run.stats(), { peakMemoryBytes: 4000, cpuMs: 123.456, oomKills: 1, processes: 3 });

    // rmdir of a plain directory with files fails with ENOTEMPTY, which destroy reports instead of throwing, and
    // does not retry (only EBUSY, a populated group, is worth a kill round).
    const r = await run.destroy();
    assert.equal(r.killed, 0);
    assert.match(r.error ?? '', /ENOTEMPTY/);
  });
});
