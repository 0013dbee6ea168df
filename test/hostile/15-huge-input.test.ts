/**
 * Hostile case 15, huge code / args / stdin: sizes are checked before anything is spawned. Over a limit the run is
 * `rejected` with a message naming the limit, quickly, and audited like any run; the server stays alive. Just under
 * the limits a run goes through (the code reaches the program as a file, not on a command line). The environment
 * of a run is not the client's to set at all: a request that tries is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';
import { MAX_ARGS_BYTES, MAX_CODE_BYTES, MAX_STDIN_BYTES } from '../../server/validation';
import type { ExecuteParams } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;
const MiB = 1024 * 1024;
/** A rejection is decided before any spawn: it must come fast. */
const REJECT_MS = 1000;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 2 });
});
after(async () => {
  await h?.close();
});

/** A python program of `bytes` bytes: one print, padded with a comment. */
function pythonOf(bytes: number): string {
  const head = 'print("ran")\n#';
  return head + 'x'.repeat(bytes - head.length);
}

void describe('over a size limit: rejected, saying which limit', { timeout: SUITE_TIMEOUT_MS }, () => {
  const cases: { name: string; params: () => ExecuteParams; says: RegExp }[] = [
    { name: 'a 10 MB program', params: () => ({ language: 'python', code: pythonOf(10 * MiB) }), says: new RegExp(`program is larger than ${MAX_CODE_BYTES} bytes`) },
    { name: 'a 10 MB C program (never reaches the compiler)', params: () => ({ language: 'c', code: `int main(void) { return 0; }\n//${'x'.repeat(10 * MiB)}` }), says: new RegExp(`program is larger than ${MAX_CODE_BYTES} bytes`) },
    {
      name: 'a 10 MB program file',
      params: () => {
        const file = path.join(h.dir, 'huge.py');
        writeFileSync(file, pythonOf(10 * MiB));
        return { language: 'python', file };
      },
      says: new RegExp(`larger than ${MAX_CODE_BYTES} bytes`),
    },
    { name: 'one 200 KB argument', params: () => ({ language: 'python', code: 'print("ran")', args: ['a'.repeat(200 * 1024)] }), says: new RegExp(`arguments are larger than ${MAX_ARGS_BYTES} bytes`) },
    {
      name: 'many arguments, 200 KB in all',
      params: () => ({ language: 'shell', code: 'echo ran', args: Array.from({ length: 200 }, () => 'a'.repeat(1024)) }),
      says: new RegExp(`arguments are larger than ${MAX_ARGS_BYTES} bytes`),
    },
    { name: '17 MB of stdin', params: () => ({ language: 'python', code: 'import sys\nprint(len(sys.stdin.read()))', stdin: 's'.repeat(MAX_STDIN_BYTES + MiB) }), says: new RegExp(`stdin is larger than ${MAX_STDIN_BYTES} bytes`) },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const run = await hostileRun(h, { ...c.params(), limits });
      await assertContained(h, run, { status: 'rejected', limitMs: REJECT_MS });
      assert.match(run.result.message ?? '', c.says);
      assert.equal(run.result.workerId, null, 'a rejected run never reached a worker');
      assert.equal(run.result.stdout, '');
    });
  }
});

void describe('just under the limits: the run goes through', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('a program of nearly MAX_CODE_BYTES, a 100 KB argument and 8 MB of stdin', async () => {
    const run = await hostileRun(h, {
      language: 'python',
      code: `import sys\nprint(len(sys.argv[1]), len(sys.stdin.read()))\n#${'x'.repeat(MAX_CODE_BYTES - 100)}`,
      args: ['a'.repeat(100 * 1024)],
      stdin: 's'.repeat(8 * MiB),
      limits,
    });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, `${100 * 1024} ${8 * MiB}\n`);
  });
});

void describe('the environment is not the client\'s to set', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('a request with a 1 MB env is refused (invalid params), and the server goes on', async () => {
    await assert.rejects(
      h.server.conn.sendRequest('sandbox/execute', { language: 'python', code: 'print(1)', env: { HUGE: 'x'.repeat(MiB) } }),
      (e: { code?: number; message?: string }) => e.code === -32602 && /unknown field "env"/.test(e.message ?? ''),
    );
    const run = await hostileRun(h, { language: 'python', code: 'import os\nprint("HUGE" in os.environ)', limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, 'False\n');
  });
});
