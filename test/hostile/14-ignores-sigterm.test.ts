/**
 * Hostile case 14, ignores SIGTERM: a program (and its children) that ignores or handles SIGTERM, SIGINT and SIGHUP
 * and would run forever. The wall timer's kill can't be ignored (SIGKILL, the whole PID namespace): the run ends
 * within the grace after its limit. The same for a cancel (the Stop button): `cancelled`, within the grace of it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { assertContained, hostileRun, hostileServer, type HostileServer, type RunOutcome } from './harness';
import { outputContaining } from '../helpers/server';
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

const C_IGNORE = `#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static void ignore(void) { signal(SIGTERM, SIG_IGN); signal(SIGINT, SIG_IGN); signal(SIGHUP, SIG_IGN); }
int main(void) {
  ignore();
  if (fork() == 0) { setsid(); ignore(); for (;;) pause(); }
  printf("started\\n");
  fflush(stdout);
  for (;;) pause();
}
`;

const variants: { name: string; params: ExecuteParams }[] = [
  { name: "shell: trap '' TERM INT HUP, sleeping in a loop", params: { language: 'shell', code: "trap '' TERM INT HUP\nwhile :; do sleep 1; done\n" } },
  {
    name: 'shell: a child in its own session that ignores them too',
    params: { language: 'shell', code: "trap '' TERM INT HUP\nsetsid bash -c \"trap '' TERM INT HUP; while :; do sleep 1; done\" &\nwhile :; do sleep 1; done\n" },
  },
  {
    name: 'python: SIG_IGN for TERM, INT, HUP, and a forked child that ignores them too',
    params: {
      language: 'python',
      code: [
        'import os, signal, time',
        'for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):',
        '    signal.signal(s, signal.SIG_IGN)',
        'os.fork()',
        'while True:',
        '    time.sleep(1)',
        '',
      ].join('\n'),
    },
  },
  {
    name: 'python: a SIGTERM handler that forks more instead of ending',
    params: {
      language: 'python',
      code: 'import os, signal, time\nsignal.signal(signal.SIGTERM, lambda *a: os.fork())\nwhile True:\n    time.sleep(1)\n',
    },
  },
  {
    name: 'node: handlers that swallow SIGTERM, SIGINT, SIGHUP',
    params: { language: 'javascript', code: "for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => {});\nsetInterval(() => {}, 1000);\n" },
  },
  { name: 'C: ignores them, and so does a forked child in its own session', params: { language: 'c', code: C_IGNORE } },
];

void describe('ignoring SIGTERM: ends within the grace after the limit', { timeout: SUITE_TIMEOUT_MS }, () => {
  let runs: RunOutcome[] = [];
  before(async () => {
    runs = await Promise.all(variants.map((v) => hostileRun(h, { ...v.params, limits })));
  });
  variants.forEach((v, i) => {
    test(v.name, async () => {
      const run = runs[i]!;
      await assertContained(h, run, { status: 'timeout', limitMs: LIMIT_MS });
      assert.match(run.result.message ?? '', /wall-clock limit of 1000 ms/);
      assert.equal(run.result.signal, 'SIGKILL');
    });
  });
});

void describe('ignoring SIGTERM: a cancel (Stop) still ends it at once', { timeout: SUITE_TIMEOUT_MS }, () => {
  for (const [language, code] of [
    ['shell', "trap '' TERM INT HUP\n(trap '' TERM INT HUP; while :; do sleep 1; done) &\necho started\nwhile :; do sleep 1; done\n"],
    ['c', C_IGNORE],
  ] as const) {
    test(`${language}: cancelled after it started, with a child`, async () => {
      const runId = `cancel-${randomUUID()}`;
      const cts = new CancellationTokenSource();
      const started = performance.now();
      // A long limit: only the cancel may end it.
      const running = hostileRun(h, { language, code, runId, limits: { ...limits, timeoutMs: 20_000 } }, cts.token);
      await outputContaining(h.server, runId, 'started');
      const cancelAfterMs = performance.now() - started;
      cts.cancel();
      const run = await running;
      await assertContained(h, run, { status: 'cancelled', limitMs: cancelAfterMs });
    });
  }
});
