/**
 * Hostile case 23, host root through the uid map. Inside, every run is uid 65534; what matters is who that is on the
 * host. bubblewrap started by root maps it onto host root, and every kernel check that compares a uid with 0 then
 * passes (/proc/sys, keyrings, root-owned files). Here each pool worker's user namespace maps 65534 onto a host uid
 * of the worker's own (server/identity.ts), which owns nothing. Checked from the host's side, as the host sees the
 * run's processes in /proc (world-readable, so this holds for a server run by an ordinary user too): every process
 * in a run's sandbox, pid 1 and compilers included, is that uid and gid, with no supplementary groups; never 0, never
 * the server's own; two workers' runs are two different uids.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { LanguagesRequest, type ExecuteParams, type SandboxInfo } from '../../server/protocol';
import { sandboxedBelow, sandboxProcesses, type HostProcess } from '../helpers/processes';
import { waitFor } from '../helpers/server';
import { assertContained, hostileServer, startRun, type HostileServer } from './harness';

const LIMITS = { timeoutMs: 20_000, memoryMb: 256, processes: 32 };
const serverUid = process.getuid!();
const serverGid = process.getgid!();

/** A program of each language that starts two more processes, says "started" and waits to be stopped. */
const WAITERS: ExecuteParams[] = [
  { language: 'shell', code: 'sleep 60 & sleep 60 &\necho started\nwait\n' },
  { language: 'python', code: 'import subprocess, time\nps = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]\nprint("started", flush=True)\ntime.sleep(60)\n' },
  { language: 'javascript', code: "const { spawn } = require('child_process');\nspawn('sleep', ['60']); spawn('sleep', ['60']);\nconsole.log('started');\nsetTimeout(() => {}, 60000);\n" },
  { language: 'c', code: '#include <stdio.h>\n#include <unistd.h>\nint main(void) { if (fork() == 0) { sleep(60); return 0; } if (fork() == 0) { sleep(60); return 0; } puts("started"); fflush(stdout); sleep(60); return 0; }\n' },
];

/** The one uid and gid every process of a sandbox has, asserting it is the same everywhere and not privileged. */
function theIds(processes: HostProcess[], what: string): { uid: number; gid: number } {
  assert.ok(processes.length >= 3, `${what}: expected pid 1 and the program's processes, saw ${processes.map((p) => p.cmd).join(' | ')}`);
  const uid = processes[0]!.uids[0]!;
  const gid = processes[0]!.gids[0]!;
  for (const p of processes) {
    const who = `${what}: ${p.pid} ${p.cmd}`;
    assert.equal(p.nspid.length, 2, `${who} is not in the sandbox's PID namespace`);
    assert.deepEqual(p.uids, [uid, uid, uid, uid], `${who}: real/effective/saved/fs uids`);
    assert.deepEqual(p.gids, [gid, gid, gid, gid], `${who}: gids`);
    assert.deepEqual(p.groups, [], `${who}: supplementary groups ${p.groups.join(',')}`);
  }
  for (const id of [uid, gid]) {
    assert.notEqual(id, 0, `${what}: the host sees root`);
    assert.notEqual(id, serverUid, `${what}: the host sees the server's own uid`);
    assert.notEqual(id, serverGid, `${what}: the host sees the server's own gid`);
    assert.notEqual(id, 65534, `${what}: the host sees nobody, shared with the host's own daemons`);
  }
  return { uid, gid };
}

void describe('hostile 23: the host never sees root, nor the server, in a sandbox', { timeout: 120_000 }, () => {
  let h: HostileServer;
  let sandbox: SandboxInfo;
  before(async () => {
    h = await hostileServer({ poolSize: 2 });
    sandbox = (await h.server.conn.sendRequest(LanguagesRequest.type)).sandbox;
  });
  after(async () => {
    await h?.close();
  });

  test('the server says its sandboxes have ids of their own', () => {
    assert.equal(sandbox.hostUser?.mode, 'dedicated', `sandboxed programs run as ${sandbox.hostUser?.description}`);
  });

  for (const params of WAITERS) {
    test(`${params.language}: every process of the run, pid 1 included, is the worker's own uid and gid`, async () => {
      const run = startRun(h, { ...params, limits: LIMITS });
      try {
        await run.started();
        const seen = await waitFor(() => {
          const ps = sandboxProcesses(run.marker);
          return ps.length >= 4 ? ps : undefined; // pid 1, the program, its two children
        }, 'the run and its children');
        const ids = theIds(seen, params.language);
        // pid 1 (the launcher) too: it holds the report pipe, and it is no more than the program.
        assert.ok(seen.some((p) => p.nspid[1] === 1 && p.cmd.startsWith('/etc/sbx-launch --init')), 'pid 1 was seen');
        // The worker's user namespace, as the host reads it: the server's uid is its 0, the worker's uid its 65534.
        const map = readFileSync(`/proc/${seen[0]!.pid}/uid_map`, 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
        assert.deepEqual(map, [
          [0, serverUid, 1],
          [65534, ids.uid, 1],
        ]);
      } finally {
        run.cancel();
      }
      await assertContained(h, await run.done, { status: 'cancelled', limitMs: LIMITS.timeoutMs });
    });
  }

  test('two runs at once, on two workers: two different uids', async () => {
    const runs = [startRun(h, { ...WAITERS[0]!, limits: LIMITS }), startRun(h, { ...WAITERS[0]!, limits: LIMITS })];
    try {
      await Promise.all(runs.map((r) => r.started()));
      const ids = await Promise.all(
        runs.map(async (r, i) => theIds(await waitFor(() => (sandboxProcesses(r.marker).length >= 4 ? sandboxProcesses(r.marker) : undefined), `run ${i}`), `run ${i}`)),
      );
      assert.notEqual(ids[0]!.uid, ids[1]!.uid, 'two workers share a uid');
      assert.notEqual(ids[0]!.gid, ids[1]!.gid, 'two workers share a gid');
    } finally {
      for (const r of runs) r.cancel();
    }
    for (const r of runs) await assertContained(h, await r.done, { status: 'cancelled', limitMs: LIMITS.timeoutMs });
  });

  test('the compiler runs as the worker too (a compile that hangs on #include "/dev/random")', async () => {
    const serverPid = h.server.proc.pid!;
    const run = startRun(h, { language: 'c', code: '#include "/dev/random"\nint main(void) { return 0; }\n', limits: { ...LIMITS, timeoutMs: 4000 } });
    // The compile has no marker of ours on its command line: it is the sandbox below the server running cc1.
    const compiler = await waitFor(() => {
      const boxed = sandboxedBelow(serverPid);
      return boxed.some((p) => /cc1/.test(p.cmd)) ? boxed : undefined;
    }, 'the compiler to be running', 4000);
    theIds(compiler, 'the compile');
    await assertContained(h, await run.done, { status: ['timeout', 'compile_error'], limitMs: 4000 });
  });

  test("the compile's host directory stays the server's, even where the server's TMPDIR is a tmpfs", async () => {
    // pid 1 gives /work to the sandbox user only when told it is the run's own tmpfs, not by looking at it: a bound
    // host dir on a tmpfs (/dev/shm, a distro's tmpfs /tmp) looks the same.
    const tmp = mkdtempSync('/dev/shm/hostile-tmpdir-');
    const shm = await hostileServer({ poolSize: 1 }, { TMPDIR: tmp });
    try {
      const run = startRun(shm, { language: 'c', code: '#include "/dev/random"\nint main(void) { return 0; }\n', limits: { ...LIMITS, timeoutMs: 3000 } });
      const dir = await waitFor(() => {
        for (const root of readdirSync(tmp).filter((n) => n.startsWith('sbx-'))) {
          for (const d of readdirSync(path.join(tmp, root)).filter((n) => n.startsWith('run-'))) {
            const full = path.join(tmp, root, d);
            if (readdirSync(full).includes('main.c') && sandboxedBelow(shm.server.proc.pid!).some((p) => /cc1/.test(p.cmd))) return full;
          }
        }
        return undefined;
      }, 'the compile to run', 3000);
      const st = statSync(dir);
      assert.equal(st.uid, serverUid, `the compile dir ${dir} was given to uid ${st.uid}`);
      assert.equal(st.mode & 0o777, 0o777);
      await assertContained(shm, await run.done, { status: ['timeout', 'compile_error'], limitMs: 3000 });
    } finally {
      await shm.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
