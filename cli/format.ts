/** Turning results into what a person reads: the summary line of `run`, tables, sizes and exit codes. */
import { constants } from 'node:os';
import type { ExecutionResult, Limits, SandboxInfo } from '../server/protocol';
import { EXIT } from './errors';

/** Bytes as MiB with one decimal, e.g. `9.8`. */
export function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

export function ms(value: number): string {
  return String(Math.round(value));
}

export function percent(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}

/** The CLI's exit code for a run: the program's own for ok/runtime_error, a fixed one for every other verdict. */
export function exitCodeFor(result: ExecutionResult): number {
  switch (result.status) {
    case 'ok':
    case 'runtime_error': {
      if (result.exitCode !== null) {
        // A runtime error that still exited 0 (e.g. killed by the watchdog after exiting) must not look like success.
        return result.status === 'runtime_error' && result.exitCode === 0 ? EXIT.failed : result.exitCode;
      }
      if (result.signal !== null) {
        const number = (constants.signals as Record<string, number | undefined>)[result.signal];
        if (number !== undefined) return 128 + number;
      }
      return result.status === 'ok' ? EXIT.ok : EXIT.failed;
    }
    case 'timeout':
      return EXIT.timeout;
    case 'output_limit':
      return EXIT.outputLimit;
    case 'memory_limit':
      return EXIT.memoryLimit;
    case 'compile_error':
      return EXIT.failed;
    case 'rejected':
      return EXIT.usage;
    case 'cancelled':
      return EXIT.interrupted;
    case 'internal_error':
      return EXIT.internal;
  }
}

/** The first line of a message, for places that have room for one. */
export function firstLine(text: string | undefined): string | undefined {
  const line = text
    ?.split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  return line;
}

/** `1 finding`, `3 findings`. */
export function findingsCount(n: number): string {
  return `${n} finding${n === 1 ? '' : 's'}`;
}

/**
 * The one-line summary `run` prints on stderr, e.g.
 * `sbx: ok · exit 0 · 23 ms · cpu 20 ms · peak 9.8 MiB · cached · isolation process · 2 findings`.
 * A multi-line `message` (a compiler's output) does not fit: the caller prints it above the line, and the findings
 * themselves (findingLines) too.
 */
export function summaryLine(result: ExecutionResult): string {
  const parts: string[] = [result.status];
  // `?? []`: a server from before the security scan sends no findings.
  const findings = result.findings ?? [];
  if (result.status === 'rejected') {
    const extra: string[] = [];
    if (findings.length > 0) extra.push(findingsCount(findings.length));
    // The server's own rate-limit message already says when; a message that does not gets it said here.
    if (result.retryAfterMs !== undefined && !/retry in/i.test(result.message ?? '')) extra.push(`retry in ${ms(result.retryAfterMs)} ms`);
    // A multi-line message (the scan's findings under "blocked by …:") is printed above; its first line leads here.
    const why = firstLine(result.message)?.replace(/:$/, '') ?? 'the server refused to run the program';
    return `sbx: rejected: ${[why, ...extra].join(' · ')}`;
  }
  if (result.exitCode !== null) parts.push(`exit ${result.exitCode}`);
  if (result.signal !== null) parts.push(`killed by ${result.signal}`);
  // A program that never started (a compile error, an internal error) has no measurements worth showing.
  const ran = result.durationMs > 0 || result.cpuMs > 0 || result.peakMemoryBytes > 0;
  if (ran) parts.push(`${ms(result.durationMs)} ms`, `cpu ${ms(result.cpuMs)} ms`, `peak ${mib(result.peakMemoryBytes)} MiB`);
  if (result.cached) parts.push('cached');
  parts.push(`isolation ${result.isolation}`);
  if (findings.length > 0) parts.push(findingsCount(findings.length));
  if (result.stdoutTruncated) parts.push(`(stdout truncated at ${Buffer.byteLength(result.stdout)} bytes)`);
  if (result.stderrTruncated) parts.push(`(stderr truncated at ${Buffer.byteLength(result.stderr)} bytes)`);
  if (result.status !== 'ok' && result.message !== undefined && !result.message.trim().includes('\n')) {
    parts.push(result.message.trim());
  }
  return `sbx: ${parts.join(' · ')}`;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

/**
 * The security scan's findings, one line each (`sbx: finding at line 3: network — …`), for stderr above the summary. A finding
 * the result's message already names (a run the scan blocked, whose message lists them) is not repeated.
 */
export function findingLines(result: Pick<ExecutionResult, 'findings' | 'message'>): string[] {
  return (result.findings ?? [])
    .map((f) => `line ${f.line}: ${f.ruleId} — ${oneLine(f.message)}`)
    .filter((line) => !(result.message ?? '').includes(line))
    .map((line) => `sbx: finding at ${line}`);
}

/** The sandbox section of `sbx languages`: mode and why, the bwrap binary, cgroups, what holds each limit, maxima. */
export function sandboxLines(sandbox: SandboxInfo): string[] {
  const lines: string[] = [];
  if (sandbox.isolation === 'process') {
    lines.push("warning: runs are NOT sandboxed: plain processes with rlimits can read and write this user's files and reach the network");
  }
  if (sandbox.hostUser?.mode === 'server') lines.push(`warning: sandboxed programs run as ${sandbox.hostUser.description}`);
  lines.push(`reason: ${sandbox.reason}`);
  if (sandbox.bwrap !== null) lines.push(`bwrap: ${sandbox.bwrap}`);
  if (sandbox.hostUser) lines.push(`runs as: ${sandbox.hostUser.description}`);
  if (sandbox.seccomp?.length) {
    const names = sandbox.seccomp.flatMap((r) => {
      const m = /^(deny|enosys) ([^:]+):/.exec(r);
      return m ? [m[1] === 'enosys' ? `${m[2]} (ENOSYS)` : m[2]!] : [];
    });
    lines.push(`seccomp: ${sandbox.seccomp.length} rules, refused with EPERM: ${names.join(', ')}`);
  }
  lines.push(`cgroup: ${sandbox.cgroup ?? 'none writable (rlimits only)'}`);
  lines.push('enforced by:');
  const keys = Object.keys(sandbox.enforcement) as (keyof SandboxInfo['enforcement'])[];
  const width = Math.max(...keys.map((k) => k.length));
  for (const key of keys) lines.push(`  ${key.padEnd(width)}  ${sandbox.enforcement[key]}`);
  lines.push(`max limits: ${maxLimitsText(sandbox.maxLimits)}`);
  return lines;
}

/** `timeoutMs 600000 · cpuMs 600000 · memoryMb 8192 · …`, in the order the server gives them. */
export function maxLimitsText(limits: Limits): string {
  return Object.entries(limits)
    .map(([name, value]) => `${name} ${value}`)
    .join(' · ');
}

/** A plain text table: columns padded to their widest cell; `right` names the columns aligned right (numbers). */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
