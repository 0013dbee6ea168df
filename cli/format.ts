/** Turning results into what a person reads: the summary line of `run`, tables, sizes and exit codes. */
import { constants } from 'node:os';
import type { ExecutionResult } from '../server/protocol';
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

/**
 * The one-line summary `run` prints on stderr, e.g.
 * `sbx: ok · exit 0 · 23 ms · cpu 20 ms · peak 9.8 MiB · cached · isolation process`.
 * A multi-line `message` (a compiler's output) does not fit: the caller prints it above the line.
 */
export function summaryLine(result: ExecutionResult): string {
  const parts: string[] = [result.status];
  if (result.status === 'rejected') {
    return `sbx: rejected: ${oneLine(result.message ?? 'the server refused to run the program')}`;
  }
  if (result.exitCode !== null) parts.push(`exit ${result.exitCode}`);
  if (result.signal !== null) parts.push(`killed by ${result.signal}`);
  // A program that never started (a compile error, an internal error) has no measurements worth showing.
  const ran = result.durationMs > 0 || result.cpuMs > 0 || result.peakMemoryBytes > 0;
  if (ran) parts.push(`${ms(result.durationMs)} ms`, `cpu ${ms(result.cpuMs)} ms`, `peak ${mib(result.peakMemoryBytes)} MiB`);
  if (result.cached) parts.push('cached');
  parts.push(`isolation ${result.isolation}`);
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
