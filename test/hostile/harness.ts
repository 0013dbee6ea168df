/**
 * What "contained" means for a hostile run (../shared/hostile-cases.md), asserted whole by `assertContained`:
 * the verdict is one of the expected ones; it came within the limit plus a grace; no process of the run exists
 * afterwards anywhere on the machine; the run's cgroups are gone; the host files the case aimed at are unchanged;
 * the server still answers a run; and the run is in the audit log.
 *
 * Every hostile server gets its own audit log. Runs are found afterwards three ways, so an escape through any one
 * door is still seen: descendants of the server (other than its zygote), processes whose command line carries the
 * run's marker (passed as an argument, which forks inherit), and processes in a PID namespace whose init carries it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CancellationTokenSource, type CancellationToken } from 'vscode-jsonrpc';
import { readAudit } from '../../server/audit';
import { ExecuteRequest, LanguagesRequest, type ExecuteParams, type ExecutionResult, type RunStatus, type ServerConfig } from '../../server/protocol';
import { processesOfRun, readText, zygotesOf } from '../helpers/processes';
import { outputContaining, startServer, startServerWithEnv, stopServer, type TestServer } from '../helpers/server';

/** Slack on top of a wall-clock limit: the kill, the sweep and the report. */
export const GRACE_MS = 3000;

export interface HostileServer {
  server: TestServer;
  auditPath: string;
  dir: string;
  close: () => Promise<void>;
}

/** A server with its own audit log and a scratch dir (for canaries); default limits unless `config` says. `env`:
 *  extra variables in the server process's own environment (to prove they never reach a run). */
export async function hostileServer(config: ServerConfig = {}, env?: Record<string, string>): Promise<HostileServer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
  const auditPath = path.join(dir, 'audit.jsonl');
  const serverConfig: ServerConfig = { poolSize: 2, ...config, audit: { path: auditPath, ...config.audit } };
  const server = await (env ? startServerWithEnv(env, serverConfig) : startServer(serverConfig));
  const langs = await server.conn.sendRequest(LanguagesRequest.type);
  assert.equal(langs.isolation, 'bwrap', `hostile tests need bubblewrap: ${langs.sandbox.reason}`);
  return {
    server,
    auditPath,
    dir,
    close: async () => {
      await stopServer(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A unique word for one run, passed as its last argument so its processes can be found. */
export function marker(): string {
  return `hostile-${randomUUID().slice(0, 8)}`;
}

export interface RunOutcome {
  result: ExecutionResult;
  elapsedMs: number;
  marker: string;
}

/** Runs `params` with a marker argument appended; measures the round trip. `token` cancels it
 *  ($/cancelRequest, as the Stop button does); `m` is the marker, when the caller needs it before the run ends. */
export async function hostileRun(h: HostileServer, params: ExecuteParams, token?: CancellationToken, m = marker()): Promise<RunOutcome> {
  const started = performance.now();
  const result = await h.server.conn.sendRequest(ExecuteRequest.type, { cache: false, ...params, args: [...(params.args ?? []), m] }, token);
  return { result, elapsedMs: performance.now() - started, marker: m };
}

/** A run under way: its marker and id, a promise that it printed `startedText`, a way to cancel it (as Stop does). */
export interface LiveRun {
  marker: string;
  runId: string;
  /** Resolves once the run has printed `startedText`. */
  started: () => Promise<boolean>;
  cancel: () => void;
  done: Promise<RunOutcome>;
}

export function startRun(h: HostileServer, params: ExecuteParams, startedText = 'started'): LiveRun {
  const runId = `hostile-${randomUUID()}`;
  const m = marker();
  const cts = new CancellationTokenSource();
  const done = hostileRun(h, { ...params, runId }, cts.token, m);
  return { marker: m, runId, started: () => outputContaining(h.server, runId, startedText), cancel: () => cts.cancel(), done };
}

/** The server's worker groups (`…/sandbox-runner/<serverPid>/w-*`), in every hierarchy. */
export function workerCgroups(serverPid: number): string[] {
  const groups: string[] = [];
  const own = readText(`/proc/${serverPid}/cgroup`) ?? '';
  for (const line of own.trim().split('\n')) {
    const [, controllers, rel] = line.split(':');
    if (rel === undefined) continue;
    const name = controllers === '' ? '' : controllers!.split(',').find((c) => ['memory', 'pids', 'cpuacct', 'freezer'].includes(c));
    if (name === undefined) continue;
    const base = name === '' ? '/sys/fs/cgroup' : `/sys/fs/cgroup/${name}`;
    const dir = path.join(base, rel, 'sandbox-runner', String(serverPid));
    try {
      for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) groups.push(path.join(dir, d.name));
    } catch {
      // no such hierarchy, or nothing made yet
    }
  }
  return groups;
}

/** Processes still in the server's cgroups, but its zygotes (each lives in its worker's group). */
export function cgroupProcessesLeft(serverPid: number): string[] {
  const zygotes = new Set(zygotesOf(serverPid));
  const left = new Set<string>();
  for (const dir of workerCgroups(serverPid)) {
    for (const pid of (readText(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number)) {
      if (!zygotes.has(pid)) left.add(`${pid}: ${readText(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ') ?? '?'} (in ${dir})`);
    }
  }
  return [...left];
}

/** A fingerprint of host paths: existence, size, mtime and (for files) a hash of the content. */
export function snapshot(paths: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of paths) {
    try {
      const st = statSync(p);
      const hash = st.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex') : readdirSync(p).sort().join('/');
      out.set(p, `${st.size}:${st.mtimeMs}:${st.mode}:${hash}`);
    } catch {
      out.set(p, 'absent');
    }
  }
  return out;
}

export interface Expectation {
  status: RunStatus | RunStatus[];
  /** The wall-clock limit of the run (the run must end within it plus GRACE_MS). */
  limitMs: number;
  /** Host paths that must be unchanged (snapshot them before the run). */
  unchanged?: Map<string, string>;
  /** Paths that must not exist afterwards (a write outside the box). */
  absent?: string[];
}

/** Asserts the whole of "contained" for one hostile run. */
export async function assertContained(h: HostileServer, run: RunOutcome, expect: Expectation): Promise<void> {
  const { result } = run;
  const allowed = Array.isArray(expect.status) ? expect.status : [expect.status];
  assert.ok(
    allowed.includes(result.status),
    `verdict ${result.status} (${result.message ?? ''}), expected ${allowed.join(' or ')}; stderr: ${result.stderr.slice(0, 500)}`,
  );
  assert.equal(result.isolation, 'bwrap');
  assert.ok(run.elapsedMs <= expect.limitMs + GRACE_MS, `took ${Math.round(run.elapsedMs)} ms, limit ${expect.limitMs} + ${GRACE_MS}`);

  const serverPid = h.server.proc.pid!;
  const left = processesOfRun(serverPid, zygotesOf(serverPid), run.marker);
  assert.deepEqual(left.map((p) => `${p}: ${readText(`/proc/${p}/cmdline`)?.replaceAll('\0', ' ')}`), [], 'processes of the run left behind');
  assert.deepEqual(cgroupProcessesLeft(serverPid), [], 'processes left in the run cgroups');

  if (expect.unchanged) assert.deepEqual(snapshot([...expect.unchanged.keys()]), expect.unchanged, 'host files changed');
  for (const p of expect.absent ?? []) assert.ok(!existsSync(p), `${p} was created on the host`);

  const next = await h.server.conn.sendRequest(ExecuteRequest.type, { language: 'python', code: 'print("alive")', cache: false });
  assert.equal(next.status, 'ok', `the server's next run: ${next.status} ${next.message ?? ''}`);
  assert.equal(next.stdout, 'alive\n');

  const { records } = readAudit(h.auditPath);
  const record = records.find((r) => r.runId === result.runId);
  assert.ok(record, `run ${result.runId} is not in the audit log`);
  assert.equal(record.status, result.status);
  assert.equal(record.isolation, 'bwrap');
}
