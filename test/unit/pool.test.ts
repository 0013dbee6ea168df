import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QueueFullError, ResourcePool } from '../../server/pool';
import type { Lease } from '../../server/pool';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

/** A manual clock: tests move time explicitly instead of sleeping. */
function clock(start = 1_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Lets already-settled promises run their handlers (a macrotask turn, not a timed wait). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks a pending acquire so tests can tell whether (and with what) it has settled. Accessors rather than
 *  fields, so TypeScript does not narrow them away between checks. */
function track(p: Promise<Lease>) {
  let lease: Lease | undefined;
  let error: unknown;
  p.then(
    (l) => (lease = l),
    (e: unknown) => (error = e),
  );
  return { lease: () => lease, error: () => error };
}

void describe('ResourcePool', () => {
  void it('rejects sizes below 1 and negative queue limits', () => {
    assert.throws(() => new ResourcePool({ size: 0, queueLimit: 1 }), RangeError);
    assert.throws(() => new ResourcePool({ size: 1.5, queueLimit: 1 }), RangeError);
    assert.throws(() => new ResourcePool({ size: 1, queueLimit: -1 }), RangeError);
    const pool = new ResourcePool({ size: 1, queueLimit: 0 });
    assert.throws(() => pool.resize(0), RangeError);
    assert.throws(() => pool.resize(2, -1), RangeError);
    assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 0 });
  });

  void it('names workers w1..wN and never hands out more than size leases at once', async () => {
    const pool = new ResourcePool({ size: 3, queueLimit: 100 });
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w2', 'w3'],
    );
    let inFlight = 0;
    let maxInFlight = 0;
    const job = async (i: number) => {
      const lease = await pool.acquire();
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      assert.ok(pool.status().busy <= 3);
      // Yield a few turns so other jobs get a chance to overlap with this one.
      for (let k = 0; k < (i % 4) + 1; k++) await flush();
      inFlight--;
      lease.release(false);
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => job(i)));
    assert.equal(maxInFlight, 3);
    assert.equal(pool.peakConcurrency, 3);
    assert.deepEqual(pool.status(), { size: 3, busy: 0, idle: 3, queued: 0, queueLimit: 100 });
    assert.equal(
      pool.workers().reduce((n, w) => n + w.runs, 0),
      20,
    );
  });

  void it('marks a worker busy synchronously when acquire returns', () => {
    const pool = new ResourcePool({ size: 2, queueLimit: 0 });
    void pool.acquire();
    assert.equal(pool.status().busy, 1);
    void pool.acquire();
    assert.deepEqual(pool.status(), { size: 2, busy: 2, idle: 0, queued: 0, queueLimit: 0 });
  });

  void it('serves waiters in FIFO order, each with the worker just released', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 10 });
    const first = await pool.acquire();
    assert.equal(first.workerId, 'w1');
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      pool.acquire().then((lease) => {
        order.push(n);
        return lease;
      }),
    );
    assert.equal(pool.status().queued, 3);

    first.release(false);
    const l1 = await waiters[0];
    assert.equal(l1.workerId, 'w1');
    await flush();
    assert.deepEqual(order, [1], 'only one waiter served per release');
    assert.equal(pool.status().queued, 2);

    l1.release(false);
    const l2 = await waiters[1];
    l2.release(false);
    const l3 = await waiters[2];
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(l3.workerId, 'w1');
    l3.release(false);
    assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 10 });
  });

  void it('rejects at once with QueueFullError when queueLimit requests already wait', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 2 });
    const held = await pool.acquire();
    const a = track(pool.acquire());
    const b = track(pool.acquire());
    await assert.rejects(pool.acquire(), (err: unknown) => {
      assert.ok(err instanceof QueueFullError);
      assert.equal(err.message, 'queue full: 2 requests are already waiting for a worker');
      assert.equal(err.queued, 2);
      return true;
    });
    assert.equal(pool.status().queued, 2, 'the rejected request did not join the queue');
    held.release(false);
    await flush();
    assert.ok(a.lease() && !b.lease() && !a.error() && !b.error());
  });

  void it('with queueLimit 0, rejects whenever no worker is idle', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 0 });
    const held = await pool.acquire();
    await assert.rejects(pool.acquire(), QueueFullError);
    held.release(false);
    const again = await pool.acquire();
    assert.equal(again.workerId, 'w1');
  });

  void it('an abort while queued leaves the queue and rejects with the reason; later waiters keep their order', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 3 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const order: string[] = [];
    const a = pool.acquire().then((l) => (order.push('a'), l));
    const b = pool.acquire(controller.signal);
    const c = pool.acquire().then((l) => (order.push('c'), l));
    assert.equal(pool.status().queued, 3);

    const reason = new Error('client went away');
    controller.abort(reason);
    await assert.rejects(b, (err) => err === reason);
    assert.equal(pool.status().queued, 2);
    assert.equal(pool.status().busy, 1, 'an abort never takes a worker');

    // The freed queue slot can be used again.
    const d = pool.acquire().then((l) => (order.push('d'), l));
    assert.equal(pool.status().queued, 3);

    held.release(false);
    (await a).release(false);
    (await c).release(false);
    (await d).release(false);
    assert.deepEqual(order, ['a', 'c', 'd']);
    assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 3 });
  });

  void it('rejects with the reason, taking nothing, when the signal is already aborted', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 1 });
    const reason = new Error('too late');
    await assert.rejects(pool.acquire(AbortSignal.abort(reason)), (err) => err === reason);
    assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 1 });
  });

  void it('an abort after the lease was granted changes nothing', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 1 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire(controller.signal);
    held.release(false);
    const lease = await waiting;
    controller.abort();
    await flush();
    assert.equal(pool.status().busy, 1);
    assert.equal(lease.workerId, 'w1');
  });

  void it('release is idempotent, and a stale lease cannot free a worker handed to someone else', async () => {
    const c = clock();
    const pool = new ResourcePool({ size: 1, queueLimit: 1, now: c.now });
    const first = await pool.acquire();
    const next = track(pool.acquire());
    first.release(true);
    await flush();
    const nextLease = next.lease();
    assert.ok(nextLease);
    first.release(false); // stale: the worker now belongs to `next`
    first.release(true);
    assert.equal(pool.status().busy, 1);
    const [w] = pool.workers();
    assert.equal(w.busy, true);
    assert.equal(w.runs, 1);
    assert.equal(w.failures, 1);
    nextLease.release(false);
    nextLease.release(false);
    assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 1 });
    assert.equal(pool.workers()[0].runs, 2);
  });

  void it('keeps per-worker runs, failures, busyMs and utilisation with an injected clock', async () => {
    const c = clock(10_000);
    const pool = new ResourcePool({ size: 2, queueLimit: 0, now: c.now });

    const a = await pool.acquire(); // w1 busy from t=0
    c.advance(100);
    a.release(false); // w1: 100 ms busy, 1 run
    c.advance(50);
    const b = await pool.acquire(); // w1 again (first idle), busy from t=150
    const d = await pool.acquire(); // w2 busy from t=150
    c.advance(30);
    b.release(true); // w1: 130 ms, 2 runs, 1 failure
    c.advance(20); // t=200; w2 still busy for 50 ms

    assert.equal(a.workerId, 'w1');
    assert.equal(b.workerId, 'w1');
    assert.equal(d.workerId, 'w2');
    assert.deepEqual(pool.workers(), [
      { id: 'w1', busy: false, runs: 2, failures: 1, busyMs: 130, utilisation: 130 / 200 },
      { id: 'w2', busy: true, runs: 0, failures: 0, busyMs: 50, utilisation: 50 / 200 },
    ]);

    c.advance(200); // t=400: the current busy stretch keeps counting
    assert.deepEqual(
      pool.workers().map((w) => [w.busyMs, w.utilisation]),
      [
        [130, 130 / 400],
        [250, 250 / 400],
      ],
    );
    d.release(true);
    assert.deepEqual(
      pool.workers().map((w) => [w.runs, w.failures, w.busyMs]),
      [
        [2, 1, 130],
        [1, 1, 250],
      ],
    );
  });

  void it('reports utilisation 0 for a worker created this instant and never above 1', () => {
    const c = clock();
    const pool = new ResourcePool({ size: 1, queueLimit: 0, now: c.now });
    void pool.acquire();
    assert.equal(pool.workers()[0].utilisation, 0);
    c.advance(10);
    assert.equal(pool.workers()[0].utilisation, 1);
    assert.equal(pool.workers()[0].busyMs, 10);
  });

  void it('keeps utilisation within 0..1 when the clock steps backwards', () => {
    const c = clock(10_000);
    const pool = new ResourcePool({ size: 1, queueLimit: 0, now: c.now });
    c.advance(-1_000); // e.g. a wall-clock correction after the worker was created
    void pool.acquire();
    c.advance(1_050); // busy for 1050 ms, but only 50 ms after the worker's recorded creation
    const [w] = pool.workers();
    assert.equal(w.busyMs, 1_050);
    assert.equal(w.utilisation, 1);
  });

  void it('resize up creates new ids and serves the queue at once', async () => {
    const c = clock();
    const pool = new ResourcePool({ size: 1, queueLimit: 5, now: c.now });
    await pool.acquire();
    const waiting = [track(pool.acquire()), track(pool.acquire()), track(pool.acquire())];
    c.advance(100);
    pool.resize(3);
    await flush();
    assert.deepEqual(
      waiting.map((w) => w.lease()?.workerId),
      ['w2', 'w3', undefined],
    );
    assert.deepEqual(pool.status(), { size: 3, busy: 3, idle: 0, queued: 1, queueLimit: 5 });
    assert.equal(pool.peakConcurrency, 3);
    // New workers' utilisation counts from their own creation, not the pool's.
    c.advance(100);
    assert.deepEqual(
      pool.workers().map((w) => [w.id, w.utilisation]),
      [
        ['w1', 1],
        ['w2', 1],
        ['w3', 1],
      ],
    );
  });

  void it('resize down retires idle workers now (newest first) and busy ones when released', async () => {
    const pool = new ResourcePool({ size: 4, queueLimit: 5 });
    const l1 = await pool.acquire(); // w1
    const l2 = await pool.acquire(); // w2
    const l3 = await pool.acquire(); // w3; w4 idle

    pool.resize(2);
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w2', 'w3'],
    );
    assert.deepEqual(pool.status(), { size: 2, busy: 3, idle: 0, queued: 0, queueLimit: 5 });

    const waiter = track(pool.acquire());
    l2.release(false); // over size: w2 retires instead of serving the waiter
    await flush();
    assert.equal(waiter.lease(), undefined);
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w3'],
    );
    assert.deepEqual(pool.status(), { size: 2, busy: 2, idle: 0, queued: 1, queueLimit: 5 });

    l3.release(false); // at size now: w3 serves the waiter
    await flush();
    assert.equal(waiter.lease()?.workerId, 'w3');
    waiter.lease()?.release(false);
    l1.release(false);
    assert.deepEqual(pool.status(), { size: 2, busy: 0, idle: 2, queued: 0, queueLimit: 5 });

    // Growing again continues the numbering.
    pool.resize(3, 0);
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w3', 'w5'],
    );
    assert.equal(pool.status().queueLimit, 0);
  });

  void it('resize down keeps the lowest ids when several workers are idle', async () => {
    const pool = new ResourcePool({ size: 5, queueLimit: 0 });
    await pool.acquire(); // w1 busy; w2..w5 idle
    pool.resize(3);
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w2', 'w3'],
    );
    assert.deepEqual(pool.status(), { size: 3, busy: 1, idle: 2, queued: 0, queueLimit: 0 });
  });

  void it('growing while shrunk-but-busy workers remain reuses them instead of adding new ones', async () => {
    const pool = new ResourcePool({ size: 3, queueLimit: 5 });
    const leases = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    pool.resize(1);
    pool.resize(2);
    assert.deepEqual(
      pool.workers().map((w) => w.id),
      ['w1', 'w2', 'w3'],
    );
    leases[0].release(false); // 3 workers > size 2: retires
    leases[1].release(false); // 2 workers = size: stays idle
    assert.deepEqual(
      pool.workers().map((w) => [w.id, w.busy]),
      [
        ['w2', false],
        ['w3', true],
      ],
    );
  });

  void it('a smaller queueLimit applies to new requests and keeps those already waiting', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 3 });
    const held = await pool.acquire();
    const waiting = [track(pool.acquire()), track(pool.acquire())];
    pool.resize(1, 1);
    await assert.rejects(pool.acquire(), QueueFullError);
    held.release(false);
    await flush();
    assert.equal(waiting[0].lease()?.workerId, 'w1');
    assert.equal(waiting[1].error(), undefined);
  });

  void it('peakConcurrency remembers the most workers busy at once', async () => {
    const pool = new ResourcePool({ size: 4, queueLimit: 0 });
    assert.equal(pool.peakConcurrency, 0);
    const a = await pool.acquire();
    const b = await pool.acquire();
    a.release(false);
    b.release(false);
    const c = await pool.acquire();
    assert.equal(pool.peakConcurrency, 2);
    c.release(false);
    await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    assert.equal(pool.peakConcurrency, 3);
  });

  void it('calls onChange synchronously after acquire, enqueue, dequeue, abort, release and resize', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 5 });
    const seen: string[] = [];
    pool.onChange = () => {
      const s = pool.status();
      seen.push(`busy=${s.busy} queued=${s.queued} size=${s.size}`);
    };
    const held = await pool.acquire();
    assert.deepEqual(seen, ['busy=1 queued=0 size=1']);
    const controller = new AbortController();
    const aborted = pool.acquire(controller.signal);
    const waiting = pool.acquire();
    assert.deepEqual(seen.slice(1), ['busy=1 queued=1 size=1', 'busy=1 queued=2 size=1']);
    controller.abort();
    assert.equal(seen[3], 'busy=1 queued=1 size=1');
    await assert.rejects(aborted);
    held.release(false); // release + dequeue of `waiting`: one consistent state change
    assert.equal(seen[4], 'busy=1 queued=0 size=1');
    (await waiting).release(false);
    assert.equal(seen[5], 'busy=0 queued=0 size=1');
    pool.resize(2);
    assert.equal(seen[6], 'busy=0 queued=0 size=2');
    assert.equal(seen.length, 7);
  });

  void it('a throwing onChange listener neither breaks the pool nor loses the lease', async () => {
    const pool = new ResourcePool({ size: 1, queueLimit: 0 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      pool.onChange = () => {
        throw new Error('listener bug');
      };
      const lease = await pool.acquire();
      lease.release(false);
      assert.deepEqual(pool.status(), { size: 1, busy: 0, idle: 1, queued: 0, queueLimit: 0 });
      assert.equal(pool.workers()[0].runs, 1);
      await flush(); // warnings are emitted on the next tick
      assert.equal(warnings.length, 2);
      assert.match(warnings[0].message, /listener bug/);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
