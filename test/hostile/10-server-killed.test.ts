/**
 * Hostile case 10: the server is killed (SIGKILL) while runs are active. Nothing of the runs survives it (the
 * zygote dies with the server, its launchers with the zygote, bwrap with its launcher: `--die-with-parent`, and the
 * PID namespace with its init), and the next server sweeps what the dead one left: its work root
 * (`$TMPDIR/sbx-*`, whose server.pid names it) and its cgroups (`<own group>/sandbox-runner/<deadPid>` in every
 * hierarchy). The dead server cannot answer a next request, so "contained" is asserted piece by piece here.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readAudit } from '../../server/audit';
import { ExecuteRequest, LanguagesRequest, type ExecuteParams } from '../../server/protocol';
import { processesOfRun, readText, zygotesOf } from '../helpers/processes';
import { outputContaining, processesWith, waitFor, workRootOf } from '../helpers/server';
import { assertContained, hostileRun, hostileServer, marker, type HostileServer } from './harness';

/** The dead server's group in every hierarchy the runs use, from this process's own cgroups (the server's parent). */
function serverCgroupDirs(serverPid: number): string[] {
  const dirs: string[] = [];
  for (const line of (readText('/proc/self/cgroup') ?? '').trim().split('\n')) {
    const [, controllers, rel] = line.split(':');
    if (rel === undefined || controllers === undefined) continue;
    const name = controllers === '' ? '' : controllers.split(',').find((c) => ['memory', 'pids', 'cpuacct', 'freezer'].includes(c));
    if (name === undefined) continue;
    const base = name === '' ? '/sys/fs/cgroup' : `/sys/fs/cgroup/${name}`;
    for (const candidate of [path.join(base, rel, 'sandbox-runner', String(serverPid)), path.join(base, 'sandbox-runner', String(serverPid))]) {
      if (!dirs.includes(candidate)) dirs.push(candidate);
    }
  }
  return dirs;
}

function alive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  return stat !== undefined && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

void describe('hostile 10: server killed mid-run', { timeout: 90_000 }, () => {
  let dead: HostileServer | undefined;
  let next: HostileServer | undefined;
  after(async () => {
    await dead?.close();
    await next?.close();
  });

  void test('SIGKILL the server during runs: every run process dies; the next server sweeps work root and cgroups', async () => {
    dead = await hostileServer();
    const serverPid = dead.server.proc.pid!;
    const workRoot = workRootOf(serverPid);
    assert.ok(workRoot && existsSync(workRoot), 'the server has no work root');

    const runs: { params: ExecuteParams; marker: string; runId: string }[] = [
      { language: 'shell', code: 'setsid bash -c \'sleep 1000; :\' "$1" &\n( sleep 1000 & )\necho started\nsleep 1000\n' },
      { language: 'python', code: 'import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nprint("started", flush=True)\ntime.sleep(1000)\n' },
    ].map((p) => {
      const m = marker();
      return { params: { ...p, limits: { timeoutMs: 60_000 }, cache: false, args: [m] }, marker: m, runId: `killed-${randomUUID()}` };
    });
    // Never answered: the server dies first (the connection's requests stay pending; nothing awaits them).
    for (const r of runs) void dead.server.conn.sendRequest(ExecuteRequest.type, { ...r.params, runId: r.runId }).catch(() => undefined);
    for (const r of runs) await outputContaining(dead.server, r.runId, 'started');
    const zygotes = zygotesOf(serverPid);
    assert.ok(zygotes.length > 0, 'no zygote');
    const before = new Set<number>(zygotes);
    for (const r of runs) {
      const pids = processesOfRun(serverPid, zygotes, r.marker);
      assert.ok(pids.length >= 3, `run ${r.params.language} has only ${pids.length} processes: ${pids.join(' ')}`);
      for (const p of pids) before.add(p);
    }
    // An ordinary user's server has no cgroup to leave behind unless one is delegated to it.
    const { sandbox } = await dead.server.conn.sendRequest(LanguagesRequest.type);
    const groups = serverCgroupDirs(serverPid).filter((d) => existsSync(d));
    assert.equal(groups.length > 0, sandbox.cgroup !== null, `cgroups ${sandbox.cgroup}, groups made: ${groups.join(', ')}`);

    process.kill(serverPid, 'SIGKILL');
    await dead.server.exited;
    await waitFor(() => [...before].every((p) => !alive(p)), 'every process of the runs (and the zygote) to die', 5000).catch(() => {
      const left = [...before].filter(alive).map((p) => `${p}: ${readText(`/proc/${p}/cmdline`)?.replaceAll('\0', ' ')}`);
      assert.deepEqual(left, [], 'processes outlived the killed server');
    });
    for (const r of runs) assert.deepEqual(await processesWith(r.marker), [], `a process of the ${r.params.language} run is left`);
    // Left behind for the next server: proves the sweep below has something to do.
    assert.ok(existsSync(workRoot), 'the work root was already gone');
    if (groups.length > 0) assert.ok(groups.some((d) => existsSync(d)), 'the cgroups were already gone');

    next = await hostileServer();
    await waitFor(() => !existsSync(workRoot), `the next server to sweep ${workRoot}`, 5000);
    await waitFor(() => groups.every((d) => !existsSync(d)), `the next server to sweep ${groups.join(', ')}`, 5000);
    // The next server works. (The runs that died with the server never ended, so they were never recorded.)
    const run = await hostileRun(next, { language: 'python', code: 'print("after")', limits: { timeoutMs: 5000 } });
    await assertContained(next, run, { status: 'ok', limitMs: 5000 });
    assert.equal(run.result.stdout, 'after\n');
    const recorded = existsSync(dead.auditPath) ? readAudit(dead.auditPath).records : [];
    assert.equal(recorded.filter((r) => runs.some((x) => x.runId === r.runId)).length, 0);
  });
});
