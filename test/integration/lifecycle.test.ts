/**
 * No process outlives the server. For every way a server can end, a run whose process tree (bash, a background
 * child, a foreground child; all marked) is running when the server ends must be gone afterwards, and so must the
 * server's temporary work root.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { outputContaining, processesWith, startServer, stopServer, waitFor, workRootOf, type TestServer } from '../helpers/server';
import { ExecuteRequest, type ExecutionResult } from '../../server/protocol';

/** A hang fails the suite instead of stalling the run. */
const SUITE_TIMEOUT_MS = 90_000;

interface LongRun {
  marker: string;
  /** The run's work dir ($HOME). */
  home: string;
  /** The server's work root, the parent of every work dir. */
  root: string;
  /** The execute request: its result, or the error it ended with when the server went away first. */
  response: Promise<ExecutionResult | Error>;
}

/**
 * Starts a run that would live for minutes: bash (with the marker as its argument), a background child and a
 * foreground child, both named after the marker. Resolves once all three are seen running.
 */
async function startLongRun(s: TestServer): Promise<LongRun> {
  const marker = `sbxmark-${randomUUID()}`;
  const runId = `long-${randomUUID()}`;
  const code = [
    'echo "$HOME"',
    'bash -c "exec -a $1-bg sleep 300" &',
    'echo started',
    'bash -c "exec -a $1-fg sleep 300"',
  ].join('\n');
  const response = s.conn
    .sendRequest(ExecuteRequest.type, { language: 'shell', code, args: [marker], runId, limits: { timeoutMs: 300_000 }, cache: false })
    .catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  await outputContaining(s, runId, 'started');
  await waitFor(async () => (await processesWith(marker)).length >= 3, 'main.sh, its background and its foreground child');
  // In a sandbox $HOME is the sandbox's own /work; the host side of the run is a `run-*` dir in the work root.
  const root = workRootOf(s.proc.pid!);
  assert.ok(root, 'the server has a work root naming it in server.pid');
  assert.match(path.basename(root), /^sbx-/);
  const runDir = readdirSync(root).find((n) => n.startsWith('run-'));
  assert.ok(runDir, `the run's work dir exists in ${root} while it runs`);
  const home = path.join(root, runDir);
  return { marker, home, root, response };
}

async function assertNothingLeft(run: LongRun, rootRemoved = true): Promise<void> {
  await waitFor(async () => (await processesWith(run.marker)).length === 0, `every process of ${run.marker} to end`, 5000);
  if (rootRemoved) assert.equal(existsSync(run.root), false, `the work root ${run.root} is removed`);
}

/** Guards an await on the server's exit, so a server that never exits fails the test instead of hanging it. */
function exitWithin(s: TestServer, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms`)), ms);
  });
  return Promise.race([s.exited, limit]).finally(() => clearTimeout(timer));
}

void describe('no process outlives the server', { timeout: SUITE_TIMEOUT_MS }, () => {
  const servers: TestServer[] = [];
  const markers: string[] = [];
  const start = async (initialize = true): Promise<TestServer> => {
    const s = await startServer({ poolSize: 2 }, initialize);
    servers.push(s);
    return s;
  };
  after(async () => {
    for (const s of servers) await stopServer(s);
    // Whatever a failing server left behind must not outlive the suite either.
    for (const m of markers) {
      for (const pid of await processesWith(m)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });

  void test('shutdown + exit', async () => {
    const s = await start();
    const run = await startLongRun(s);
    markers.push(run.marker);
    await s.conn.sendRequest('shutdown');
    // shutdown alone already ends the runs and removes the files; exit only ends the process.
    await assertNothingLeft(run);
    const r = await run.response;
    assert.ok(!(r instanceof Error), `the run is answered before the server exits: ${String(r)}`);
    assert.equal(r.status, 'cancelled');
    assert.match(r.stdout, /started/);
    assert.equal(s.proc.exitCode, null, 'the server waits for exit after shutdown');
    await s.conn.sendNotification('exit');
    const { code } = await exitWithin(s, 5000);
    assert.equal(code, 0, 'exit after shutdown is a clean exit');
    await assertNothingLeft(run);
  });

  void test(
    'requests after shutdown are refused with InvalidRequest',
    async () => {
      const s = await start();
      await s.conn.sendRequest('shutdown');
      let error: { code?: unknown } | undefined;
      let result: ExecutionResult | undefined;
      try {
        result = await s.conn.sendRequest(ExecuteRequest.type, { language: 'shell', code: 'echo after-shutdown', cache: false });
      } catch (e) {
        error = e as { code?: unknown };
      }
      await s.conn.sendNotification('exit');
      await exitWithin(s, 5000);
      assert.equal(result, undefined, `answered ${JSON.stringify(result)}`);
      assert.equal(error?.code, -32600);
    },
  );

  void test('its stdin closes', async () => {
    const s = await start();
    const run = await startLongRun(s);
    markers.push(run.marker);
    s.proc.stdin.end();
    await exitWithin(s, 5000);
    await assertNothingLeft(run);
  });

  void test('SIGTERM', async () => {
    const s = await start();
    const run = await startLongRun(s);
    markers.push(run.marker);
    assert.ok(s.proc.kill('SIGTERM'));
    await exitWithin(s, 5000);
    await assertNothingLeft(run);
  });

  void test('SIGKILL: the runs still die with it, and the next server sweeps what it left', async () => {
    const s = await start();
    const run = await startLongRun(s);
    markers.push(run.marker);
    assert.ok(s.proc.kill('SIGKILL'));
    const { signal } = await exitWithin(s, 5000);
    assert.equal(signal, 'SIGKILL');
    try {
      await assertNothingLeft(run, false);
      assert.ok(existsSync(run.root), 'a SIGKILLed server cannot remove its own files');
      // The next server to start removes the work root of a server that is gone.
      await start();
      assert.equal(existsSync(run.root), false, `${run.root} was swept by the next server`);
    } finally {
      rmSync(run.root, { recursive: true, force: true });
    }
  });

  void test('the client process named in initialize exits', async () => {
    // A stand-in for the client: a child we end when we choose (vscode-languageserver polls it every 3 s).
    const fakeClient = spawn('sleep', ['300'], { stdio: 'ignore' });
    const clientExited = new Promise<void>((resolve) => fakeClient.once('exit', () => resolve()));
    try {
      if (fakeClient.pid === undefined) throw new Error('could not start the stand-in client');
      const s = await start(false);
      await s.conn.sendRequest('initialize', {
        processId: fakeClient.pid,
        rootUri: null,
        capabilities: {},
        initializationOptions: { poolSize: 2 },
      });
      await s.conn.sendNotification('initialized', {});
      const run = await startLongRun(s);
      markers.push(run.marker);
      assert.equal(s.proc.exitCode, null, 'the server lives while its client does');
      fakeClient.kill('SIGKILL');
      await clientExited; // reaped: process.kill(pid, 0) now fails in the server
      await exitWithin(s, 10_000);
      await assertNothingLeft(run);
    } finally {
      fakeClient.kill('SIGKILL');
    }
  });
});
