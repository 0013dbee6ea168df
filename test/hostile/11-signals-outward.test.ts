/**
 * Hostile case 11: signals sent outward. In its own PID namespace a run can signal only its own processes: its init
 * (pid 1, the sandbox's launcher) ignores signals from inside, `kill -9 -1` reaches only the run itself, and the
 * server's real pid (passed in as an argument) names nothing there. The server, its zygote and a run in parallel all
 * survive.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecuteRequest } from '../../server/protocol';
import { zygotesOf } from '../helpers/processes';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };

void describe('hostile 11: signals outward', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let serverPid: number;
  let zygote: number;
  before(async () => {
    h = await hostileServer();
    serverPid = h.server.proc.pid!;
    // The zygote starts with the first run.
    await h.server.conn.sendRequest(ExecuteRequest.type, { language: 'shell', code: 'true', cache: false });
    // One zygote per pool worker: the first run's is the one it could try to reach.
    zygote = zygotesOf(serverPid)[0]!;
    assert.ok(zygote, 'no zygote');
  });
  after(async () => {
    await h?.close();
  });

  const serverAlive = (): void => {
    assert.equal(h.server.proc.exitCode, null, 'the server exited');
    assert.equal(h.server.proc.signalCode, null, 'the server was killed');
    assert.ok(zygotesOf(serverPid).includes(zygote), 'the zygote was killed');
  };

  void test('shell: kill -9 $PPID, kill -9 1, kill -9 <server pid>, kill -9 -<server pid>: server alive', async () => {
    const code = [
      'echo "ppid $PPID"',
      'kill -9 $PPID; kill -9 1',
      'kill -9 "$1" 2>/dev/null && echo "SIGNALLED server" || echo "server not reachable"',
      'kill -9 -- "-$1" 2>/dev/null && echo "SIGNALLED server group" || echo "server group not reachable"',
      `kill -9 ${zygote} 2>/dev/null && echo "SIGNALLED zygote" || echo "zygote not reachable"`,
      'echo survived',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, args: [String(serverPid)], limits: LIMITS });
    serverAlive();
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^ppid 1$/m, 'the script is not a child of the sandbox init');
    assert.match(run.result.stdout, /^server not reachable$/m);
    assert.match(run.result.stdout, /^server group not reachable$/m);
    assert.match(run.result.stdout, /^zygote not reachable$/m);
    assert.match(run.result.stdout, /^survived$/m);
  });

  void test('python: os.kill(1, 9), the parent, the server pid and every pid up to 4096: server alive', async () => {
    const code = [
      'import os, sys',
      'server = int(sys.argv[1])',
      'hit = []',
      'for target in [1, os.getppid(), server, -server] + list(range(2, 4097)):',
      '    if target == os.getpid():',
      '        continue',
      '    try:',
      '        os.kill(target, 9)',
      '        hit.append(target)',
      '    except OSError:',
      '        pass',
      'print("signalled", hit, flush=True)',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, args: [String(serverPid)], limits: LIMITS });
    serverAlive();
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    // pid 1 accepts the call but ignores SIGKILL from inside its namespace; nothing else exists there.
    const hit = JSON.parse(/^signalled (.*)$/m.exec(run.result.stdout)?.[1] ?? 'null') as number[];
    assert.deepEqual(hit.filter((p) => p !== 1), [], 'the run signalled a process that is not its own');
  });

  void test('kill -9 -1 (shell, python, C) ends at most the run itself; a parallel run and the server survive', async () => {
    const bystander = h.server.conn.sendRequest(ExecuteRequest.type, {
      language: 'python',
      code: 'import time\ntime.sleep(1)\nprint("bystander survived")',
      cache: false,
      limits: LIMITS,
    });
    const variants = [
      { language: 'shell', code: 'sleep 100 &\nsleep 0.1\nkill -9 -1\necho "after kill -1: $?"' },
      { language: 'python', code: 'import os, subprocess\nsubprocess.Popen(["sleep", "100"])\nos.kill(-1, 9)\nprint("after kill -1")' },
      { language: 'c', code: '#include <signal.h>\n#include <stdio.h>\n#include <unistd.h>\nint main(void) { if (fork() == 0) { pause(); return 0; } usleep(100000); kill(-1, SIGKILL); puts("after kill -1"); return 0; }\n' },
    ];
    const runs = [];
    for (const v of variants) {
      runs.push(await hostileRun(h, { ...v, limits: LIMITS }));
      serverAlive();
    }
    const b = await bystander;
    assert.equal(b.status, 'ok', `the parallel run: ${b.status} ${b.message ?? ''}`);
    assert.equal(b.stdout, 'bystander survived\n');
    serverAlive();
    // Once the bystander is done (its processes would count as leftovers while it runs).
    for (const run of runs) await assertContained(h, run, { status: ['ok', 'runtime_error'], limitMs: TIMEOUT_MS });
  });
});
