/**
 * Protocol abuse against the real bundled server over real stdio (hostile case 22): malformed frames, bodies that
 * are not JSON or not JSON-RPC, unknown methods, wrong param types and a thousand requests at once. Each gets an
 * error response (or, for the flood, a result); the server stays alive and answers the next request; nothing is
 * lost. Raw bytes go straight to the server's stdin and its stdout is parsed here, so nothing in between can hide
 * a stall or a missing answer (test/helpers/rawClient.ts).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/server';
import {
  assertAlive,
  flood,
  frame,
  INVALID_PARAMS,
  INVALID_REQUEST,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  RawClient,
} from '../helpers/rawClient';
import type { ExecutionResult, LanguagesResult, Metrics } from '../../server/protocol';

/** A hang fails the suite instead of stalling the run. */
const SUITE_TIMEOUT_MS = 120_000;

/** Guards an await on the server's exit, so a server that never exits fails the test instead of hanging it. */
function exitWithin(c: RawClient, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms`)), ms);
  });
  return Promise.race([c.exited, limit]).finally(() => clearTimeout(timer));
}

const clients: RawClient[] = [];
function client(): RawClient {
  const c = new RawClient();
  clients.push(c);
  return c;
}

after(async () => {
  for (const c of clients) await c.close();
});

void describe('malformed input: an error response each, and the next request is answered', { timeout: SUITE_TIMEOUT_MS }, () => {
  const cases: { name: string; bytes: Buffer | string; code: number; id: number | null; message: RegExp }[] = [
    { name: 'a header block without Content-Length', bytes: 'Content-Type: application/json\r\n\r\n', code: PARSE_ERROR, id: null, message: /Content-Length/ },
    { name: 'a non-numeric Content-Length', bytes: 'Content-Length: lots\r\n\r\n', code: PARSE_ERROR, id: null, message: /not a number/ },
    { name: 'a huge Content-Length', bytes: 'Content-Length: 99999999999\r\n\r\n', code: PARSE_ERROR, id: null, message: /over the limit/ },
    { name: 'garbage before any header', bytes: 'hello\r\n\r\n', code: PARSE_ERROR, id: null, message: /Parse error/ },
    { name: 'garbage glued to the next header', bytes: 'GET / HTTP/1.1', code: PARSE_ERROR, id: null, message: /before a header/ },
    { name: 'a body that is not JSON', bytes: frame('{"jsonrpc":"2.0","id":1,'), code: PARSE_ERROR, id: null, message: /not valid JSON/ },
    { name: 'a JSON array', bytes: frame('[]'), code: INVALID_REQUEST, id: null, message: /array/ },
    { name: 'a JSON number', bytes: frame('42'), code: INVALID_REQUEST, id: null, message: /number/ },
    { name: 'an id but no method', bytes: frame({ jsonrpc: '2.0', id: 4242 }), code: INVALID_REQUEST, id: 4242, message: /method/ },
    { name: 'a method that is not a string', bytes: frame({ jsonrpc: '2.0', id: 4343, method: 7 }), code: INVALID_REQUEST, id: 4343, message: /method/ },
  ];

  let c: RawClient;
  test('start', async () => {
    c = client();
    await c.initialize({ poolSize: 1 });
  });

  for (const bad of cases) {
    test(bad.name, async () => {
      const before = c.responses.length;
      c.raw(bad.bytes);
      await assertAlive(c);
      // The error was written before the next answer, but wait on the state, not on an order.
      const err = await waitFor(
        () => c.responses.slice(before).find((r) => r.error && r.id === bad.id && r.error.code === bad.code),
        `the ${bad.code} error for ${bad.name}`,
      );
      assert.match(err.error?.message ?? '', bad.message);
      const extra = c.responses.slice(before).filter((r) => r.error);
      assert.equal(extra.length, 1, `exactly one error response: ${JSON.stringify(extra)}`);
    });
  }

  test('a header that never ends (1 MiB without a blank line): one error, then business as usual', async () => {
    const before = c.idlessErrors().length;
    c.raw(Buffer.alloc(1024 * 1024, 'x'));
    c.raw('\r\n\r\n');
    await assertAlive(c);
    await waitFor(() => c.idlessErrors().length > before, 'the parse error');
    assert.equal(c.idlessErrors().length, before + 1);
    assert.match(c.idlessErrors().at(-1)?.message ?? '', /over 8192 bytes/);
  });

  test('all the bad kinds in one write, between good requests: every good one answered, in between errors', async () => {
    const before = c.responses.length;
    const ids = [9001, 9002, 9003, 9004];
    const good = (id: number) => frame({ jsonrpc: '2.0', id, method: 'sandbox/languages' });
    c.raw(
      Buffer.concat([
        good(ids[0] as number),
        ...cases.map((k) => (typeof k.bytes === 'string' ? Buffer.from(k.bytes) : k.bytes)),
        good(ids[1] as number),
        Buffer.from('Content-Length: nope\r\n\r\n'),
        good(ids[2] as number),
        frame('not json at all'),
        good(ids[3] as number),
      ]),
    );
    for (const id of ids) {
      const r = await c.answer(id);
      assert.ok((r.result as LanguagesResult).languages.length > 0, `request ${id} answered`);
    }
    await waitFor(() => c.responses.slice(before).filter((r) => r.error).length >= cases.length + 2, 'every error');
    assert.equal(c.responses.slice(before).filter((r) => r.error).length, cases.length + 2);
  });

  test('an unknown method is -32601', async () => {
    const r = await c.request('sandbox/doesNotExist', { x: 1 });
    assert.equal(r.error?.code, METHOD_NOT_FOUND);
    assert.equal(r.result, undefined);
    await assertAlive(c);
  });

  test('wrong param types are -32602 with a readable message', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['sandbox/execute', { language: 42, code: 'print(1)' }, /language/],
      ['sandbox/execute', { language: 'python', code: ['print(1)'] }, /code/],
      ['sandbox/execute', { language: 'python', code: 'x', limits: { timeoutMs: 'soon' } }, /limits\.timeoutMs/],
      ['sandbox/execute', { language: 'python', code: 'x', cache: 'no' }, /cache/],
      ['sandbox/execute', 'print(1)', /expected object|params/],
      ['sandbox/executeBatch', { items: { language: 'python' } }, /items/],
      ['sandbox/configure', { poolSize: 'many' }, /poolSize/],
      ['sandbox/configure', { rateLimit: { perSecond: -1 } }, /rateLimit/],
    ];
    for (const [method, params, says] of cases) {
      const r = await c.request(method, params);
      assert.equal(r.error?.code, INVALID_PARAMS, `${method} ${JSON.stringify(params)}: ${JSON.stringify(r)}`);
      assert.match(r.error?.message ?? '', says, `${method} ${JSON.stringify(params)}`);
      assert.ok((r.error?.message.length ?? 0) < 500, 'a readable message, not a dump');
    }
    await assertAlive(c);
  });
});

void describe('a thousand requests at once', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('each of the 1000 is answered: ok or rejected (queue full), nothing lost, the server goes on', async () => {
    const c = client();
    // The rate limit off: the queue is what must hold here. Plain processes: this is about the protocol, and
    // it must not depend on whether bubblewrap works on the machine.
    await c.initialize({ poolSize: 2, queueLimit: 50, rateLimit: { perSecond: 0 } });
    const N = 1000;
    const responses = await flood(c, N, 1);
    let ok = 0;
    let rejected = 0;
    const other: string[] = [];
    for (const r of responses) {
      const res = r.result as ExecutionResult | undefined;
      if (res?.status === 'ok') {
        assert.equal(res.stdout, '1\n');
        ok++;
      } else if (res?.status === 'rejected') {
        assert.ok(res.message && res.message.length > 0, 'a rejection says why');
        rejected++;
      } else other.push(JSON.stringify(r).slice(0, 200));
    }
    assert.deepEqual(other, [], 'nothing but ok and rejected');
    assert.equal(ok + rejected, N);
    assert.ok(ok >= 50, `at least the queue's worth ran (ok ${ok}, rejected ${rejected})`);
    assert.ok(rejected > 0, `a queue of 50 cannot take 1000 at once (ok ${ok}, rejected ${rejected})`);
    // every id answered exactly once
    const ids = c.responses.filter((r) => typeof r.id === 'number' && r.id >= 1 && r.id <= N).map((r) => r.id);
    assert.equal(new Set(ids).size, N);
    assert.equal(ids.length, N, 'no request answered twice');
    const m = await c.call<Metrics>('sandbox/metrics');
    assert.equal(m.runsByStatus.ok, ok);
    assert.equal(m.queueLength, 0);
    await assertAlive(c);
  });

  test('with rateLimit { perSecond: 5, burst: 10 }, the overflow is rejected with retryAfterMs', async () => {
    const c = client();
    await c.initialize({ poolSize: 2, queueLimit: 1000, rateLimit: { perSecond: 5, burst: 10 } });
    const N = 40;
    const responses = await flood(c, N, 1);
    const results = responses.map((r) => r.result as ExecutionResult);
    const ok = results.filter((r) => r.status === 'ok');
    const limited = results.filter((r) => r.status === 'rejected' && r.retryAfterMs !== undefined);
    assert.equal(ok.length + limited.length, N, JSON.stringify(results.filter((r) => r.status !== 'ok').slice(0, 3)));
    assert.ok(limited.length > 0, 'some are rate limited');
    for (const r of limited) {
      assert.ok((r.retryAfterMs ?? 0) > 0, `retryAfterMs > 0: ${r.retryAfterMs}`);
      assert.match(r.message ?? '', /rate limit/);
    }
    assert.ok(ok.length >= 10, 'the burst goes through');
    await assertAlive(c);
  });
});

void describe('the guard keeps the server ending as before', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('stdin closing after garbage ends the server (code 1: no shutdown was asked for)', async () => {
    const c = client();
    await c.initialize({ poolSize: 1 });
    c.raw('Content-Length: x\r\n\r\n');
    await waitFor(() => c.idlessErrors().length === 1, 'the parse error');
    c.proc.stdin.end();
    const { code } = await exitWithin(c, 5000);
    assert.equal(code, 1);
  });

  test('stdin closing after shutdown ends the server with code 0', async () => {
    const c = client();
    await c.initialize({ poolSize: 1 });
    await c.call('shutdown');
    c.proc.stdin.end();
    const { code } = await exitWithin(c, 5000);
    assert.equal(code, 0);
  });

  test('stdin closing in the middle of a frame ends the server', async () => {
    const c = client();
    await c.initialize({ poolSize: 1 });
    c.raw('Content-Length: 100\r\n\r\n{"jsonrpc"');
    c.proc.stdin.end();
    const { code } = await exitWithin(c, 5000);
    assert.equal(code, 1);
  });
});
