/**
 * Hostile case 2: memory bombs. The run's memory cgroup holds every runtime (node has no RLIMIT_AS; RLIMIT_AS also
 * stops the native ones): the verdict is `memory_limit`, the run's peak stays at the limit, and the server's own
 * resident memory stays flat (nothing of the bomb lands in the server). Without a writable memory cgroup (an
 * ordinary user's server, where the cgroup is not delegated), node's memory outside its heap is held by the
 * watchdog, which samples every 50 ms: the run may pass the limit by what it allocates in between.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecuteRequest, LanguagesRequest } from '../../server/protocol';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readText, zygotesOf } from '../helpers/processes';
import { assertContained, hostileRun, hostileServer, workerCgroups, type HostileServer } from './harness';

const MiB = 1024 * 1024;
const MEMORY_MB = 128;
const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS, memoryMb: MEMORY_MB };
/** How much the server's RSS may grow over a bomb: well below the bomb's own size (the limit). */
const SERVER_GROWTH_BYTES = 48 * MiB;

function rssOf(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readText(`/proc/${pid}/status`) ?? '')?.[1];
  assert.ok(kb, `no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

const BOMBS: { name: string; language: string; code: string }[] = [
  { name: 'python: a list of 10 MB bytearrays', language: 'python', code: 'b = []\nwhile True:\n    b.append(bytearray(10 * 1024 * 1024))\n' },
  { name: 'javascript: Buffer.alloc(10 MB) forever', language: 'javascript', code: 'const a = [];\nfor (;;) a.push(Buffer.alloc(10 * 1024 * 1024, 1));\n' },
  { name: 'javascript: arrays on the V8 heap', language: 'javascript', code: 'const a = [];\nfor (;;) a.push(new Array(1e6).fill(1.5));\n' },
  {
    name: 'C: malloc + memset 10 MB forever',
    language: 'c',
    code: '#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(10 << 20); if (!p) return 3; memset(p, 1, 10 << 20); } }\n',
  },
  { name: 'bash: a string that doubles', language: 'shell', code: 'x=a\nwhile true; do x="$x$x"; done\n' },
];

void describe('hostile 02: memory bomb', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let baseline = 0;
  let slack = 1.1;
  before(async () => {
    h = await hostileServer();
    const { sandbox } = await h.server.conn.sendRequest(LanguagesRequest.type);
    if (!/memory cgroup/.test(sandbox.enforcement.memory)) slack = 1.5; // the watchdog's 50 ms between samples
    // Warm the server (a first run of each kind loads code) before its RSS is the baseline.
    const warm: [string, string][] = [['python', 'print(1)'], ['javascript', 'console.log(1)'], ['shell', 'echo 1']];
    for (const [language, code] of warm) await h.server.conn.sendRequest(ExecuteRequest.type, { language, code, cache: false });
    baseline = rssOf(h.server.proc.pid!);
  });
  after(async () => {
    await h?.close();
  });

  for (const bomb of BOMBS) {
    void test(`${bomb.name}: memory_limit, peak at the limit, server RSS flat`, async () => {
      const run = await hostileRun(h, { language: bomb.language, code: bomb.code, limits: LIMITS });
      await assertContained(h, run, { status: 'memory_limit', limitMs: TIMEOUT_MS });
      assert.ok(
        run.result.peakMemoryBytes <= MEMORY_MB * MiB * slack,
        `peak ${Math.round(run.result.peakMemoryBytes / MiB)} MiB passed the ${MEMORY_MB} MiB limit`,
      );
      const rss = rssOf(h.server.proc.pid!);
      assert.ok(rss - baseline <= SERVER_GROWTH_BYTES, `server RSS grew by ${Math.round((rss - baseline) / MiB)} MiB`);
    });
  }
});

/**
 * Memory no process holds: files in the run's tmpfs, socket buffers, the page cache. With a memory cgroup, all of it is
 * the run's (loopback TCP too: cgroup v1 charges it only to the group's kmem.tcp limit, which the server sets); the
 * OOM killer takes pid 1 or the program, never bwrap, a launcher or the zygote (their oom_score_adj is -1000 for a
 * root server, the run's 1000); and the page cache an earlier run left in the worker's group does not raise the next
 * run's limit. Without a memory cgroup (an ordinary user's server) only the tmpfs sizes bound the first, and the
 * README says so.
 */
void describe('hostile 02: memory outside the processes (tmpfs, sockets, page cache)', { timeout: 120_000 }, () => {
  let h: HostileServer;
  let memcg = false;
  before(async () => {
    h = await hostileServer({ poolSize: 1 });
    const { sandbox } = await h.server.conn.sendRequest(LanguagesRequest.type);
    memcg = /memory cgroup/.test(sandbox.enforcement.memory);
  });
  after(async () => {
    await h?.close();
  });

  void test('tmpfs filled by a tiny program that also prints a fake bwrap error: the program is what dies, and its words stay its own', async () => {
    const code = String.raw`#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
  signal(SIGXFSZ, SIG_IGN); /* a file at fileSizeMb: EFBIG, next file */
  char adj[16] = {0};
  int a = open("/proc/self/oom_score_adj", O_RDONLY); read(a, adj, sizeof adj - 1);
  printf("oom_score_adj %s", adj); fflush(stdout);
  fputs("bwrap: FAKE: the kernel is too old, run the fix at http://example.invalid\n", stderr); fflush(stderr);
  static char buf[65536]; memset(buf, 1, sizeof buf);
  const char *files[] = { "/dev/shm/f", "/tmp/f", "/work/f" };
  for (int i = 0; i < 3; i++) { int fd = open(files[i], O_WRONLY | O_CREAT | O_TRUNC, 0600); while (write(fd, buf, sizeof buf) > 0) {} }
  puts("filled"); fflush(stdout);
  pause();
  return 0;
}
`;
    const serverPid = h.server.proc.pid!;
    await h.server.conn.sendRequest(ExecuteRequest.type, { language: 'shell', code: 'true', cache: false }); // the zygote starts
    const zygotes = zygotesOf(serverPid);
    // Lowering it takes CAP_SYS_RESOURCE, which root lacks on some machines (this kind's among them).
    const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(readText(`/proc/${serverPid}/status`) ?? '')?.[1] ?? '0'}`);
    if ((capEff >> 24n) & 1n) {
      for (const z of zygotes) assert.equal(readText(`/proc/${z}/oom_score_adj`)?.trim(), '-1000', 'a root zygote is the last the OOM killer picks');
    }
    const limits = { timeoutMs: 5000, memoryMb: 32, diskMb: 64 };
    const run = await hostileRun(h, { language: 'c', code, limits });
    assert.match(run.result.stdout, /^oom_score_adj 1000$/m, 'the program is the first the OOM killer picks');
    assert.doesNotMatch(run.result.message ?? '', /FAKE/, "the program's stderr passed for bwrap's words");
    if (memcg) {
      // 3 × 64 MiB of tmpfs under a 32 MiB limit: the group runs out, and what dies is the run.
      await assertContained(h, run, { status: 'memory_limit', limitMs: limits.timeoutMs });
      assert.deepEqual(zygotesOf(serverPid), zygotes, 'the OOM killer took a zygote');
    } else {
      // Without a memory cgroup each tmpfs stops at diskMb (ENOSPC inside) and the run sleeps to its timeout.
      await assertContained(h, run, { status: 'timeout', limitMs: limits.timeoutMs });
      assert.match(run.result.stdout, /^filled$/m);
    }
  });

  void test('loopback TCP buffers count against the memory limit', async (t) => {
    if (!memcg) return t.skip('no memory cgroup here: socket buffers are bounded by the host alone (README, "What it does not protect against")');
    const code = [
      'import socket',
      'total = 0',
      'l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(200)',
      'keep = []',
      'for i in range(100):',
      '    c = socket.create_connection(l.getsockname()); s, _ = l.accept(); keep.append((c, s))',
      '    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20); c.setblocking(False)',
      '    try:',
      '        while True: total += c.send(b"x" * 65536)',
      '    except OSError:',
      '        pass',
      'print("queued MiB", total >> 20, flush=True)',
    ].join('\n');
    const limits = { timeoutMs: 10_000, memoryMb: 64 };
    const run = await hostileRun(h, { language: 'python', code, limits });
    await assertContained(h, run, { status: ['ok', 'memory_limit'], limitMs: limits.timeoutMs });
    const queued = Number(/^queued MiB (\d+)$/m.exec(run.result.stdout)?.[1] ?? 0);
    // 100 connections × a 4 MiB buffer would be 400 MiB: the group's limit (and the socket minimums) stop it.
    assert.ok(queued <= 64 * 1.5, `${queued} MiB queued in loopback TCP under a 64 MiB limit`);
  });

  void test("the page cache one run leaves in its worker's group does not raise the next run's limit", async () => {
    // 200 MiB on disk, not in the page cache (written O_DIRECT): the first run's reading puts it in its group's.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'page-cache-'));
    try {
      chmodSync(dir, 0o755);
      const file = path.join(dir, 'big');
      const dd = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=200', 'oflag=direct'], { stdio: 'ignore' });
      assert.equal(dd.status, 0, 'dd');
      chmodSync(file, 0o644);
      const limits = { timeoutMs: 10_000, memoryMb: 128 };
      const read = await hostileRun(h, { language: 'shell', code: `cat ${file} > /dev/null && echo read`, workspace: dir, limits });
      await assertContained(h, read, { status: 'ok', limitMs: limits.timeoutMs });
      if (memcg && process.getuid?.() === 0) {
        const usage = Math.max(...workerCgroups(h.server.proc.pid!).filter((d) => d.includes('/memory/') || !d.includes('/pids/')).map((d) => Number(readText(path.join(d, 'memory.usage_in_bytes')) ?? readText(path.join(d, 'memory.current')) ?? 0)));
        assert.ok(usage >= 100 * MiB, `the first run left ${Math.round(usage / MiB)} MiB in its group: the premise did not hold`);
      }
      // The next run on the same worker wants 180 MiB of its own under a 128 MiB limit: refused, whatever is cached.
      // (node: with a memory cgroup nothing else holds it — no RLIMIT_AS, no heap flag — and a Buffer is off-heap.)
      const grow = await hostileRun(h, { language: 'javascript', code: 'const b = Buffer.alloc(180 * 1024 * 1024, 1);\nconsole.log("allocated", b.length);', limits });
      await assertContained(h, grow, { status: 'memory_limit', limitMs: limits.timeoutMs });
      assert.equal(grow.result.workerId, read.result.workerId);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
