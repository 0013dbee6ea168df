/**
 * Hostile case 22, protocol abuse, the hostile table's view (the full catalogue of malformed input is in
 * test/integration/protocol-abuse.test.ts; both speak raw bytes through test/helpers/rawClient.ts): malformed
 * frames, bodies that are not JSON, wrong param types and unknown methods each get an error response and the
 * server goes on; and 1000 `sandbox/execute` requests at once, against the real sandbox (bubblewrap), a small queue
 * and a rate limit: every request gets a result (ok) or a clear `rejected` (with retryAfterMs when the rate limit
 * said no), nothing is lost or answered twice, every answered run is in the audit log, and no process or cgroup of
 * any run is left.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readAudit } from '../../server/audit';
import { cgroupProcessesLeft } from './harness';
import { runProcessesOf } from '../helpers/processes';
import { waitFor } from '../helpers/server';
import { assertAlive, flood, frame, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RawClient } from '../helpers/rawClient';
import type { ExecutionResult, LanguagesResult, Metrics, ServerConfig } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;

const dirs: string[] = [];
const clients: RawClient[] = [];

/** A server spoken to in raw bytes, with an audit log of its own; the isolation is the default (auto), which must
 *  come out as bubblewrap here. */
async function rawServer(config: ServerConfig): Promise<{ c: RawClient; auditPath: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hostile-22-'));
  dirs.push(dir);
  const auditPath = path.join(dir, 'audit.jsonl');
  const c = new RawClient();
  clients.push(c);
  await c.initialize({ ...config, audit: { path: auditPath } });
  const langs = await c.call<LanguagesResult>('sandbox/languages');
  assert.equal(langs.isolation, 'bwrap', `hostile tests need bubblewrap: ${langs.sandbox.reason}`);
  return { c, auditPath };
}

after(async () => {
  for (const c of clients) await c.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Nothing of any run left, and the server serves a real run. */
async function assertServerClean(c: RawClient): Promise<void> {
  const pid = c.proc.pid!;
  await assertAlive(c);
  assert.deepEqual(runProcessesOf(pid), [], 'processes of runs left behind');
  assert.deepEqual(cgroupProcessesLeft(pid), [], 'processes left in the run cgroups');
  let next = await c.call<ExecutionResult>('sandbox/execute', { language: 'python', code: 'print("alive")', cache: false });
  // Rate limited: wait as long as the server says, as a client would, and ask again.
  for (let tries = 0; next.status === 'rejected' && next.retryAfterMs !== undefined && tries < 10; tries++) {
    await new Promise((r) => setTimeout(r, next.retryAfterMs));
    next = await c.call<ExecutionResult>('sandbox/execute', { language: 'python', code: 'print("alive")', cache: false });
  }
  assert.equal(next.status, 'ok', `${next.status} ${next.message ?? ''}`);
  assert.equal(next.stdout, 'alive\n');
}

void describe('malformed JSON-RPC: an error response each, the server goes on', { timeout: SUITE_TIMEOUT_MS }, () => {
  let c: RawClient;
  before(async () => {
    ({ c } = await rawServer({ poolSize: 2 }));
  });

  const bad: { name: string; bytes: () => Buffer | string; code: number; id: number | null; says: RegExp }[] = [
    { name: 'a header without Content-Length', bytes: () => 'Content-Type: text/plain\r\n\r\n', code: PARSE_ERROR, id: null, says: /Content-Length/ },
    { name: 'a Content-Length that lies (far too big)', bytes: () => 'Content-Length: 99999999999\r\n\r\n', code: PARSE_ERROR, id: null, says: /over the limit/ },
    { name: 'a body that is not JSON', bytes: () => frame('{"jsonrpc":"2.0","id":7,"method":'), code: PARSE_ERROR, id: null, says: /not valid JSON/ },
    { name: 'JSON that is not a request', bytes: () => frame('"sandbox/execute"'), code: INVALID_REQUEST, id: null, says: /string|request/i },
    { name: 'a request without a method', bytes: () => frame({ jsonrpc: '2.0', id: 2201 }), code: INVALID_REQUEST, id: 2201, says: /method/ },
    {
      name: 'sandbox/execute with a number for code',
      bytes: () => frame({ jsonrpc: '2.0', id: 2202, method: 'sandbox/execute', params: { language: 'python', code: 42 } }),
      code: INVALID_PARAMS,
      id: 2202,
      says: /code/,
    },
    {
      name: 'sandbox/execute with limits of the wrong type',
      bytes: () => frame({ jsonrpc: '2.0', id: 2203, method: 'sandbox/execute', params: { language: 'python', code: 'print(1)', limits: { memoryMb: '1e9' } } }),
      code: INVALID_PARAMS,
      id: 2203,
      says: /limits\.memoryMb/,
    },
    {
      name: 'sandbox/execute with an array for params',
      bytes: () => frame({ jsonrpc: '2.0', id: 2204, method: 'sandbox/execute', params: ['python', 'print(1)'] }),
      code: INVALID_PARAMS,
      id: 2204,
      says: /object|params/,
    },
    { name: 'an unknown method', bytes: () => frame({ jsonrpc: '2.0', id: 2205, method: 'sandbox/escape', params: {} }), code: METHOD_NOT_FOUND, id: 2205, says: /./ },
  ];
  for (const b of bad) {
    test(b.name, async () => {
      const before = c.responses.length;
      c.raw(b.bytes());
      await assertAlive(c);
      const err = await waitFor(
        () => c.responses.slice(before).find((r) => r.error && r.id === b.id && r.error.code === b.code),
        `the ${b.code} error for ${b.name}`,
        5000,
      );
      assert.match(err.error?.message ?? '', b.says);
      assert.equal(c.responses.slice(before).filter((r) => r.error).length, 1, 'exactly one error response');
    });
  }

  test('after all of it: nothing left, a real run is served', async () => {
    await assertServerClean(c);
  });
});

void describe('1000 sandbox/execute requests at once: a result or a clear rejection each, nothing lost', { timeout: SUITE_TIMEOUT_MS }, () => {
  const N = 1000;
  const QUEUE = 20;
  const BURST = 100;
  let c: RawClient;
  let auditPath: string;
  const results: ExecutionResult[] = [];
  let elapsedMs = 0;
  let floodStarted = 0;
  const limitedAt: number[] = [];
  before(async () => {
    ({ c, auditPath } = await rawServer({ poolSize: 2, queueLimit: QUEUE, rateLimit: { perSecond: 10, burst: BURST } }));
    const started = performance.now();
    floodStarted = started;
    const responses = await flood(c, N, 1, { language: 'python', code: 'print(1)', cache: false, limits: { timeoutMs: 3000, memoryMb: 128 } });
    elapsedMs = performance.now() - started;
    for (const r of responses) {
      assert.equal(r.error, undefined, `a request was answered with a protocol error: ${JSON.stringify(r.error)}`);
      results.push(r.result as ExecutionResult);
      if (/rate limit/.test((r.result as ExecutionResult).message ?? '')) limitedAt.push(r.receivedAt ?? started);
    }
  });

  test('every request answered exactly once: ok, or rejected saying why', () => {
    assert.equal(results.length, N);
    const ids = c.responses.filter((r) => typeof r.id === 'number' && r.id >= 1 && r.id <= N).map((r) => r.id);
    assert.equal(ids.length, N, 'no request answered twice');
    assert.equal(new Set(ids).size, N, 'no request lost');
    assert.equal(new Set(results.map((r) => r.runId)).size, N, 'a run id each');
    const other = results.filter((r) => r.status !== 'ok' && r.status !== 'rejected');
    assert.deepEqual(other.map((r) => `${r.status}: ${r.message}`), [], 'nothing but ok and rejected');
    for (const r of results) {
      if (r.status === 'ok') {
        assert.equal(r.stdout, '1\n');
        assert.equal(r.isolation, 'bwrap');
      } else {
        assert.match(r.message ?? '', /rate limit|queue full/, 'a rejection says why');
        assert.equal(r.workerId, null);
      }
    }
    // The flood took time only for the runs that were let in, not for the rejected ones.
    assert.ok(elapsedMs < SUITE_TIMEOUT_MS / 2, `the flood took ${Math.round(elapsedMs)} ms`);
  });

  test('the rate limit: past the burst, rejected with retryAfterMs; the queue: past it, rejected as full', (t) => {
    const limited = results.filter((r) => r.status === 'rejected' && /rate limit/.test(r.message ?? ''));
    const full = results.filter((r) => r.status === 'rejected' && /queue full/.test(r.message ?? ''));
    const ok = results.filter((r) => r.status === 'ok');
    // Past the burst, the bucket refills at perSecond while the requests are being taken in (the last rejection
    // marks the end of that): that many more may be let in.
    const takenInMs = Math.max(0, ...limitedAt) - floodStarted;
    const refilled = Math.ceil((takenInMs / 1000) * 10) + 1;
    assert.ok(limited.length >= N - BURST - refilled, `rate limited: ${limited.length}, ${refilled} refilled in ${Math.round(takenInMs)} ms`);
    assert.ok(refilled <= 20, `taking in 1000 requests took ${Math.round(takenInMs)} ms`);
    for (const r of limited) assert.ok((r.retryAfterMs ?? 0) > 0, `retryAfterMs ${r.retryAfterMs}`);
    for (const r of full) assert.equal(r.retryAfterMs, undefined);
    assert.ok(full.length > 0, `a queue of ${QUEUE} turns some of the burst away (ok ${ok.length}, full ${full.length})`);
    assert.ok(ok.length >= 2 + QUEUE / 2, `the workers and most of the queue ran (ok ${ok.length})`);
    assert.equal(ok.length + limited.length + full.length, N);
    t.diagnostic(`ok ${ok.length}, queue full ${full.length}, rate limited ${limited.length}`);
  });

  test('every answered run is in the audit log, with its verdict', async () => {
    const byId = new Map(results.map((r) => [r.runId, r.status] as const));
    // The audit append is one write per record; wait for the last of them.
    const records = await waitFor(() => {
      const got = readAudit(auditPath).records.filter((r) => byId.has(r.runId));
      return got.length >= N ? got : undefined;
    }, 'every run in the audit log', 5000).catch(() => readAudit(auditPath).records.filter((r) => byId.has(r.runId)));
    assert.equal(records.length, N, 'one audit record per answered request');
    assert.equal(new Set(records.map((r) => r.runId)).size, N);
    for (const r of records) assert.equal(r.status, byId.get(r.runId));
  });

  test('afterwards: metrics settled, nothing left, the server serves a real run', async () => {
    const m = await c.call<Metrics>('sandbox/metrics');
    assert.equal(m.queueLength, 0);
    assert.equal(m.pool.busy, 0);
    assert.equal(m.runsByStatus.ok, results.filter((r) => r.status === 'ok').length);
    await assertServerClean(c);
  });
});
