/**
 * Hostile case 26, the launcher from inside. pid 1 of every sandbox is our launcher (`sbx-launch --init`): it reports
 * how the program ended. The review took its report socket with ptrace and pidfd_getfd, and a forged `pid N` line
 * made the server SIGKILL a host process group as root (`pid 1` → kill(-1)); forged exit lines turned a failing run
 * into a cached `ok`; an unterminated flood grew the server to 1.1 GB.
 *
 * Now pid 1 is out of reach: it is not dumpable (so not ptraceable, its /proc/1/fd, mem and environ closed, even to
 * the same uid), the seccomp filter refuses ptrace, pidfd_getfd and process_vm_* anyway, it ignores every signal
 * from inside, and the program inherits none of its descriptors. What pid 1 says goes on a pipe of its own to the
 * launcher outside, which relays at most 4096 bytes framed by length; the server parses it strictly, calls anything
 * else an internal error, and never signals a pid it was told about (it stops a run through the zygote that forked
 * its launcher, and its cgroup). The second half plays a pid 1 that lies, to prove those last defences: a flood, an
 * unterminated line, forged lines naming a host process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Executor, type ExecSpec } from '../../server/executor';
import { sandboxProcesses } from '../helpers/processes';
import { LAUNCHER, processesWith, waitFor } from '../helpers/server';
import { assertContained, hostileRun, hostileServer, startRun, type HostileServer } from './harness';

const LIMITS = { timeoutMs: 8000, memoryMb: 128, processes: 32 };
const NR = process.arch === 'arm64'
  ? { ptrace: 117, process_vm_readv: 270, pidfd_open: 434, pidfd_getfd: 438 }
  : { ptrace: 101, process_vm_readv: 310, pidfd_open: 434, pidfd_getfd: 438 };

/** Every way at pid 1 a program has, then forged report lines on every descriptor it holds, then exit 3. */
const PYTHON = `import ctypes, json, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
N = json.loads(sys.argv[1])
canary = int(sys.argv[2])
def err():
    return os.strerror(ctypes.get_errno())
def call(label, *a):
    r = libc.syscall(*a)
    print(label, "OK" if r >= 0 else err(), flush=True)
    return r
call("ptrace attach", N["ptrace"], 16, 1, 0, 0)
call("ptrace seize", N["ptrace"], 0x4206, 1, 0, 0)
pidfd = libc.syscall(N["pidfd_open"], 1, 0)
got = set()
for fd in range(0, 16):
    r = libc.syscall(N["pidfd_getfd"], pidfd, fd, 0)
    got.add("OK" if r >= 0 else err())
print("pidfd_getfd", sorted(got))
buf = ctypes.create_string_buffer(16)
local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p).value, 16)
remote = (ctypes.c_void_p * 2)(0x400000, 16)
call("process_vm_readv", N["process_vm_readv"], 1, local, 1, remote, 1, 0)
for p in ["/proc/1/fd", "/proc/1/fd/3", "/proc/1/mem", "/proc/1/environ", "/proc/1/maps"]:
    try:
        os.listdir(p) if p.endswith("/fd") else open(p, "rb").read(1)
        print(p, "OPENED")
    except OSError as e:
        print(p, e.strerror)
for s in [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL, signal.SIGSTOP]:
    os.kill(1, s)
print("pid 1 still there", os.path.exists("/proc/1/status"), flush=True)
forged = b"pid %d\\nexit 0\\nrusage 0 0 0\\ninner 7\\nexit 0\\n" % canary
wrote = []
for fd in range(3, 256):
    try:
        os.write(fd, forged)
        wrote.append(fd)
    except OSError:
        pass
print("forged on", wrote, flush=True)
sys.stderr.write(forged.decode())
sys.exit(3)
`;

void describe('hostile 26: the launcher from inside', { timeout: 120_000 }, () => {
  let h: HostileServer;
  let canary: ChildProcess;
  before(async () => {
    h = await hostileServer({ poolSize: 2 });
    // A host process no run may ever get signalled: its pid is handed to every run below.
    canary = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true });
  });
  after(async () => {
    canary?.kill('SIGKILL');
    await h?.close();
  });
  const canaryAlive = (): void => {
    assert.equal(canary.exitCode, null, 'the canary exited');
    assert.equal(canary.signalCode, null, `the canary was killed (${canary.signalCode})`);
    process.kill(canary.pid!, 0);
  };

  test('python: ptrace, pidfd_getfd, process_vm_readv, /proc/1/*, signals: all refused; forged lines change nothing', async () => {
    const run = await hostileRun(h, { language: 'python', code: PYTHON, args: [JSON.stringify(NR), String(canary.pid)], limits: LIMITS });
    // The real verdict: the program exited 3, whatever it wrote.
    await assertContained(h, run, { status: 'runtime_error', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.exitCode, 3);
    assert.equal(
      run.result.stdout,
      [
        'ptrace attach Operation not permitted',
        'ptrace seize Operation not permitted',
        "pidfd_getfd ['Operation not permitted']",
        'process_vm_readv Operation not permitted',
        '/proc/1/fd Permission denied',
        '/proc/1/fd/3 Permission denied',
        '/proc/1/mem Permission denied',
        '/proc/1/environ Permission denied',
        '/proc/1/maps Permission denied',
        'pid 1 still there True',
        'forged on []',
        '',
      ].join('\n'),
    );
    canaryAlive();
  });

  test('shell: no descriptor but stdio to write a forged report on; pid 1 ignores kill -9 1', async () => {
    const code = [
      // (3 to 9: bash keeps a copy of stdout at 10 while it redirects a compound command)
      'for fd in 3 4 5 6 7 8 9; do { echo "pid $1"; echo "exit 0"; } 2>/dev/null >&$fd && echo "wrote $fd"; done',
      'kill -9 1; kill -STOP 1; echo "pid 1: $(cut -d" " -f3 /proc/1/stat)"',
      'echo "exit 0"; echo "pid $1" >&2',
      'exit 4',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, args: [String(canary.pid)], limits: LIMITS });
    await assertContained(h, run, { status: 'runtime_error', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.exitCode, 4);
    assert.doesNotMatch(run.result.stdout, /wrote/);
    assert.match(run.result.stdout, /^pid 1: S$/m, 'pid 1 was stopped or killed');
    canaryAlive();
  });

  test('bwrap killed from outside: pid 1 sees its lifeline go and takes the sandbox down at once', async () => {
    const run = startRun(h, { language: 'shell', code: 'sleep 100 &\necho started\nwait\n', limits: { ...LIMITS, timeoutMs: 30_000 } });
    await run.started();
    const box = await waitFor(() => {
      const ps = sandboxProcesses(run.marker);
      return ps.length >= 3 ? ps : undefined;
    }, 'the sandbox');
    const init = box.find((p) => p.nspid[1] === 1)!;
    const killedAt = performance.now();
    process.kill(init.ppid, 'SIGKILL'); // bwrap's monitor: pid 1's parent, on the host
    const outcome = await run.done;
    // The sandbox died with it, long before the run's own 30 s: no verdict but that it broke.
    assert.ok(performance.now() - killedAt < 3000, `the sandbox outlived bwrap by ${Math.round(performance.now() - killedAt)} ms`);
    await assertContained(h, outcome, { status: 'internal_error', limitMs: 30_000 });
    assert.match(outcome.result.message ?? '', /sandbox/);
  });
});

/** A pid 1 that lies: played by a shell script in bwrap's place, through the real outer launcher, so that its "report"
 *  goes the way pid 1's does. Whatever it says, the run is an internal error and nothing is signalled. */
void describe('hostile 26: a lying pid 1 (its report pipe, bounded and strictly parsed)', { timeout: 60_000 }, () => {
  const socketDir = mkdtempSync(path.join(os.tmpdir(), 'sbx-hostile-sock-'));
  const executor = new Executor({ launcher: LAUNCHER, socketDir });
  let canary: ChildProcess;
  before(() => {
    canary = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true });
  });
  after(() => {
    canary?.kill('SIGKILL');
    executor.dispose();
    rmSync(socketDir, { recursive: true, force: true });
  });
  const pid1 = async (script: string): Promise<Awaited<ReturnType<Executor['run']>>> => {
    const marker = `lying-pid1-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const spec: ExecSpec = {
      command: 'true',
      args: [marker],
      cwd: '/tmp',
      env: { PATH: '/usr/bin:/bin', CANARY: String(canary.pid) },
      stdin: null,
      timeoutMs: 10_000,
      memoryBytes: Number.POSITIVE_INFINITY,
      outputBytes: 1024 * 1024,
      sandbox: ['/bin/sh', '-c', script, 'fake-pid-1'],
    };
    const r = await executor.run(spec);
    assert.deepEqual(await processesWith(marker), [], 'the lying pid 1 left processes');
    assert.equal(canary.exitCode, null, 'the canary exited');
    assert.equal(canary.signalCode, null, `the canary was killed (${canary.signalCode})`);
    return r;
  };

  test('a flood of 64 MiB on the report pipe: 4096 bytes kept, an internal error, the server\'s memory flat', async () => {
    const rssBefore = process.memoryUsage().rss;
    const r = await pid1('head -c 67108864 /dev/zero | tr "\\000" x >&3; exit 0');
    const grew = process.memoryUsage().rss - rssBefore;
    assert.equal(r.end, 'spawn_error');
    assert.match(r.error ?? '', /could not be trusted \(pid 1 of the sandbox said more than 4096 bytes\)/);
    assert.ok(grew < 16 * 1024 * 1024, `the server grew by ${Math.round(grew / 1048576)} MiB`);
  });

  test('an unterminated line: an internal error', async () => {
    const r = await pid1('printf "exit 0" >&3; exit 0');
    assert.equal(r.end, 'spawn_error');
    assert.match(r.error ?? '', /pid 1 of the sandbox: it does not end with a newline/);
  });

  test('forged lines naming a host process (pid, an exit of 0): an internal error, and nothing is signalled', async () => {
    const r = await pid1('printf "pid %s\\nexit 0\\nrusage 0 0 0\\n" "$CANARY" >&3; printf "inner 2\\nx\\n" >&3; exit 3');
    assert.equal(r.end, 'spawn_error');
    assert.match(r.error ?? '', /could not be trusted \(pid 1 of the sandbox: unexpected line "pid \d+"\)/);
    process.kill(canary.pid!, 0);
  });
});
