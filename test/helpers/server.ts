/**
 * Starts the real bundled server (dist/server.js) over real stdio and speaks JSON-RPC to it, as the CLI and the
 * extension do. Run `npm run build` first (`npm test` does).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  MetricsChangedNotification,
  OutputNotification,
  type Metrics,
  type OutputParams,
  type ServerConfig,
} from '../../server/protocol';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const SERVER = path.join(ROOT, 'dist', 'server.js');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
export const LAUNCHER = path.join(ROOT, 'dist', 'sbx-launch');

export interface TestServer {
  proc: ChildProcessWithoutNullStreams;
  conn: MessageConnection;
  output: OutputParams[];
  metricsEvents: Metrics[];
  stderr: () => string;
  /** Output of one run, concatenated per stream. */
  outputOf: (runId: string, stream?: 'stdout' | 'stderr') => string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  close: () => Promise<void>;
}

let auditFile: string | undefined;
/** The audit log test servers write to unless a test names its own: never the user's own log. One file per test
 *  process in one shared dir, removed when the process exits. */
export function testAuditPath(): string {
  if (!auditFile) {
    const dir = path.join(os.tmpdir(), `sbx-test-audit-${process.getuid?.() ?? 0}`); // one per user: the hostile suite runs as two
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `audit-${process.pid}.jsonl`);
    auditFile = file;
    process.once('exit', () => rmSync(file, { force: true }));
  }
  return auditFile;
}

export async function startServer(config: ServerConfig = {}, initialize = true): Promise<TestServer> {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: run npm run build first`);
  config = { ...config, audit: { path: testAuditPath(), ...config.audit } };
  const proc = spawn(process.execPath, [SERVER, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const conn = createMessageConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  const output: OutputParams[] = [];
  const metricsEvents: Metrics[] = [];
  conn.onNotification(OutputNotification.type, (p) => {
    output.push(p);
  });
  conn.onNotification(MetricsChangedNotification.type, (m) => {
    metricsEvents.push(m);
  });
  conn.onNotification('window/logMessage', () => undefined);
  conn.onError(() => undefined);
  conn.listen();
  if (initialize) {
    await conn.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: config });
    await conn.sendNotification('initialized', {});
  }
  let closed = false;
  return {
    proc,
    conn,
    output,
    metricsEvents,
    stderr: () => err,
    outputOf: (runId, stream = 'stdout') =>
      output
        .filter((o) => o.runId === runId && o.stream === stream)
        .map((o) => o.chunk)
        .join(''),
    exited,
    close: async () => {
      if (closed) return;
      closed = true;
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          await Promise.race([
            conn.sendRequest('shutdown').then(() => conn.sendNotification('exit')),
            exited,
          ]);
        } catch {
          // already gone
        }
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      conn.dispose();
    },
  };
}

/** Polls `check` until it returns true (or a value), failing after `timeoutMs`. Waits on state, not a fixed time. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every pid whose command line contains `marker` (to prove a run left nothing behind). */
export async function processesWith(marker: string): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // a zombie is already dead
      if (cmd.includes(marker)) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}

/**
 * Like startServer, with extra variables in the server process's own environment (to prove they never reach a
 * run). The spawn happens synchronously inside startServer, so process.env is restored before anything else runs.
 */
export async function startServerWithEnv(
  env: Record<string, string>,
  config: ServerConfig = {},
  initialize = true,
): Promise<TestServer> {
  const saved = new Map(Object.keys(env).map((k) => [k, process.env[k]] as const));
  Object.assign(process.env, env);
  let started: Promise<TestServer>;
  try {
    started = startServer(config, initialize);
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return started;
}

/** Collects the server's `window/logMessage` texts (replaces the handler startServer installs, which drops them). */
export function collectLogMessages(server: TestServer): string[] {
  const messages: string[] = [];
  server.conn.onNotification('window/logMessage', (p: { type: number; message: string }) => {
    messages.push(p.message);
  });
  return messages;
}

/** Resolves with the first `sandbox/output` chunk of `runId` on `stream` whose text contains `text`. */
export function outputContaining(
  server: TestServer,
  runId: string,
  text: string,
  stream: 'stdout' | 'stderr' = 'stdout',
  timeoutMs = 10_000,
): Promise<boolean> {
  return waitFor(() => server.outputOf(runId, stream).includes(text), `"${text}" on ${stream} of run ${runId}`, timeoutMs);
}

/**
 * `close()` that cannot hang: if the server has not exited `graceMs` after the shutdown was asked for (a wedged
 * server, a request that never returns), it is killed. For `after` hooks.
 */
export async function stopServer(server: TestServer | undefined, graceMs = 5000): Promise<void> {
  if (!server) return;
  const timer = setTimeout(() => server.proc.kill('SIGKILL'), graceMs);
  try {
    await server.close();
  } finally {
    clearTimeout(timer);
  }
}

/** The work root (`$TMPDIR/sbx-*`) of the server with this pid: the one whose `server.pid` names it. */
export function workRootOf(serverPid: number): string | undefined {
  const tmp = os.tmpdir();
  for (const name of readdirSync(tmp)) {
    if (!name.startsWith('sbx-')) continue;
    try {
      if (readFileSync(path.join(tmp, name, 'server.pid'), 'utf8').trim() === String(serverPid)) return path.join(tmp, name);
    } catch {
      // not a work root
    }
  }
  return undefined;
}
