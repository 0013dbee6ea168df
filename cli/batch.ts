/**
 * `sbx batch PATH_OR_GLOB...`: every runnable file as ONE `sandbox/executeBatch` (the server's pool schedules
 * them), a progress bar on a terminal, then a table, totals and the server's metrics.
 */
import { randomBytes } from 'node:crypto';
import { SingleBar } from 'cli-progress';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import {
  type ExecuteBatchResult,
  type ExecuteParams,
  type ExecutionResult,
  type Metrics,
} from '../server/protocol';
import { EXIT } from './errors';
import { expandTargets, extensionMap, selectFiles, type BatchFile } from './files';
import { firstLine, mib, ms, percent, table } from './format';
import { limitsFrom } from './options';
import { onInterrupt, openSession, writeOut, type GlobalOptions } from './session';

export interface BatchOptions {
  concurrency?: number;
  timeout?: number;
  memory?: number;
  cache: boolean;
  json?: boolean;
}

/** A result of `--json`: the server's ExecutionResult plus the file it ran (relative to the current directory). */
export type BatchItemResult = ExecutionResult & { file: string };

export async function batchCommand(args: string[], options: BatchOptions, globals: GlobalOptions): Promise<number> {
  // Paths and globs are checked before the server starts; their extensions once it says which it knows.
  const targets = await expandTargets(args);

  return openSession(globals, async (session) => {
    const files = selectFiles(targets, extensionMap(await session.languages()));
    const tag = randomBytes(4).toString('hex');
    const items: ExecuteParams[] = files.map((f, i) => {
      const item: ExecuteParams = { language: f.language, file: f.file, runId: `b-${i}-${tag}` };
      const limits = limitsFrom(options);
      if (limits !== undefined) item.limits = limits;
      if (!options.cache) item.cache = false;
      return item;
    });

    // Progress: the server reports no per-item completion for a batch, but every finished item (run or cache hit)
    // grows `runsTotal` in the `sandbox/metricsChanged` it sends.
    const bar = process.stderr.isTTY ? progressBar(files.length) : undefined;
    const baseline = bar ? (await session.metrics()).runsTotal : 0;
    const progress = bar
      ? session.onMetricsChanged((m) => bar.update(Math.max(0, Math.min(files.length, m.runsTotal - baseline))))
      : undefined;

    const cancellation = new CancellationTokenSource();
    let interrupted = false;
    const interrupt = onInterrupt(() => {
      interrupted = true;
      cancellation.cancel();
    });
    let response: ExecuteBatchResult;
    try {
      const params = options.concurrency !== undefined ? { items, concurrency: options.concurrency } : { items };
      response = await session.executeBatch(params, cancellation.token);
      bar?.update(files.length);
    } finally {
      bar?.stop();
      progress?.dispose();
      interrupt.dispose();
      cancellation.dispose();
    }
    const metrics = await session.metrics();

    const results: BatchItemResult[] = response.results.map((r, i) => ({ file: files[i]?.display ?? '?', ...r }));
    if (options.json) {
      writeOut(`${JSON.stringify({ results, summary: response.summary, metrics }, null, 2)}\n`);
    } else {
      writeOut(report(files, response, metrics));
    }
    if (interrupted) return EXIT.interrupted;
    return results.length === files.length && results.every((r) => r.status === 'ok') ? EXIT.ok : EXIT.failed;
  });
}

function progressBar(total: number): SingleBar {
  const bar = new SingleBar({
    stream: process.stderr,
    format: 'sbx batch [{bar}] {value}/{total} files · {duration_formatted}',
    barsize: 30,
    hideCursor: true,
    clearOnComplete: true,
  });
  bar.start(total, 0);
  return bar;
}

/** The table, totals, failures and metrics printed by `sbx batch`. */
export function report(files: BatchFile[], response: ExecuteBatchResult, metrics: Metrics): string {
  const { results, summary } = response;
  const rows = results.map((r, i) => [
    files[i]?.display ?? '?',
    r.status,
    ms(r.durationMs),
    mib(r.peakMemoryBytes),
    r.cached ? 'yes' : 'no',
  ]);
  let out = table(['file', 'status', 'time (ms)', 'memory (MiB)', 'cached'], rows, new Set([2, 3]));

  const failed = Object.entries(summary.byStatus)
    .filter(([status, n]) => status !== 'ok' && (n ?? 0) > 0)
    .map(([status, n]) => `${status} ${n}`);
  out +=
    `\n${summary.total} files · ${summary.ok} ok · ${summary.failed} failed` +
    (failed.length > 0 ? ` (${failed.join(', ')})` : '') +
    ` · ${summary.cached} cached · wall ${ms(summary.wallMs)} ms · run time ${ms(summary.totalDurationMs)} ms\n`;

  const failures = results
    .map((r, i) => ({ r, file: files[i]?.display ?? '?' }))
    .filter(({ r }) => r.status !== 'ok');
  if (failures.length > 0) {
    out += 'failures:\n';
    for (const { r, file } of failures) {
      const why = firstLine(r.message) ?? firstLine(r.stderr);
      const exit = r.exitCode !== null ? ` (exit ${r.exitCode})` : r.signal !== null ? ` (${r.signal})` : '';
      out += `  ${file}: ${r.status}${exit}${why !== undefined ? ` — ${why}` : ''}\n`;
    }
  }

  out +=
    `pool ${metrics.pool.size} workers · runs ${metrics.runsTotal} · cache hit rate ${percent(metrics.cache.hitRate)}` +
    ` · p50 ${ms(metrics.durationMs.p50)} ms · p95 ${ms(metrics.durationMs.p95)} ms` +
    ` · peak memory ${mib(metrics.peakMemoryBytes)} MiB\n`;
  // Workers, a few per line: `workers: w1 3 runs 93% busy · w2 3 runs 93% busy`.
  const workers = metrics.workers.map((w) => `${w.id} ${w.runs} run${w.runs === 1 ? '' : 's'} ${percent(w.utilisation)} busy`);
  for (let i = 0; i < workers.length; i += 4) {
    out += `${i === 0 ? 'workers:' : '        '} ${workers.slice(i, i + 4).join(' · ')}\n`;
  }
  return out;
}
