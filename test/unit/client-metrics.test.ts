import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  buildMetricsHtml,
  HISTORY_LIMIT,
  makeNonce,
  metricsViewModel,
  niceMax,
  parseViewMessage,
  pushSample,
  type MetricsSample,
} from '../../client/metricsModel';
import { sampleMetrics } from '../helpers/metrics';

const metrics = sampleMetrics;

describe('pushSample', () => {
  it('adds one sample per second and keeps the newest figures last', () => {
    let h: MetricsSample[] = [];
    h = pushSample(h, metrics(), 0);
    h = pushSample(h, metrics(), 1000);
    h = pushSample(h, metrics({ durationMs: { avg: 1, p50: 5, p95: 7, max: 9 } }), 1250);
    assert.equal(h.length, 3);
    // A burst at 4/s: the newest sample is replaced until a second has passed since the one before it.
    h = pushSample(h, metrics({ durationMs: { avg: 1, p50: 6, p95: 8, max: 9 }, runsPerMinute: 9 }), 1500);
    assert.equal(h.length, 3);
    assert.deepEqual(h.at(-1), { t: 1500, p50: 6, p95: 8, runsPerMinute: 9 });
    h = pushSample(h, metrics(), 2100);
    assert.equal(h.length, 4);
  });

  it('keeps at most HISTORY_LIMIT samples, dropping the oldest', () => {
    let h: MetricsSample[] = [];
    for (let i = 0; i < HISTORY_LIMIT + 30; i++) h = pushSample(h, metrics({ runsPerMinute: i }), i * 1000);
    assert.equal(h.length, HISTORY_LIMIT);
    assert.equal(h[0]!.runsPerMinute, 30);
    assert.equal(h.at(-1)!.runsPerMinute, HISTORY_LIMIT + 29);
  });

  it('does not change the history it is given', () => {
    const h = pushSample([], metrics(), 0);
    pushSample(h, metrics(), 5000);
    assert.equal(h.length, 1);
  });
});

describe('niceMax', () => {
  it('rounds up to 1, 2 or 5 × 10^n, never below the floor', () => {
    assert.equal(niceMax(0, 10), 10);
    assert.equal(niceMax(11), 20);
    assert.equal(niceMax(90), 100);
    assert.equal(niceMax(101), 200);
    assert.equal(niceMax(260), 500);
    assert.equal(niceMax(0.3), 1);
  });
});

describe('metricsViewModel', () => {
  it('says there is no server yet before the first metrics', () => {
    const m = metricsViewModel(undefined, []);
    assert.equal(m.connected, false);
    assert.deepEqual(m.recentRuns, []);
  });

  it('formats pool, workers, cache, latency, throughput, memory and server figures', () => {
    const m = metricsViewModel(metrics(), []);
    assert.equal(m.connected, true);
    assert.equal(m.runsTotal, 4);
    assert.equal(m.uptime, '1 min 1 s');
    assert.deepEqual(m.pool, { size: 2, busy: 1, queued: 3, text: '1/2 busy', queueText: '3 queued (limit 256)' });
    assert.deepEqual(m.workers[0], { id: 'w1', busy: true, utilisation: 0.25, utilisationText: '25%', runsText: '4 runs, 1 failed' });
    assert.equal(m.workers[1]!.runsText, '0 runs');
    assert.deepEqual(m.cache, {
      enabled: true, hitRate: '25%', entries: '3 / 500', bytes: '1.0 MiB / 64.0 MiB', evictions: '2', hitsMisses: '1 hits, 3 misses',
    });
    assert.deepEqual(m.latency, { p50: '30 ms', p95: '90 ms', avg: '40 ms', max: '100 ms' });
    assert.equal(m.throughput, '4 / min');
    assert.equal(m.peakMemory, '20.0 MiB');
    assert.deepEqual(m.server, { pid: 42, rss: '50.0 MiB', heap: '10.0 MiB' });
  });

  it('lists only the verdicts that occurred, in protocol order', () => {
    assert.deepEqual(metricsViewModel(metrics(), []).verdicts, [{ status: 'ok', count: 3 }, { status: 'timeout', count: 1 }]);
  });

  it('says the cache is off', () => {
    const m = metricsViewModel(metrics({ cache: { ...metrics().cache, enabled: false } }), []);
    assert.equal(m.cache.enabled, false);
    assert.equal(m.cache.hitRate, 'off');
  });

  it('clamps a utilisation outside 0..1 for the bar', () => {
    const m = metricsViewModel(metrics({ workers: [{ id: 'w1', busy: true, runs: 1, failures: 0, busyMs: 1, utilisation: 1.3 }] }), []);
    assert.equal(m.workers[0]!.utilisation, 1);
  });

  it('charts p50/p95 and runs per minute from the history, with a round top', () => {
    const history: MetricsSample[] = [
      { t: 0, p50: 10, p95: 30, runsPerMinute: 2 },
      { t: 1000, p50: 12, p95: 130, runsPerMinute: 7 },
    ];
    const [latency, throughput] = metricsViewModel(metrics(), history).charts;
    assert.equal(latency!.id, 'latency');
    assert.deepEqual(latency!.series.map((s) => [s.name, s.values]), [['p50', [10, 12]], ['p95', [30, 130]]]);
    assert.equal(latency!.max, 200);
    assert.equal(latency!.maxText, '200 ms');
    assert.equal(latency!.span, 'last 1 s');
    assert.deepEqual(throughput!.series[0]!.values, [2, 7]);
    assert.equal(throughput!.max, 10);
    for (const s of [...latency!.series, ...throughput!.series]) assert.match(s.color, /^--vscode-/);
  });

  it('lists the last 20 runs, newest first, with what a click does', () => {
    const run = metrics().recentRuns[0]!;
    const many = Array.from({ length: 25 }, (_, i) => ({ ...run, runId: `r${i}` }));
    const m = metricsViewModel(metrics({ recentRuns: many }), []);
    assert.equal(m.recentRuns.length, 20);
    assert.equal(m.recentRuns[0]!.runId, 'r0');
    const [first, second] = metricsViewModel(metrics(), []).recentRuns;
    assert.deepEqual({ ...first!, title: undefined }, {
      runId: 'r4', language: 'python', status: 'timeout', duration: '100 ms', memory: '1.0 MiB', cached: false, title: undefined,
    });
    assert.match(first!.title, /click to show its output/);
    assert.match(second!.title, /cached/);
  });
});

describe('parseViewMessage', () => {
  it('accepts the two messages the webview sends and nothing else', () => {
    assert.deepEqual(parseViewMessage({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parseViewMessage({ type: 'revealRun', runId: 'r1', extra: 1 }), { type: 'revealRun', runId: 'r1' });
    assert.equal(parseViewMessage({ type: 'revealRun', runId: 3 }), undefined);
    assert.equal(parseViewMessage({ type: 'revealRun', runId: 'x'.repeat(201) }), undefined);
    assert.equal(parseViewMessage({ type: 'eval' }), undefined);
    assert.equal(parseViewMessage(null), undefined);
    assert.equal(parseViewMessage('ready'), undefined);
  });
});

describe('makeNonce', () => {
  it('makes 32 alphanumeric characters from the random bytes', () => {
    const nonce = makeNonce((n) => Uint8Array.from({ length: n }, (_, i) => i * 7));
    assert.match(nonce, /^[A-Za-z0-9]{32}$/);
    assert.notEqual(nonce, makeNonce((n) => Uint8Array.from({ length: n }, (_, i) => i * 11)));
  });
});

describe('buildMetricsHtml', () => {
  const html = buildMetricsHtml('N0nce', 'https://csp.source', 'https://x/metrics.js', 'https://x/metrics.css');
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)?.[1];

  it('sets a strict CSP: nothing by default, scripts only by nonce, styles from the extension or by nonce', () => {
    assert.equal(
      csp,
      "default-src 'none'; style-src https://csp.source 'nonce-N0nce'; script-src 'nonce-N0nce'; img-src https://csp.source data:",
    );
  });

  it('loads exactly one script and one stylesheet, both nonce\'d, and nothing remote or inline', () => {
    assert.deepEqual([...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]), ['<script nonce="N0nce" src="https://x/metrics.js">']);
    assert.deepEqual([...html.matchAll(/<link\b[^>]*>/g)].map((m) => m[0]), ['<link rel="stylesheet" nonce="N0nce" href="https://x/metrics.css">']);
    assert.doesNotMatch(html, /style="/);
    assert.doesNotMatch(html, /\bon[a-z]+="/);
  });

  it('escapes what goes into attributes', () => {
    const evil = buildMetricsHtml('a"b', 'c', 'd"><script>', 'e');
    assert.doesNotMatch(evil, /d"><script>/);
    assert.match(evil, /nonce-a&quot;b/);
  });

  it('has the sections the script fills in', () => {
    for (const id of ['runs-total', 'throughput', 'p50', 'p95', 'workers', 'cache-hit-rate', 'cache-entries', 'cache-bytes', 'cache-evictions',
      'verdicts', 'charts', 'peak-memory', 'server-rss', 'recent-runs', 'waiting', 'metrics']) {
      assert.match(html, new RegExp(`id="${id}"`), id);
    }
  });
});

describe('media/metrics', () => {
  const css = readFileSync(new URL('../../media/metrics/metrics.css', import.meta.url), 'utf8');
  const js = readFileSync(new URL('../../media/metrics/metrics.js', import.meta.url), 'utf8');

  it('takes every colour from the theme', () => {
    const colours = css.match(/#[0-9a-f]{3,8}\b|rgba?\(|hsla?\(/gi) ?? [];
    assert.deepEqual(colours, []);
    assert.match(css, /var\(--vscode-/);
  });

  it('loads nothing from outside and never writes HTML from data', () => {
    assert.doesNotMatch(js + css, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });

  it('reads every element id it uses from the HTML', () => {
    const html = buildMetricsHtml('n', 'c', 's', 't');
    const ids = [...js.matchAll(/(?:\$|setText)\('([\w-]+)'/g)].map((m) => m[1]!);
    assert.ok(ids.length > 20, `found ${ids.length} ids`);
    for (const id of ids) assert.match(html, new RegExp(`id="${id}"`), id);
  });
});
