/**
 * Turning results and metrics into what a person reads in VS Code: the summary line after each run, the
 * notification for a verdict that is not `ok`, the status bar text and the metrics summary. Pure: no `vscode`.
 */
import type { ExecuteBatchResult, ExecutionResult, IsolationMode, Metrics, RunStatus, SandboxInfo } from '../server/protocol';

/** Bytes as MiB with one decimal, e.g. `9.8 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export function ms(value: number): string {
  return `${Math.round(value)} ms`;
}

export function percent(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}

/** What each verdict means, in the words a notification uses. */
export const VERDICT_TEXT: Readonly<Record<RunStatus, string>> = {
  ok: 'finished',
  runtime_error: 'failed with a runtime error',
  timeout: 'ran past its time limit and was killed',
  memory_limit: 'passed its memory limit and was killed',
  output_limit: 'passed its output limit and was stopped',
  compile_error: 'did not compile',
  rejected: 'was refused by the sandbox',
  cancelled: 'was stopped',
  internal_error: 'could not be run: the sandbox failed',
};

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

/** Whether the program ran at all (a compile error or a rejection has no measurements worth showing). */
function ran(result: ExecutionResult): boolean {
  return result.durationMs > 0 || result.cpuMs > 0 || result.peakMemoryBytes > 0;
}

/** `1 finding`, `3 findings`. */
export function findingsCount(n: number): string {
  return `${n} finding${n === 1 ? '' : 's'}`;
}

/**
 * The one line written after a run, e.g.
 * `[sandbox] hello.py: ok · exit 0 · 23 ms · cpu 20 ms · peak 9.8 MiB · not cached · isolation process · 2 findings`.
 * The findings themselves go on the lines under it (findingLines).
 */
export function summaryLine(result: ExecutionResult, label: string): string {
  const parts: string[] = [result.status];
  if (result.exitCode !== null) parts.push(`exit ${result.exitCode}`);
  if (result.signal !== null) parts.push(`killed by ${result.signal}`);
  if (ran(result)) parts.push(ms(result.durationMs), `cpu ${ms(result.cpuMs)}`, `peak ${mib(result.peakMemoryBytes)}`);
  parts.push(result.cached ? 'cached (not run again)' : 'not cached');
  parts.push(`isolation ${result.isolation}`);
  // `?? []`: a server from before the security scan sends no findings.
  const findings = result.findings ?? [];
  if (findings.length > 0) parts.push(findingsCount(findings.length));
  // The server's own rate-limit message already says when; a message that does not gets it said here.
  if (result.status === 'rejected' && result.retryAfterMs !== undefined && !/retry in/i.test(result.message ?? '')) {
    parts.push(`retry in ${ms(result.retryAfterMs)}`);
  }
  if (result.stdoutTruncated) parts.push('stdout truncated');
  if (result.stderrTruncated) parts.push('stderr truncated');
  if (result.status !== 'ok' && result.message !== undefined && !result.message.trim().includes('\n')) {
    parts.push(oneLine(result.message));
  }
  return `[sandbox] ${label}: ${parts.join(' · ')}`;
}

/**
 * The security scan's findings of a run, one line each for under its summary: `  line 3: network — …`. A finding
 * the result's message already names (a run the scan blocked, whose message lists them) is not repeated.
 */
export function findingLines(result: Pick<ExecutionResult, 'findings' | 'message'>): string[] {
  return (result.findings ?? [])
    .map((f) => `line ${f.line}: ${f.ruleId} — ${oneLine(f.message)}`)
    .filter((line) => !(result.message ?? '').includes(line))
    .map((line) => `  ${line}`);
}

/** The message shown in a notification after a run, or undefined when the run needs none (ok, not cached). */
export function runNotification(result: ExecutionResult, label: string): { text: string; severity: 'info' | 'warning' | 'error' } | undefined {
  if (result.status === 'ok') {
    return result.cached
      ? { text: `${label}: this result is from the cache — the program was not run again.`, severity: 'info' }
      : undefined;
  }
  let text = `${label} ${VERDICT_TEXT[result.status]}`;
  if (result.status === 'runtime_error' && result.exitCode !== null) text += ` (exit ${result.exitCode})`;
  if (result.signal !== null && result.status === 'runtime_error') text += ` (killed by ${result.signal})`;
  if (result.message !== undefined && result.message.trim() !== '') {
    const first = result.message.trim().split('\n')[0]!.trim();
    text += `: ${first}`;
  }
  text += '.';
  if (result.cached) text += ' This result is from the cache — the program was not run again.';
  const severity = result.status === 'cancelled' ? 'info' : result.status === 'internal_error' ? 'error' : 'warning';
  return { text, severity };
}

/** The status bar text: pool busy/size, cache hit rate, and the isolation mode (a warning icon when unsandboxed). */
export function statusBarText(metrics: Pick<Metrics, 'pool' | 'cache'> | undefined, isolation: IsolationMode | undefined): string {
  const pool = metrics ? `${metrics.pool.busy}/${metrics.pool.size} busy` : '–';
  const queued = metrics && metrics.pool.queued > 0 ? ` +${metrics.pool.queued} queued` : '';
  const cache = metrics ? (metrics.cache.enabled ? `cache ${percent(metrics.cache.hitRate)}` : 'cache off') : '';
  const iso = isolation === undefined ? '' : isolation === 'process' ? '$(warning) process' : `$(shield) ${isolation}`;
  return ['$(beaker)', `${pool}${queued}`, cache, iso].filter((p) => p !== '').join(' ');
}

const ENFORCED: readonly [keyof SandboxInfo['enforcement'], string][] = [
  ['memory', 'Memory'],
  ['processes', 'Processes'],
  ['disk', 'Disk'],
  ['cpu', 'CPU time'],
  ['wall', 'Wall time'],
];

/** `N rules (ptrace, keyctl, bpf, …)`: the seccomp filter in a few words. */
export function seccompText(rules: readonly string[]): string {
  const names = rules.map((r) => /^(?:deny|enosys) ([^:]+):/.exec(r)?.[1]).filter((n): n is string => n !== undefined);
  return `${rules.length} rules (${names.slice(0, 6).join(', ')}${names.length > 6 ? ', …' : ''})`;
}

/** What the sandbox is made of here: who runs the programs, the seccomp filter, the cgroup version and what holds
 *  each limit, one line each. */
export function sandboxDetails(sandbox: SandboxInfo): string[] {
  const lines: string[] = [];
  if (sandbox.hostUser) {
    lines.push(`${sandbox.hostUser.mode === 'server' ? 'Warning: runs as ' : 'Runs as: '}${sandbox.hostUser.description}`);
  }
  if (sandbox.seccomp?.length) lines.push(`Seccomp: ${seccompText(sandbox.seccomp)}`);
  lines.push(`cgroup: ${sandbox.cgroup ?? 'none writable (rlimits only)'}`);
  for (const [key, label] of ENFORCED) {
    const by = sandbox.enforcement[key];
    if (by !== undefined) lines.push(`${label}: ${by}`);
  }
  return lines;
}

/** One line for the log, e.g. `sandbox: bwrap (bubblewrap 0.9.0 works here) · cgroup v2 · memory: memory cgroup · …`. */
export function sandboxSummary(sandbox: SandboxInfo | undefined): string {
  if (!sandbox) return 'sandbox: the server did not describe its sandbox';
  const head =
    sandbox.isolation === 'process'
      ? `sandbox: process — runs are NOT sandboxed (${sandbox.reason}): they can read and write your files and reach the network`
      : `sandbox: ${sandbox.isolation} (${sandbox.reason})`;
  const enforced = ENFORCED.filter(([key]) => sandbox.enforcement[key] !== undefined).map(([key]) => `${key}: ${sandbox.enforcement[key]}`);
  const user = sandbox.hostUser ? [`runs as ${sandbox.hostUser.description}`] : [];
  const seccomp = sandbox.seccomp?.length ? [`seccomp ${sandbox.seccomp.length} rules`] : [];
  return [head, ...user, ...seccomp, `cgroup ${sandbox.cgroup ?? 'none'}`, ...enforced].join(' · ');
}

/**
 * The status bar tooltip: what each figure is, how runs are sandboxed (mode and why, cgroups, what holds each limit)
 * and, in process mode, plainly that they are not.
 */
export function statusBarTooltip(
  metrics: Pick<Metrics, 'pool' | 'cache'> | undefined,
  isolation: IsolationMode | undefined,
  sandbox?: SandboxInfo,
): string {
  const lines = ['Sandbox Runner'];
  if (metrics) {
    lines.push(`Pool: ${metrics.pool.busy} of ${metrics.pool.size} workers busy, ${metrics.pool.queued} queued`);
    lines.push(
      metrics.cache.enabled
        ? `Cache: ${percent(metrics.cache.hitRate)} hit rate, ${metrics.cache.entries} entries`
        : 'Cache: off',
    );
  } else {
    lines.push('Waiting for the sandbox server…');
  }
  if (isolation === 'process') {
    lines.push('Isolation: process — runs are child processes with limits, NOT a sandbox: a program can read and write your files and reach the network.');
    if (sandbox) lines.push(`Why not sandboxed: ${sandbox.reason}.`);
  } else if (isolation !== undefined) {
    lines.push(sandbox ? `Isolation: ${isolation} — ${sandbox.reason}` : `Isolation: ${isolation}`);
  }
  if (isolation !== undefined && sandbox) lines.push(...sandboxDetails(sandbox));
  lines.push('Click to show metrics.');
  return lines.join('\n');
}

/** The closing line of a batch, e.g. `[sandbox] batch: 3 runs · 2 ok · 1 failed (timeout 1) · 1 cached · 812 ms`. */
export function batchSummaryLine(result: ExecuteBatchResult): string {
  const s = result.summary;
  const failed = Object.entries(s.byStatus)
    .filter(([status, n]) => status !== 'ok' && (n ?? 0) > 0)
    .map(([status, n]) => `${status} ${n}`)
    .join(', ');
  return `[sandbox] batch: ${s.total} runs · ${s.ok} ok · ${s.failed} failed${failed ? ` (${failed})` : ''} · ${s.cached} cached · ${ms(s.wallMs)}`;
}
