/**
 * Hostile case 27, dangerous system calls. The seccomp filter (server/launcher/seccomp.c, Docker's default profile as
 * the reference) refuses the calls that open the kernel to a sandboxed program: tracing and other processes' memory,
 * keyrings, eBPF, perf, userfaultfd, io_uring, the mount API, new namespaces, kexec, modules, reboot, swap, the
 * clock, the kernel log, AF_VSOCK, TIOCSTI. A refused call fails with EPERM and the program goes on (clone3 answers
 * ENOSYS, so libc falls back to clone, whose flags the filter reads); the same calls through the i386 and x32 ABIs
 * are refused too. Where it can, the probe asks in a way the kernel alone would have allowed or answered otherwise
 * (ptrace(TRACEME), kcmp and process_vm_readv on itself, unshare(CLONE_NEWUSER), io_uring_setup(0), an unknown
 * keyctl, umount2 with bad flags…): EPERM there is the filter's. And ordinary programs that start threads, processes
 * and event loops still run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const LIMITS = { timeoutMs: 10_000, memoryMb: 256, processes: 64 };

/** Each call with arguments that cannot do harm; prints `name errno`. */
const PROBE = String.raw`#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

static void probe(const char *name, long r) {
  printf("%s %s\n", name, r >= 0 ? "ALLOWED" : strerrorname_np(errno));
  fflush(stdout);
}
#define P(name, ...) probe(name, syscall(__VA_ARGS__))

int main(void) {
  pid_t me = getpid();
  char buf[16];
  struct iovec local = { buf, sizeof buf }, remote = { buf, sizeof buf };
  P("ptrace", SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
  P("process_vm_readv", SYS_process_vm_readv, me, &local, 1, &remote, 1, 0);
  P("process_vm_writev", SYS_process_vm_writev, me, &local, 1, &remote, 1, 0);
  P("pidfd_getfd", SYS_pidfd_getfd, -1, 0, 0);
  P("kcmp", SYS_kcmp, me, me, 0, 0, 0);
  P("process_madvise", SYS_process_madvise, -1, &local, 1, 0, 0);
  P("keyctl", SYS_keyctl, 9999, 0, 0, 0, 0);
  P("add_key", SYS_add_key, "user", "k", "v", 1, -4);
  P("request_key", SYS_request_key, "user", "k", NULL, 0);
  P("bpf", SYS_bpf, 9999, NULL, 0);
  P("perf_event_open", SYS_perf_event_open, NULL, 0, -1, -1, 0);
  P("userfaultfd", SYS_userfaultfd, 0);
  P("io_uring_setup", SYS_io_uring_setup, 0, NULL);
  P("io_uring_enter", SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
  P("io_uring_register", SYS_io_uring_register, -1, 0, NULL, 0);
  P("fanotify_init", SYS_fanotify_init, 0, 0);
  P("open_by_handle_at", SYS_open_by_handle_at, -1, NULL, 0);
  P("mount", SYS_mount, "none", "/nonexistent", "tmpfs", 0, NULL);
  P("umount2", SYS_umount2, "/nonexistent", 0xffff);
  P("pivot_root", SYS_pivot_root, "/nonexistent", "/nonexistent");
  P("chroot", SYS_chroot, "/nonexistent");
  P("move_mount", SYS_move_mount, -1, "", -1, "", 0);
  P("open_tree", SYS_open_tree, -1, "", 0);
  P("fsopen", SYS_fsopen, NULL, 0);
  P("fsconfig", SYS_fsconfig, -1, 0, NULL, NULL, 0);
  P("fsmount", SYS_fsmount, -1, 0, 0);
  P("fspick", SYS_fspick, -1, "", 0);
  P("mount_setattr", SYS_mount_setattr, -1, "", 0, NULL, 0);
  P("setns", SYS_setns, -1, 0);
  P("unshare(CLONE_NEWUSER)", SYS_unshare, CLONE_NEWUSER);
  P("unshare(CLONE_NEWNS)", SYS_unshare, CLONE_NEWNS);
  P("unshare(CLONE_NEWNET)", SYS_unshare, CLONE_NEWNET);
  P("clone(CLONE_NEWUSER)", SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
  P("clone3", SYS_clone3, NULL, 0);
  P("kexec_load", SYS_kexec_load, 0, 0, NULL, 0);
  P("kexec_file_load", SYS_kexec_file_load, -1, -1, 0, "", 0);
  P("init_module", SYS_init_module, NULL, 0, "");
  P("finit_module", SYS_finit_module, -1, "", 0);
  P("delete_module", SYS_delete_module, "nonexistent", 0);
  P("reboot", SYS_reboot, 0, 0, 0, NULL);
  P("swapon", SYS_swapon, "/nonexistent", 0);
  P("swapoff", SYS_swapoff, "/nonexistent");
  P("acct", SYS_acct, "/nonexistent");
  P("quotactl", SYS_quotactl, 0, "/nonexistent", 0, NULL);
  P("settimeofday", SYS_settimeofday, NULL, NULL);
  P("clock_settime", SYS_clock_settime, 0, NULL);
  P("syslog", SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
  P("iopl", SYS_iopl, 0);
  P("ioperm", SYS_ioperm, 0, 0, 0);
  P("sethostname", SYS_sethostname, "x", 1);
  P("mbind", SYS_mbind, NULL, 0, 0, NULL, 0, 0);
  P("move_pages", SYS_move_pages, me, 0, NULL, NULL, NULL, 0);
  P("socket(AF_VSOCK)", SYS_socket, 40, SOCK_STREAM, 0);
  P("ioctl(TIOCSTI)", SYS_ioctl, 0, TIOCSTI, "x");
  /* The same ptrace(TRACEME) through the i386 ABI (int 0x80, ptrace is 26 there), in a child: a kernel without that
   * ABI answers int 0x80 with SIGSEGV. And through the x32 ABI. */
  pid_t c = fork();
  if (c == 0) {
    long r32;
    __asm__ volatile("int $0x80" : "=a"(r32) : "a"(26), "b"(0), "c"(0), "d"(0), "S"(0) : "memory", "r8", "r9", "r10", "r11");
    printf("i386 ptrace %s\n", r32 >= 0 ? "ALLOWED" : strerrorname_np((int)-r32));
    fflush(stdout);
    _exit(0);
  }
  int st;
  waitpid(c, &st, 0);
  if (WIFSIGNALED(st)) printf("i386 ptrace UNAVAILABLE\n");
  P("x32 ptrace", 0x40000000 | 521, 0, 0, 0, 0);
  return 0;
}
`;

const DENIED = [
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'pidfd_getfd', 'kcmp', 'process_madvise', 'keyctl', 'add_key',
  'request_key', 'bpf', 'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  'fanotify_init', 'open_by_handle_at', 'mount', 'umount2', 'pivot_root', 'chroot', 'move_mount', 'open_tree', 'fsopen',
  'fsconfig', 'fsmount', 'fspick', 'mount_setattr', 'setns', 'unshare(CLONE_NEWUSER)', 'unshare(CLONE_NEWNS)',
  'unshare(CLONE_NEWNET)', 'clone(CLONE_NEWUSER)', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module',
  'delete_module', 'reboot', 'swapon', 'swapoff', 'acct', 'quotactl', 'settimeofday', 'clock_settime', 'syslog', 'iopl',
  'ioperm', 'sethostname', 'mbind', 'move_pages', 'socket(AF_VSOCK)', 'ioctl(TIOCSTI)', 'i386 ptrace', 'x32 ptrace',
];

void describe('hostile 27: dangerous system calls', { timeout: 90_000 }, () => {
  let h: HostileServer;
  before(async () => {
    h = await hostileServer({ poolSize: 2 });
  });
  after(async () => {
    await h?.close();
  });

  test('C: each refused with EPERM (clone3: ENOSYS), through every ABI, and the program runs to its end', { skip: process.arch !== 'x64' && 'the probe speaks x86-64' }, async () => {
    const run = await hostileRun(h, { language: 'c', code: PROBE, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    const seen = new Map(run.result.stdout.trim().split('\n').map((l) => [l.slice(0, l.lastIndexOf(' ')), l.slice(l.lastIndexOf(' ') + 1)] as const));
    for (const name of DENIED) {
      // A kernel without the i386 ABI (int 0x80 faults) leaves nothing to refuse there.
      const ok = name === 'i386 ptrace' ? ['EPERM', 'UNAVAILABLE'] : ['EPERM'];
      assert.ok(ok.includes(seen.get(name) ?? ''), `${name}: ${seen.get(name)}`);
    }
    assert.equal(seen.get('clone3'), 'ENOSYS');
    assert.equal(seen.size, DENIED.length + 1, `unexpected lines: ${run.result.stdout}`);
  });

  test('every run is under the filter: Seccomp 2 in its /proc status, and in its children', async () => {
    const run = await hostileRun(h, { language: 'shell', code: 'grep ^Seccomp: /proc/self/status\nsh -c "grep ^Seccomp: /proc/self/status"\n', limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.stdout, 'Seccomp:\t2\nSeccomp:\t2\n');
  });

  test('python: threads, processes, a process pool, asyncio, a socket pair: all still work', async () => {
    const code = [
      'import asyncio, multiprocessing, os, socket, subprocess, threading',
      'out = []',
      't = threading.Thread(target=lambda: out.append("thread")); t.start(); t.join()',
      'out.append(subprocess.run(["echo", "process"], capture_output=True, text=True).stdout.strip())',
      'with multiprocessing.Pool(2) as pool: out.append("pool %d" % sum(pool.map(abs, [-1, -2, -3])))',
      'async def main(): await asyncio.sleep(0.01); return "asyncio"',
      'out.append(asyncio.run(main()))',
      'a, b = socket.socketpair(); a.send(b"pair"); out.append(b.recv(4).decode())',
      'print(" ".join(out))',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.stdout, 'thread process pool 6 asyncio pair\n');
  });

  test('javascript: worker threads, a child process, fs promises (libuv without io_uring): all still work', async () => {
    const code = [
      "const { Worker } = require('worker_threads');",
      "const { execFileSync } = require('child_process');",
      "const fs = require('fs/promises');",
      '(async () => {',
      "  const w = await new Promise((resolve) => new Worker('require(\"worker_threads\").parentPort.postMessage(\"worker\")', { eval: true }).on('message', resolve));",
      "  const child = execFileSync('echo', ['child']).toString().trim();",
      "  await fs.writeFile('/work/f', 'fs'); const f = await fs.readFile('/work/f', 'utf8');",
      "  console.log([w, child, f].join(' '));",
      '})();',
    ].join('\n');
    const run = await hostileRun(h, { language: 'javascript', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.stdout, 'worker child fs\n');
  });

  test('C: pthreads and fork/exec still work', async () => {
    const code = String.raw`#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void *hello(void *a) { (void)a; puts("thread"); return NULL; }
int main(void) {
  pthread_t t; pthread_create(&t, NULL, hello, NULL); pthread_join(t, NULL); fflush(stdout);
  pid_t p = fork(); if (p == 0) { execlp("echo", "echo", "exec", (char *)NULL); _exit(127); }
  int st; waitpid(p, &st, 0); return WEXITSTATUS(st);
}
`;
    const run = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.stdout, 'thread\nexec\n');
  });
});
