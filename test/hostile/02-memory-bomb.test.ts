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
import { readText } from '../helpers/processes';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

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
