/**
 * `npm run bench`: the speed goals of the sandbox, each a ratio measured side by side in one run (these machines are
 * noisy: absolute numbers from different moments don't compare). Not a test: it prints a table and always exits 0
 * unless something broke. `BENCH_QUICK=1` shrinks every count, to check that the bench itself works.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Executor } from '../server/executor';
import { chooseIdentity, IdAllocator } from '../server/identity';
import { bwrapArgs, exportSeccomp, identityArgs, readHostLayout } from '../server/isolation';
import { ExecuteBatchRequest, ExecuteRequest, LanguagesRequest, type ExecuteParams, type ServerConfig } from '../server/protocol';
import { LAUNCHER, startServer, type TestServer } from '../test/helpers/server';

const QUICK = process.env.BENCH_QUICK === '1';
const n = (full: number, quick: number): number => (QUICK ? quick : full);
const cores = os.availableParallelism();

interface Row {
  what: string;
  measured: string;
  goal: string;
  /** null: a measurement without a goal (what a defence costs). */
  pass: boolean | null;
}
const rows: Row[] = [];

const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** The environment a sandboxed run gets (see sandboxEnv), so that raw and sandboxed runs start alike. */
const RAW_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TERM: 'dumb', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' };

/** Spawns a binary and resolves when it has exited and its output is read, like the sandbox does at its core. */
function rawSpawn(cmd: string, args: string[], cwd: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env: { ...RAW_ENV, HOME: cwd, TMPDIR: cwd }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.resume();
    p.stderr.resume();
    p.once('error', reject);
    p.once('close', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function sandboxed(s: TestServer, params: ExecuteParams): Promise<number> {
  const t = performance.now();
  const r = await s.conn.sendRequest(ExecuteRequest.type, params);
  if (r.status !== 'ok') throw new Error(`${params.language} run ended ${r.status}: ${r.message ?? r.stderr}`);
  return performance.now() - t;
}

async function pooled<T>(count: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

function serverRssBytes(s: TestServer): number {
  const status = readFileSync(`/proc/${s.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-'));
  // The bench fires thousands of requests: no rate limit, and an audit log of its own.
  const base: ServerConfig = { poolSize: cores, rateLimit: { perSecond: 0 }, audit: { path: path.join(tmp, 'audit.jsonl') } };
  // Both isolation modes side by side: `process` (rlimits, cgroups) and the default (bwrap where it works).
  const s = await startServer({ ...base, cache: { enabled: true } });
  const p = await startServer({ ...base, cache: { enabled: true }, isolation: 'process' });
  try {
    const langs = await s.conn.sendRequest(LanguagesRequest.type);
    const bin = (id: string): string => {
      const l = langs.languages.find((x) => x.id === id);
      if (!l?.binary) throw new Error(`${id} is not available`);
      return l.binary;
    };
    const mode = langs.isolation;
    console.log(`sandbox-runner bench · ${cores} cores · isolation ${mode} (${langs.sandbox.reason}) · cgroups ${langs.sandbox.cgroup ?? 'none'}${QUICK ? ' · QUICK' : ''}\n`);

    // 1. Sandboxed hello world vs a raw spawn of the same real binary, interleaved so drift hits both alike: in the
    //    default mode (bwrap: goal ≤ 1.2×) and in the process mode (goal ≤ 1.1×).
    const hello: [string, string, string, string[]][] = [
      ['python', 'print(1)', 'main.py', ['-B', '-s', 'main.py']],
      ['javascript', 'console.log(1)', 'main.js', ['main.js']],
    ];
    for (const [language, code, file, args] of hello) {
      writeFileSync(path.join(tmp, file), code);
      const raw: number[] = [];
      const sbx: number[] = [];
      const proc: number[] = [];
      for (let i = 0; i < n(5, 1); i++) {
        await rawSpawn(bin(language), args, tmp); // warm-up
        await sandboxed(s, { language, code, cache: false });
        await sandboxed(p, { language, code, cache: false });
      }
      for (let i = 0; i < n(60, 5); i++) {
        raw.push(await rawSpawn(bin(language), args, tmp));
        sbx.push(await sandboxed(s, { language, code, cache: false }));
        proc.push(await sandboxed(p, { language, code, cache: false }));
      }
      const ratio = median(sbx) / median(raw);
      const goal = mode === 'bwrap' ? 1.2 : 1.1;
      rows.push({
        what: `${language} hello: ${mode} / raw spawn (median)`,
        measured: `${ratio.toFixed(2)}× (${median(sbx).toFixed(1)} vs ${median(raw).toFixed(1)} ms)`,
        goal: `≤ ${goal}×`,
        pass: ratio <= goal,
      });
      const pRatio = median(proc) / median(raw);
      rows.push({
        what: `${language} hello: process / raw spawn (median)`,
        measured: `${pRatio.toFixed(2)}× (${median(proc).toFixed(1)} vs ${median(raw).toFixed(1)} ms)`,
        goal: '≤ 1.1×',
        pass: pRatio <= 1.1,
      });
    }

    // 2. Cache-hit round trip through JSON-RPC.
    await sandboxed(s, { language: 'python', code: 'print("cached")' });
    const hits: number[] = [];
    for (let i = 0; i < n(2000, 50); i++) {
      const t = performance.now();
      const r = await s.conn.sendRequest(ExecuteRequest.type, { language: 'python', code: 'print("cached")' });
      hits.push(performance.now() - t);
      if (!r.cached) throw new Error('expected a cache hit');
    }
    rows.push({
      what: 'cache-hit round trip p50 / p99',
      measured: `${median(hits).toFixed(3)} / ${quantile(hits, 0.99).toFixed(3)} ms`,
      goal: 'p50 < 1 ms',
      pass: median(hits) < 1,
    });

    // 3. Throughput with pool size = cores vs raw spawns with the same parallelism, in alternating rounds.
    const count = n(200, 10);
    const rounds = 4;
    writeFileSync(path.join(tmp, 'main.py'), 'print(1)');
    let rawMs = 0;
    let sbxMs = 0;
    let t = 0;
    for (let round = 0; round < rounds; round++) {
      t = performance.now();
      await pooled(count / rounds, cores, () => rawSpawn(bin('python'), ['-B', '-s', 'main.py'], tmp));
      rawMs += performance.now() - t;
      t = performance.now();
      await pooled(count / rounds, cores, () => sandboxed(s, { language: 'python', code: 'print(1)', cache: false }));
      sbxMs += performance.now() - t;
    }
    let procMs = 0;
    for (let round = 0; round < rounds; round++) {
      t = performance.now();
      await pooled(count / rounds, cores, () => sandboxed(p, { language: 'python', code: 'print(1)', cache: false }));
      procMs += performance.now() - t;
    }
    const rawRate = count / (rawMs / 1000);
    const sbxRate = count / (sbxMs / 1000);
    const procRate = count / (procMs / 1000);
    rows.push({
      what: `throughput, ${cores} at once: ${mode} / raw`,
      measured: `${(sbxRate / rawRate).toFixed(2)}× (${sbxRate.toFixed(0)} vs ${rawRate.toFixed(0)} runs/s)`,
      goal: '≥ 0.8×',
      pass: sbxRate / rawRate >= 0.8,
    });
    rows.push({
      what: `throughput, ${cores} at once: process / raw`,
      measured: `${(procRate / rawRate).toFixed(2)}× (${procRate.toFixed(0)} vs ${rawRate.toFixed(0)} runs/s)`,
      goal: '≥ 0.8×',
      pass: procRate / rawRate >= 0.8,
    });

    // 4. A batch of 40 independent 100 ms runs vs the same runs one by one.
    const items = Array.from({ length: n(40, 6) }, (_, i) => ({
      language: 'shell',
      code: `sleep 0.1; echo ${i}`,
      cache: false,
    }));
    t = performance.now();
    for (const item of items) await sandboxed(s, item);
    const serialMs = performance.now() - t;
    t = performance.now();
    const batch = await s.conn.sendRequest(ExecuteBatchRequest.type, { items });
    const batchMs = performance.now() - t;
    if (batch.summary.ok !== items.length) throw new Error(`batch: ${JSON.stringify(batch.summary)}`);
    rows.push({
      what: `batch of ${items.length} × 100 ms: one by one / batch`,
      measured: `${(serialMs / batchMs).toFixed(2)}× (${serialMs.toFixed(0)} vs ${batchMs.toFixed(0)} ms)`,
      goal: `≥ 1.8× on 2 cores`,
      pass: serialMs / batchMs >= 1.8,
    });
  } finally {
    await s.close();
    await p.close();
  }

  // 5. Server memory growth over many runs, cache off.
  const m = await startServer({ ...base, cache: { enabled: false } });
  try {
    const run = (): Promise<number> => sandboxed(m, { language: 'shell', code: 'true' });
    await pooled(100, cores, run);
    const after100 = serverRssBytes(m);
    const total = n(10_000, 300);
    await pooled(total / 2 - 100, cores, run);
    const afterHalf = serverRssBytes(m);
    await pooled(total / 2, cores, run);
    const afterAll = serverRssBytes(m);
    const mib = (b: number): string => (b / 1048576).toFixed(0);
    const growth = (afterAll - after100) / 1024 / 1024;
    rows.push({
      what: `server RSS after ${total} runs − after 100 (cache off)`,
      measured: `${growth.toFixed(1)} MiB (${mib(after100)} → ${mib(afterHalf)} → ${mib(afterAll)} MiB)`,
      goal: '< 20 MB',
      pass: growth * 1.048576 < 20,
    });
    // Warm-up (V8 sizing its heap to the allocation rate) is not a leak: a leak keeps growing in the second half.
    const secondHalf = (afterAll - afterHalf) / 1024 / 1024;
    rows.push({
      what: `  of which after ${total / 2} runs (leak check)`,
      measured: `${secondHalf.toFixed(1)} MiB`,
      goal: '< 5 MB',
      pass: secondHalf * 1.048576 < 5,
    });
  } finally {
    await m.close();
    rmSync(tmp, { recursive: true, force: true });
  }

  await defenceCosts();

  const w = [Math.max(...rows.map((r) => r.what.length)), Math.max(...rows.map((r) => r.measured.length)), 18];
  const line = (a: string, b: string, c: string, d: string): string =>
    `${a.padEnd(w[0]!)}  ${b.padEnd(w[1]!)}  ${c.padEnd(w[2]!)}  ${d}`;
  console.log(line('measure', 'measured', 'goal', 'met'));
  console.log(line('-'.repeat(w[0]!), '-'.repeat(w[1]!), '-'.repeat(w[2]!), '---'));
  for (const r of rows) console.log(line(r.what, r.measured, r.goal, r.pass === null ? '' : r.pass ? 'yes' : 'NO'));
}

/**
 * 6. What each defence of the sandbox costs a run: the same empty program (/usr/bin/true) through the executor and
 *    the launcher as the server runs it, in sandboxes that differ by one defence at a time, interleaved. The first
 *    maps the sandbox user as bwrap does by itself (its own user namespace per run: host root for a root server).
 *    (Each has a network namespace of its own, as runs do.)
 */
async function defenceCosts(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sbx-bench-costs-'));
  const layout = readHostLayout(dir, LAUNCHER);
  const executor = new Executor({ launcher: LAUNCHER, socketDir: dir });
  try {
    await exportSeccomp(LAUNCHER, layout);
    const identity = await chooseIdentity(8);
    if (identity.mode !== 'dedicated') {
      console.log(`(no defence costs: sandboxes here run as ${identity.reason})\n`);
      return;
    }
    const ids = new IdAllocator(identity);
    const env = { PATH: '/usr/bin:/bin' };
    const bare = { ...layout, procMasks: { files: [], dirs: [] }, procReadOnly: [] };
    const args = (l: typeof layout, userns: 'worker' | 'per-run', seccomp: boolean): string[] => {
      const a = bwrapArgs({ bwrap: '/usr/bin/bwrap', layout: l, userns, runtimeRoots: [], files: [], diskBytes: 64 << 20, env });
      return seccomp ? a : a.filter((x, i) => x !== '-s' && a[i - 1] !== '-s');
    };
    const worker = (slot: string) => ({ id: slot, args: identityArgs(identity, ids.idsFor(slot)) });
    const variants = [
      { name: "bwrap's user namespace per run (host root), no seccomp, no /proc masks", sandbox: args(bare, 'per-run', false), slot: { id: 'v0', args: [] } },
      { name: "the worker's user namespace (its own uid)", sandbox: args(bare, 'worker', false), slot: worker('v1') },
      { name: '+ seccomp', sandbox: args(bare, 'worker', true), slot: worker('v2') },
      { name: '+ /proc read-only and masked (now)', sandbox: args(layout, 'worker', true), slot: worker('v3') },
    ];
    const times = variants.map(() => [] as number[]);
    for (let i = 0; i < n(150, 8); i++) {
      for (const [k, v] of variants.entries()) {
        const t = performance.now();
        const r = await executor.run({ command: '/usr/bin/true', args: [], cwd: dir, env, stdin: null, timeoutMs: 10_000, memoryBytes: Infinity, outputBytes: 1 << 20, sandbox: v.sandbox, slot: v.slot });
        if (r.end !== 'exited' || r.exitCode !== 0) throw new Error(`${v.name}: ${r.end} ${r.error ?? ''}`);
        if (i >= n(10, 1)) times[k]!.push(performance.now() - t);
      }
    }
    const med = times.map(median);
    const delta = (k: number, from: number): string => `${med[k]! - med[from]! >= 0 ? '+' : ''}${(med[k]! - med[from]!).toFixed(2)} ms`;
    rows.push({ what: `sandbox of /usr/bin/true: ${variants[0]!.name}`, measured: `${med[0]!.toFixed(2)} ms`, goal: '', pass: null });
    for (let k = 1; k < variants.length; k++) {
      rows.push({ what: `  ${variants[k]!.name}`, measured: `${delta(k, k - 1)} (${med[k]!.toFixed(2)} ms)`, goal: '', pass: null });
    }
    rows.push({ what: '  the three in all', measured: delta(variants.length - 1, 0), goal: '', pass: null });
  } finally {
    executor.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${(e as Error).message}`);
  process.exit(1);
});
