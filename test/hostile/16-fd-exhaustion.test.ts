/**
 * Hostile case 16, fd exhaustion: a program opens files, sockets and pipes until it can't. RLIMIT_NOFILE stops it
 * inside the sandbox (EMFILE at the limit, which it can't raise); the server's own descriptors are untouched: the
 * count in /proc/<server>/fd is the same after the run as before it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';
import { waitFor } from '../helpers/server';
import type { ExecuteParams } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;
const OPEN_FILES = 64;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32, openFiles: OPEN_FILES };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 2 });
  // One run first: whatever the server opens once and keeps (the zygote's pipes, the audit log, the socket the
  // launchers connect to) is open before the first count.
  const warm = await hostileRun(h, { language: 'python', code: 'print(1)' });
  assert.equal(warm.result.status, 'ok');
});
after(async () => {
  await h?.close();
});

/** The server's open descriptors, by what they are. */
function serverFds(): string[] {
  const dir = `/proc/${h.server.proc.pid}/fd`;
  const out: string[] = [];
  for (const fd of readdirSync(dir)) {
    try {
      out.push(`${fd} -> ${readlinkSync(`${dir}/${fd}`)}`);
    } catch {
      // closed while we looked
    }
  }
  return out;
}

const PY_EXHAUST = `import errno, os, socket, resource
def fill(what, make):
    held = []
    try:
        while True:
            held.append(make())
    except OSError as e:
        print(what, len(held), errno.errorcode[e.errno])
    return held
files = fill('files', lambda: open('/dev/null'))
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (100000, 100000))
    print('RAISED')
except (ValueError, OSError) as e:
    print('raise refused')
for f in files[:8]:
    f.close()
fill('sockets', socket.socket)
for f in files[8:16]:
    f.close()
fill('pipes', os.pipe)
`;

const C_EXHAUST = `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
int main(void) {
  int n = 0;
  for (;;) {
    if (open("/dev/null", O_RDONLY) < 0) { printf("open failed after %d: errno %d\\n", n, errno); break; }
    n++;
  }
  struct rlimit rl = { 1 << 20, 1 << 20 };
  printf("raise %s\\n", setrlimit(RLIMIT_NOFILE, &rl) == 0 ? "RAISED" : "refused");
  return 1;
}
`;

const variants: { name: string; params: ExecuteParams; status: ('ok' | 'runtime_error')[]; check: (out: string) => void }[] = [
  {
    name: 'python: files, then sockets, then pipes until EMFILE; raising the limit is refused',
    params: { language: 'python', code: PY_EXHAUST },
    status: ['ok'],
    check: (out) => {
      const files = /^files (\d+) EMFILE$/m.exec(out);
      assert.ok(files, out);
      assert.ok(Number(files[1]) < OPEN_FILES, `opened ${files[1]} files with a limit of ${OPEN_FILES}`);
      assert.match(out, /^raise refused$/m);
      assert.match(out, /^sockets \d+ EMFILE$/m);
      assert.match(out, /^pipes \d+ EMFILE$/m);
    },
  },
  {
    name: 'C: open() until it fails, then setrlimit up',
    params: { language: 'c', code: C_EXHAUST },
    status: ['runtime_error'],
    check: (out) => {
      const m = /^open failed after (\d+): errno (\d+)$/m.exec(out);
      assert.ok(m, out);
      assert.equal(Number(m[2]), 24, 'EMFILE');
      assert.ok(Number(m[1]) < OPEN_FILES);
      assert.match(out, /^raise refused$/m);
    },
  },
  {
    name: 'node: fs.openSync until EMFILE',
    params: {
      language: 'javascript',
      code: "const fs = require('fs');\nconst fds = [];\ntry { for (;;) fds.push(fs.openSync('/dev/null', 'r')); } catch (e) { console.log('node', fds.length, e.code); }\n",
    },
    status: ['ok'],
    check: (out) => {
      const m = /^node (\d+) EMFILE$/m.exec(out);
      assert.ok(m, out);
      assert.ok(Number(m[1]) < OPEN_FILES);
    },
  },
  {
    name: 'shell: exec N</dev/null until it fails',
    params: { language: 'shell', code: 'ulimit -n\nfor i in $(seq 3 1000); do eval "exec $i</dev/null" 2>/dev/null || { echo "failed at $i"; break; }; done\nulimit -n 100000 2>/dev/null && echo RAISED || echo "raise refused"\n' },
    status: ['ok'],
    check: (out) => {
      // bash keeps a few descriptors of its own (the script, a saved stdin): it fails a little before the limit.
      const m = new RegExp(`^${OPEN_FILES}\\nfailed at (\\d+)\\nraise refused\\n$`).exec(out);
      assert.ok(m, out);
      assert.ok(Number(m[1]) <= OPEN_FILES);
    },
  },
];

void describe('fd exhaustion: fails inside the sandbox, the server keeps its descriptors', { timeout: SUITE_TIMEOUT_MS }, () => {
  for (const v of variants) {
    test(v.name, async () => {
      const before = serverFds();
      const run = await hostileRun(h, { ...v.params, limits });
      await assertContained(h, run, { status: v.status, limitMs: limits.timeoutMs });
      v.check(run.result.stdout);
      // The run's sockets close as its result is sent (and the previous run's may still have been closing when
      // `before` was read): wait for the count to settle back, at most where it was.
      const settled = await waitFor(() => serverFds().length <= before.length, 'the server fd count to settle', 3000).catch(() => false);
      assert.ok(settled !== false, `server fds before:\n${before.join('\n')}\nafter:\n${serverFds().join('\n')}`);
    });
  }
});
