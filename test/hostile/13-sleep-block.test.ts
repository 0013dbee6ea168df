/**
 * Hostile case 13, sleep / block: a program that waits forever, on a timer, a signal or its stdin. The wall timer
 * kills the whole tree at the limit (`timeout`, within the limit plus the grace). Stdin that was not given is closed:
 * a read sees end-of-file at once, so a program waiting for input ends on its own, quickly, instead of hanging
 * until the timer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer, type RunOutcome } from './harness';
import type { ExecuteParams } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;
const LIMIT_MS = 1000;
const limits = { timeoutMs: LIMIT_MS, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 8 });
});
after(async () => {
  await h?.close();
});

interface Variant {
  name: string;
  params: ExecuteParams;
  check?: (run: RunOutcome) => void;
}

const sleepers: Variant[] = [
  { name: 'shell: sleep 1e6', params: { language: 'shell', code: 'sleep 1e6\n' } },
  { name: 'shell: sleep in a background job and wait', params: { language: 'shell', code: 'sleep 1e6 &\nsleep 1e6 &\nwait\n' } },
  { name: 'python: time.sleep(1e6)', params: { language: 'python', code: 'import time\ntime.sleep(1e6)\n' } },
  { name: 'python: a blocking accept on a socket', params: { language: 'python', code: 'import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind("/tmp/s")\ns.listen()\ns.accept()\n' } },
  { name: 'node: setInterval keeps the event loop alive', params: { language: 'javascript', code: 'setInterval(() => {}, 1000);\n' } },
  { name: 'node: Atomics.wait blocks the main thread forever', params: { language: 'javascript', code: 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n' } },
  { name: 'C: pause()', params: { language: 'c', code: '#include <unistd.h>\nint main(void) { pause(); return 0; }\n' } },
];

const readers: Variant[] = [
  {
    name: 'python: input() with no stdin given: EOFError at once',
    params: { language: 'python', code: 'x = input()\nprint("got", repr(x))\n' },
    check: (run) => assert.match(run.result.stderr, /EOFError/),
  },
  {
    name: 'python: sys.stdin.read() with no stdin given: empty, at once',
    params: { language: 'python', code: 'import sys\nprint("read", len(sys.stdin.read()))\n' },
    check: (run) => assert.equal(run.result.stdout, 'read 0\n'),
  },
  {
    name: 'shell: read with no stdin given: end-of-file, at once',
    params: { language: 'shell', code: 'read -r x; echo "read rc=$? [$x]"\ncat\necho "cat done"\n' },
    check: (run) => assert.equal(run.result.stdout, 'read rc=1 []\ncat done\n'),
  },
  {
    name: 'node: process.stdin to its end with no stdin given',
    params: { language: 'javascript', code: 'let n = 0;\nprocess.stdin.on("data", (c) => (n += c.length)).on("end", () => console.log("end", n));\n' },
    check: (run) => assert.equal(run.result.stdout, 'end 0\n'),
  },
  {
    name: 'C: read(0) with no stdin given: 0 bytes, at once',
    params: { language: 'c', code: '#include <stdio.h>\n#include <unistd.h>\nint main(void) { char b[16]; printf("read %zd\\n", read(0, b, sizeof b)); return 0; }\n' },
    check: (run) => assert.equal(run.result.stdout, 'read 0\n'),
  },
  {
    name: 'python: stdin given, then read to its end: what was given, at once',
    params: { language: 'python', code: 'import sys\nprint(repr(sys.stdin.read()))\nprint(repr(sys.stdin.read()))\n', stdin: 'abc\n' },
    check: (run) => assert.equal(run.result.stdout, "'abc\\n'\n''\n"),
  },
];

void describe('sleep / block: timeout at the wall limit, and nothing left', { timeout: SUITE_TIMEOUT_MS }, () => {
  let runs: RunOutcome[] = [];
  before(async () => {
    runs = await Promise.all(sleepers.map((v) => hostileRun(h, { ...v.params, limits })));
  });
  sleepers.forEach((v, i) => {
    test(v.name, async () => {
      const run = runs[i]!;
      await assertContained(h, run, { status: 'timeout', limitMs: LIMIT_MS });
      assert.match(run.result.message ?? '', /wall-clock limit of 1000 ms/);
      assert.ok(run.result.durationMs >= LIMIT_MS, `ended after ${run.result.durationMs} ms, before its limit`);
      // Asleep the whole time: the wall timer is what ended it, not the CPU limit.
      assert.ok(run.result.cpuMs < LIMIT_MS / 2, `a sleeper used ${run.result.cpuMs} ms of CPU`);
    });
  });
});

void describe('reading stdin that was not given: end-of-file at once, no hang', { timeout: SUITE_TIMEOUT_MS }, () => {
  // A long limit: a read that blocked would show as a timeout here, far past the quick end we expect.
  const READ_LIMIT_MS = 5000;
  let runs: RunOutcome[] = [];
  before(async () => {
    runs = await Promise.all(readers.map((v) => hostileRun(h, { ...v.params, limits: { ...limits, timeoutMs: READ_LIMIT_MS } })));
  });
  readers.forEach((v, i) => {
    test(v.name, async () => {
      const run = runs[i]!;
      await assertContained(h, run, { status: ['ok', 'runtime_error'], limitMs: READ_LIMIT_MS });
      assert.ok(run.result.durationMs < READ_LIMIT_MS, 'ended on its own, not by the timer');
      v.check?.(run);
    });
  });
});
