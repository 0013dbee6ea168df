/**
 * Hostile case 24, kernel settings. With host root behind the uid map, /proc/sys was writable from inside: writing
 * kernel.core_pattern to a pipe into a file under /work and crashing a child made the kernel run that file as real
 * root on the host; net.* writes carried over to the next run on the worker. Now the run is an unprivileged host uid,
 * /proc/sys, fs, irq and bus are read-only mounts, the files runc masks are covered, and every run has a network
 * namespace of its own. Every write fails, the host's values stay as they were, nothing runs on the host, and the
 * next run on the same worker sees the defaults and none of the sockets the last one left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const LIMITS = { timeoutMs: 5000, memoryMb: 128, processes: 32 };

/** Settings a run would go for: the core dump helper, fs and vm knobs, the network of its namespace. */
const SYSCTLS = [
  '/proc/sys/kernel/core_pattern',
  '/proc/sys/kernel/modprobe',
  '/proc/sys/kernel/sysrq',
  '/proc/sys/kernel/hostname',
  '/proc/sys/fs/file-max',
  '/proc/sys/fs/protected_symlinks',
  '/proc/sys/vm/drop_caches',
  '/proc/sys/net/ipv4/ip_default_ttl',
  '/proc/sys/net/ipv6/conf/lo/disable_ipv6',
  '/proc/sys/net/ipv4/ip_forward',
];

/** What the host shows for each (those that exist; net.* are per namespace and not compared on the host). */
const hostValues = (): Map<string, string> =>
  snapshot(SYSCTLS.filter((p) => !p.includes('/net/') && !p.endsWith('/hostname') && !p.endsWith('drop_caches')));

const WRITE_ALL = `import errno, json, os, sys
out = {}
for p in json.loads(sys.argv[1]):
    try:
        with open(p, "w") as f:
            f.write("1\\n")
        out[p] = "WRITTEN"
    except OSError as e:
        out[p] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
`;

void describe('hostile 24: kernel settings', { timeout: 90_000 }, () => {
  let h: HostileServer;
  before(async () => {
    // One worker: the next run is served by the very worker (and network namespace) the first one had.
    h = await hostileServer({ poolSize: 1 });
  });
  after(async () => {
    await h?.close();
  });

  test('every write to /proc/sys fails (read-only, EROFS), and the host keeps its values', async () => {
    const before = hostValues();
    const run = await hostileRun(h, { language: 'python', code: WRITE_ALL, args: [JSON.stringify(SYSCTLS)], limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs, unchanged: before });
    const seen = JSON.parse(run.result.stdout) as Record<string, string>;
    for (const p of SYSCTLS) assert.ok(['EROFS', 'EACCES', 'ENOENT'].includes(seen[p]!), `${p}: ${seen[p]}`);
    assert.equal(seen['/proc/sys/kernel/core_pattern'], 'EROFS');
    assert.equal(seen['/proc/sys/net/ipv4/ip_default_ttl'], 'EROFS');
  });

  test('the core_pattern escape: a pipe helper in /work, a crashing child: nothing runs on the host', async () => {
    const canary = path.join(h.dir, 'core-helper-ran');
    const before = hostValues();
    const code = [
      'import os, resource, signal, subprocess, sys',
      'canary = sys.argv[1]',
      'helper = "/work/helper.sh"',
      'open(helper, "w").write("#!/bin/sh\\ntouch " + canary + "\\n")',
      'os.chmod(helper, 0o755)',
      'try:',
      '    open("/proc/sys/kernel/core_pattern", "w").write("|" + helper + "\\n")',
      '    print("core_pattern WRITTEN")',
      'except OSError as e:',
      '    print("core_pattern", e.strerror)',
      'try:',
      '    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))',
      '    print("RLIMIT_CORE raised")',
      'except (OSError, ValueError) as e:',
      '    print("RLIMIT_CORE stays", resource.getrlimit(resource.RLIMIT_CORE))',
      'child = subprocess.run(["sh", "-c", "kill -SEGV $$"])',
      'print("child", child.returncode)',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, args: [canary], limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs, unchanged: before, absent: [canary] });
    assert.match(run.result.stdout, /^core_pattern Read-only file system$/m);
    assert.match(run.result.stdout, /^RLIMIT_CORE stays \(0, 0\)$/m);
    assert.match(run.result.stdout, /^child -11$/m);
    assert.ok(!existsSync(canary), 'the kernel ran the helper on the host');
    assert.doesNotMatch(readFileSync('/proc/sys/kernel/core_pattern', 'utf8'), /helper\.sh/);
  });

  test("/proc: kcore, keys, kallsyms, timer_list and the rest runc masks are closed; /proc/sys, fs, irq, bus are read-only mounts", async () => {
    const code = [
      'import json, os',
      'out = {}',
      'for name in ["kcore", "keys", "key-users", "kallsyms", "timer_list", "timer_stats", "sched_debug", "latency_stats", "sysrq-trigger", "acpi", "scsi"]:',
      '    p = "/proc/" + name',
      '    if not os.path.lexists(p):',
      '        continue',
      '    try:',
      '        out[name] = "LISTED %d" % len(os.listdir(p)) if os.path.isdir(p) else "READ %d" % len(open(p, "rb").read(4096))',
      '    except OSError as e:',
      '        out[name] = e.strerror',
      'mounts = {}',
      'for line in open("/proc/self/mountinfo"):',
      '    f = line.split()',
      '    mounts[f[4]] = f[5].split(",")[0]',
      'out["mounts"] = {m: mounts.get(m) for m in ["/proc/sys", "/proc/fs", "/proc/irq", "/proc/bus"] if os.path.exists(m)}',
      'print(json.dumps(out))',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    const seen = JSON.parse(run.result.stdout) as Record<string, unknown>;
    for (const name of ['kcore', 'keys', 'key-users', 'kallsyms', 'timer_list', 'timer_stats', 'sched_debug', 'latency_stats', 'sysrq-trigger', 'acpi', 'scsi']) {
      if (!existsSync(`/proc/${name}`)) continue; // not in this kernel
      assert.ok(['Permission denied', 'READ 0', 'LISTED 0'].includes(seen[name] as string), `/proc/${name}: ${String(seen[name])}`);
    }
    const mounts = seen.mounts as Record<string, string>;
    for (const [m, mode] of Object.entries(mounts)) assert.equal(mode, 'ro', `${m} is mounted ${mode}`);
    assert.equal(mounts['/proc/sys'], 'ro');
  });

  test("a run changes nothing the next run on its worker sees: ttl, IPv6 on loopback, the link itself", async () => {
    const change = [
      'for p, v in [("/proc/sys/net/ipv4/ip_default_ttl", "5"), ("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "1"), ("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")]:',
      '    try:',
      '        open(p, "w").write(v)',
      '        print("CHANGED", p)',
      '    except OSError as e:',
      '        print("refused", p, e.strerror)',
      // What `ip link set lo down` does: SIOCSIFFLAGS on the loopback with IFF_UP cleared.
      'import fcntl, socket, struct',
      'try:',
      '    fcntl.ioctl(socket.socket(), 0x8914, struct.pack("16sH14x", b"lo", 0))',
      '    print("LOOPBACK DOWN")',
      'except OSError as e:',
      '    print("link down refused", e.strerror)',
    ].join('\n');
    const first = await hostileRun(h, { language: 'python', code: change, limits: LIMITS });
    await assertContained(h, first, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.doesNotMatch(first.result.stdout, /CHANGED/);
    assert.match(first.result.stdout, /^link down refused Operation not permitted$/m);
    assert.doesNotMatch(first.result.stdout, /LOOPBACK DOWN/);

    const look = [
      'import socket',
      'print("ttl", open("/proc/sys/net/ipv4/ip_default_ttl").read().strip())',
      'print("lo ipv6 disabled", open("/proc/sys/net/ipv6/conf/lo/disable_ipv6").read().strip())',
      's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()',
      'c = socket.create_connection(s.getsockname(), timeout=2)',
      'print("loopback up")',
      's6 = socket.socket(socket.AF_INET6); s6.bind(("::1", 0)); s6.listen()',
      'socket.create_connection(s6.getsockname()[:2], timeout=2)',
      'print("ipv6 loopback up")',
    ].join('\n');
    const second = await hostileRun(h, { language: 'python', code: look, limits: LIMITS });
    await assertContained(h, second, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(first.result.workerId, second.result.workerId);
    assert.equal(second.result.stdout, 'ttl 64\nlo ipv6 disabled 0\nloopback up\nipv6 loopback up\n');
  });

  test('nor its sockets: a port left in TIME_WAIT is free in the next run, whose /proc/net/tcp is empty', async () => {
    // The side that closes first keeps the connection in TIME_WAIT for a minute, in its network namespace.
    const leave = [
      'import socket',
      'l = socket.socket(); l.bind(("127.0.0.1", 8080)); l.listen(1)',
      'c = socket.create_connection(("127.0.0.1", 8080)); s, _ = l.accept()',
      's.close(); c.close(); l.close()',
      'print("time-wait", sum(1 for line in open("/proc/net/tcp") if line.split()[3:4] == ["06"]))',
    ].join('\n');
    const first = await hostileRun(h, { language: 'python', code: leave, limits: LIMITS });
    await assertContained(h, first, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.match(first.result.stdout, /^time-wait [1-9]/m, 'the first run left no TIME_WAIT socket: the premise did not hold');
    const look = [
      'import socket',
      'print("connections", len(open("/proc/net/tcp").read().splitlines()) - 1)',
      'socket.socket().bind(("127.0.0.1", 8080))',
      'print("bound 8080")',
    ].join('\n');
    const second = await hostileRun(h, { language: 'python', code: look, limits: LIMITS });
    await assertContained(h, second, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(first.result.workerId, second.result.workerId);
    assert.equal(second.result.stdout, 'connections 0\nbound 8080\n');
  });
});
