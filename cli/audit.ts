/**
 * `sbx audit`: the server's audit log, read straight from its file (no server is started), as a table or JSON.
 */
import path from 'node:path';
import { defaultAuditPath, readAudit, type AuditReadResult } from '../server/audit';
import type { AuditRecord } from '../server/protocol';
import { CliError, EXIT, messageOf } from './errors';
import { mib, ms, table } from './format';
import { loadConfig } from './options';
import { writeErr, writeOut, type GlobalOptions } from './session';

export interface AuditOptions {
  file?: string;
  tail?: number;
  json?: boolean;
}

export function auditCommand(options: AuditOptions, globals: GlobalOptions): number {
  const file = options.file ?? configuredPath(globals.config) ?? defaultAuditPath();
  let read: AuditReadResult;
  try {
    read = readAudit(file, options.tail !== undefined ? { tail: options.tail } : {});
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CliError(
        `no audit log at ${file} yet: the server writes it when it finishes its first run (see audit.path in --config, or --file)`,
        EXIT.failed,
      );
    }
    const why = code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : messageOf(err);
    throw new CliError(`cannot read the audit log ${file}: ${why}`, EXIT.failed);
  }

  if (options.json) {
    writeOut(`${JSON.stringify(read.records, null, 2)}\n`);
    if (read.skipped > 0) writeErr(`sbx: ${unreadable(read.skipped)} skipped\n`);
    return EXIT.ok;
  }
  const header = ['time', 'status', 'language', 'duration', 'peak', 'isolation', 'cached', 'sha256', 'runId'];
  let out = table(header, read.records.map(row), new Set([3, 4]));
  out += `${plural(read.records.length, 'record')}${read.skipped > 0 ? ` (${unreadable(read.skipped)} skipped)` : ''}\n`;
  writeOut(out);
  return EXIT.ok;
}

/** One table row. The file is outside our control (hand-edited, another version's): every cell tolerates junk. */
function row(r: AuditRecord): string[] {
  const num = (v: unknown, fmt: (n: number) => string) => (typeof v === 'number' && Number.isFinite(v) ? fmt(v) : '-');
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : '-');
  return [
    // Whole seconds, UTC: the ISO stamp the record holds, shorter.
    str(r.ts).replace(/\.\d+Z$/, 'Z'),
    str(r.status),
    str(r.language),
    num(r.durationMs, (n) => `${ms(n)} ms`),
    num(r.peakMemoryBytes, (n) => `${mib(n)} MiB`),
    str(r.isolation),
    r.cached === true ? 'yes' : 'no',
    str(r.codeSha256).slice(0, 12),
    str(r.runId),
  ];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function unreadable(n: number): string {
  return `${n} unreadable line${n === 1 ? '' : 's'}`;
}

/** `audit.path` of the --config file (checked as every command checks it), against the current directory. */
function configuredPath(configFile: string | undefined): string | undefined {
  if (configFile === undefined) return undefined;
  const configured = loadConfig(configFile).audit?.path;
  return configured !== undefined ? path.resolve(configured) : undefined;
}
