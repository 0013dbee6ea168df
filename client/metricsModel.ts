/**
 * The Metrics view's pure half: the bounded history of samples kept on the extension side, the view model the
 * webview renders (every number already formatted here, so the webview script only draws), and the webview's HTML
 * with its Content-Security-Policy. No `vscode` import: unit-tested with node's test runner.
 */
import { mib, ms, percent } from './format';
import { STATUSES, type Metrics, type RunStatus } from '../server/protocol';

/** Most samples kept for the charts (one per `sandbox/metricsChanged`, at most one a second). */
export const HISTORY_LIMIT = 120;
/** Samples closer together than this are coalesced (see pushSample). */
export const SAMPLE_SPACING_MS = 1000;

export interface MetricsSample {
  /** Epoch ms when the sample was taken (extension side). */
  t: number;
  p50: number;
  p95: number;
  runsPerMinute: number;
}

/** The history with one more sample: bounded to `limit`, and coalesced when samples come faster than 1/s. */
export function pushSample(history: readonly MetricsSample[], metrics: Metrics, now: number, limit = HISTORY_LIMIT): MetricsSample[] {
  const sample: MetricsSample = { t: now, p50: metrics.durationMs.p50, p95: metrics.durationMs.p95, runsPerMinute: metrics.runsPerMinute };
  // The newest sample always carries the latest figures; it replaces the one before only while that one is
  // still within a second of its predecessor (so a burst at 4/s leaves one point a second, not one in total).
  const previous = history.at(-2);
  const kept = previous !== undefined && now - previous.t < SAMPLE_SPACING_MS ? history.slice(0, -1) : history.slice();
  kept.push(sample);
  return kept.length > limit ? kept.slice(kept.length - limit) : kept;
}

export interface ChartSeries {
  name: string;
  /** A theme colour variable, e.g. `--vscode-charts-blue`. */
  color: string;
  values: number[];
  /** The latest value, formatted. */
  latest: string;
}

export interface ChartModel {
  id: string;
  title: string;
  /** Top of the y axis (≥ every value; never 0). */
  max: number;
  maxText: string;
  series: ChartSeries[];
  /** How long the history spans, e.g. `last 2 min`. */
  span: string;
}

export interface MetricsViewModel {
  /** False before the first metrics arrive (no server yet). */
  connected: boolean;
  runsTotal: number;
  uptime: string;
  pool: { size: number; busy: number; queued: number; text: string; queueText: string };
  workers: { id: string; busy: boolean; utilisation: number; utilisationText: string; runsText: string }[];
  cache: { enabled: boolean; hitRate: string; entries: string; bytes: string; evictions: string; hitsMisses: string };
  verdicts: { status: RunStatus; count: number }[];
  latency: { p50: string; p95: string; avg: string; max: string };
  throughput: string;
  peakConcurrency: string;
  peakMemory: string;
  server: { pid: number; rss: string; heap: string };
  charts: ChartModel[];
  recentRuns: { runId: string; language: string; status: RunStatus; duration: string; memory: string; cached: boolean; title: string }[];
}

/** A round top for a chart's y axis: 1, 2 or 5 × 10^n, at least `max` (and at least `floor`). */
export function niceMax(max: number, floor = 1): number {
  const m = Math.max(max, floor);
  const p = 10 ** Math.floor(Math.log10(m));
  for (const f of [1, 2, 5, 10]) if (f * p >= m) return f * p;
  return 10 * p;
}

function span(history: readonly MetricsSample[]): string {
  if (history.length < 2) return 'since the view opened';
  const s = Math.round((history.at(-1)!.t - history[0]!.t) / 1000);
  return s < 120 ? `last ${s} s` : `last ${Math.round(s / 60)} min`;
}

function duration(uptimeMs: number): string {
  const s = Math.floor(uptimeMs / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const EMPTY_MODEL: MetricsViewModel = {
  connected: false,
  runsTotal: 0,
  uptime: '–',
  pool: { size: 0, busy: 0, queued: 0, text: '–', queueText: '' },
  workers: [],
  cache: { enabled: false, hitRate: '–', entries: '–', bytes: '–', evictions: '–', hitsMisses: '' },
  verdicts: [],
  latency: { p50: '–', p95: '–', avg: '–', max: '–' },
  throughput: '–',
  peakConcurrency: '–',
  peakMemory: '–',
  server: { pid: 0, rss: '–', heap: '–' },
  charts: [],
  recentRuns: [],
};

/** What the webview shows for `metrics` (undefined: no server yet) and the chart history. */
export function metricsViewModel(metrics: Metrics | undefined, history: readonly MetricsSample[]): MetricsViewModel {
  if (!metrics) return EMPTY_MODEL;
  const latencyTop = niceMax(Math.max(0, ...history.map((s) => s.p95)), 10);
  const rpmTop = niceMax(Math.max(0, ...history.map((s) => s.runsPerMinute)), 5);
  const c = metrics.cache;
  return {
    connected: true,
    runsTotal: metrics.runsTotal,
    uptime: duration(metrics.uptimeMs),
    pool: {
      size: metrics.pool.size,
      busy: metrics.pool.busy,
      queued: metrics.pool.queued,
      text: `${metrics.pool.busy}/${metrics.pool.size} busy`,
      queueText: `${metrics.pool.queued} queued (limit ${metrics.pool.queueLimit})`,
    },
    workers: metrics.workers.map((w) => ({
      id: w.id,
      busy: w.busy,
      utilisation: Math.min(1, Math.max(0, w.utilisation)),
      utilisationText: percent(w.utilisation),
      runsText: `${w.runs} runs${w.failures > 0 ? `, ${w.failures} failed` : ''}`,
    })),
    cache: c.enabled
      ? {
          enabled: true,
          hitRate: percent(c.hitRate),
          entries: `${c.entries} / ${c.maxEntries}`,
          bytes: `${mib(c.bytes)} / ${mib(c.maxBytes)}`,
          evictions: String(c.evictions),
          hitsMisses: `${c.hits} hits, ${c.misses} misses`,
        }
      : { enabled: false, hitRate: 'off', entries: '–', bytes: '–', evictions: '–', hitsMisses: 'the cache is off' },
    verdicts: STATUSES.map((status) => ({ status, count: metrics.runsByStatus[status] ?? 0 })).filter((v) => v.count > 0),
    latency: { p50: ms(metrics.durationMs.p50), p95: ms(metrics.durationMs.p95), avg: ms(metrics.durationMs.avg), max: ms(metrics.durationMs.max) },
    throughput: `${metrics.runsPerMinute} / min`,
    peakConcurrency: String(metrics.peakConcurrency),
    peakMemory: mib(metrics.peakMemoryBytes),
    server: { pid: metrics.server.pid, rss: mib(metrics.server.rssBytes), heap: mib(metrics.server.heapUsedBytes) },
    charts: [
      {
        id: 'latency',
        title: 'Latency',
        max: latencyTop,
        maxText: ms(latencyTop),
        span: span(history),
        series: [
          { name: 'p50', color: '--vscode-charts-blue', values: history.map((s) => s.p50), latest: ms(metrics.durationMs.p50) },
          { name: 'p95', color: '--vscode-charts-orange', values: history.map((s) => s.p95), latest: ms(metrics.durationMs.p95) },
        ],
      },
      {
        id: 'throughput',
        title: 'Throughput',
        max: rpmTop,
        maxText: `${rpmTop} / min`,
        span: span(history),
        series: [
          { name: 'runs/min', color: '--vscode-charts-green', values: history.map((s) => s.runsPerMinute), latest: `${metrics.runsPerMinute} / min` },
        ],
      },
    ],
    recentRuns: metrics.recentRuns.slice(0, 20).map((r) => ({
      runId: r.runId,
      language: r.language,
      status: r.status,
      duration: ms(r.durationMs),
      memory: mib(r.peakMemoryBytes),
      cached: r.cached,
      title: `${r.runId}: ${r.status}, ${ms(r.durationMs)}, cpu ${ms(r.cpuMs)}, peak ${mib(r.peakMemoryBytes)}${r.cached ? ', cached' : ''}${r.workerId ? `, ${r.workerId}` : ''} — click to show its output`,
    })),
  };
}

/** The messages the webview sends to the extension. */
export type MetricsViewMessage = { type: 'ready' } | { type: 'revealRun'; runId: string };

/** Validates a message from the webview (its content is never trusted blindly). */
export function parseViewMessage(message: unknown): MetricsViewMessage | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as Record<string, unknown>;
  if (m.type === 'ready') return { type: 'ready' };
  if (m.type === 'revealRun' && typeof m.runId === 'string' && m.runId.length <= 200) return { type: 'revealRun', runId: m.runId };
  return undefined;
}

/** 32 random characters for the CSP nonce (`random` returns bytes; crypto in production, fixed in tests). */
export function makeNonce(random: (n: number) => Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(random(32), (b) => alphabet[b % alphabet.length]).join('');
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The webview's HTML: a strict CSP (nothing but the nonce'd script and the extension's stylesheet; images only
 * from the extension or data:), and the empty sections the script fills in from each posted model.
 */
export function buildMetricsHtml(nonce: string, cspSource: string, scriptUri: string, styleUri: string): string {
  const csp = [
    "default-src 'none'",
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" nonce="${escapeAttr(nonce)}" href="${escapeAttr(styleUri)}">
<title>Sandbox Metrics</title>
</head>
<body>
<p id="waiting" class="muted">Waiting for the sandbox server…</p>
<main id="metrics" hidden>
  <section class="tiles">
    <div class="tile"><span class="label">Runs</span><span class="value" id="runs-total">–</span></div>
    <div class="tile"><span class="label">Throughput</span><span class="value" id="throughput">–</span></div>
    <div class="tile"><span class="label">p50</span><span class="value" id="p50">–</span></div>
    <div class="tile"><span class="label">p95</span><span class="value" id="p95">–</span></div>
  </section>
  <section>
    <h2>Pool <span class="muted" id="pool-text"></span></h2>
    <p class="muted" id="pool-queue"></p>
    <div id="workers" class="bars"></div>
  </section>
  <section>
    <h2>Cache <span class="muted" id="cache-hit-rate"></span></h2>
    <dl class="facts">
      <dt>entries</dt><dd id="cache-entries">–</dd>
      <dt>bytes</dt><dd id="cache-bytes">–</dd>
      <dt>evictions</dt><dd id="cache-evictions">–</dd>
      <dt>lookups</dt><dd id="cache-hits-misses">–</dd>
    </dl>
  </section>
  <section>
    <h2>Runs by verdict</h2>
    <div id="verdicts" class="bars"></div>
  </section>
  <section id="charts"></section>
  <section>
    <h2>Memory</h2>
    <dl class="facts">
      <dt>peak of a run</dt><dd id="peak-memory">–</dd>
      <dt>server RSS</dt><dd id="server-rss">–</dd>
      <dt>server heap</dt><dd id="server-heap">–</dd>
      <dt>peak concurrency</dt><dd id="peak-concurrency">–</dd>
      <dt>uptime</dt><dd id="uptime">–</dd>
    </dl>
  </section>
  <section>
    <h2>Recent runs</h2>
    <p class="muted" id="no-runs">No runs yet.</p>
    <ol id="recent-runs" class="runs"></ol>
  </section>
</main>
<script nonce="${escapeAttr(nonce)}" src="${escapeAttr(scriptUri)}"></script>
</body>
</html>`;
}
