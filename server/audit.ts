/**
 * The audit log: one JSON line per run (cached or not), append-only, rotated by size. It is written on the server's
 * main thread once per run, so everything here is synchronous, small and never throws into the caller: losing an
 * audit line must never cost a run its result.
 *
 * Durability: each record is ONE write(2) of the whole line on an O_APPEND descriptor, so a crash loses at most the
 * record being written (a torn last line, which readAudit skips and counts), and lines of several servers sharing
 * the file (a VS Code window and an `sbx run`) never interleave.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord, ExecutionResult, Limits } from './protocol';

export const DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_AUDIT_MAX_FILES = 3;
/** Longest `message` a record keeps: a compiler's whole output does not belong in an audit line. */
export const AUDIT_MESSAGE_MAX_CHARS = 500;

/** `$XDG_STATE_HOME/sandbox-runner/audit.jsonl`, else `~/.local/state/sandbox-runner/audit.jsonl`. */
export function defaultAuditPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  // The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
  const xdg = env.XDG_STATE_HOME;
  const state = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(home, '.local', 'state');
  return path.join(state, 'sandbox-runner', 'audit.jsonl');
}

export interface AuditLogOptions {
  path: string;
  /** Rotate before the file would pass this size (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files kept: `audit.jsonl.1` (newest) … `audit.jsonl.<maxFiles>` (default 3; 0 keeps none). */
  maxFiles?: number;
  /** Keep records' `code` (default false: a record's `code` is dropped, only its sha256 stays). */
  includeCode?: boolean;
  /** Told once when writing starts failing (and again only after a write succeeded in between). */
  onError?: (message: string) => void;
}

const OPEN_FLAGS = constants.O_APPEND | constants.O_CREAT | constants.O_WRONLY;

export class AuditLog {
  readonly path: string;
  readonly maxBytes: number;
  readonly maxFiles: number;
  readonly includeCode: boolean;
  private readonly onError: ((message: string) => void) | undefined;
  private fd: number | null = null;
  /** Identity of the file `fd` is open on: another process may rotate it away under us. */
  private ino = 0;
  private dev = 0;
  /** The file ends in a torn line (a crash, a short write): the next record starts on a line of its own. */
  private needsNewline = false;
  private failing = false;
  private closed = false;

  constructor(options: AuditLogOptions) {
    this.path = options.path;
    this.maxBytes = options.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES;
    this.maxFiles = Math.max(0, Math.floor(options.maxFiles ?? DEFAULT_AUDIT_MAX_FILES));
    this.includeCode = options.includeCode === true;
    this.onError = options.onError;
  }

  /** Writes one record as one line; never throws (a failure goes to onError and the next append tries again). */
  append(record: AuditRecord): void {
    if (this.closed) return;
    try {
      const kept = this.includeCode || record.code === undefined ? record : withoutCode(record);
      const line = `${JSON.stringify(kept)}\n`;
      const bytes = Buffer.byteLength(line);
      let size = this.currentSize();
      // A line bigger than maxBytes on its own still goes into a fresh file rather than being lost.
      if (size > 0 && size + bytes > this.maxBytes) {
        this.rotate();
        size = this.currentSize();
      }
      const data = Buffer.from(this.needsNewline ? `\n${line}` : line);
      const written = writeSync(this.fd!, data);
      if (written !== data.length) {
        // Disk full mid-line: the line is torn; the next one must not be glued to it.
        this.needsNewline = true;
        throw new Error(`short write (${written} of ${data.length} bytes)`);
      }
      this.needsNewline = false;
      this.failing = false;
    } catch (err) {
      this.fail(err);
    }
  }

  close(): void {
    this.closed = true;
    this.closeFd();
  }

  /** The size of the file at `path`, (re)opening it when it is not the one `fd` holds. */
  private currentSize(): number {
    if (this.fd !== null) {
      try {
        // A stat per record (~1 µs) keeps the size right with other writers and notices their rotations.
        const st = statSync(this.path);
        if (st.ino === this.ino && st.dev === this.dev) return st.size;
      } catch {
        // Gone (rotated or deleted by someone else): reopen below.
      }
      this.closeFd();
    }
    return this.open();
  }

  private open(): number {
    mkdirSync(path.dirname(this.path), { recursive: true, mode: 0o700 });
    const fd = openSync(this.path, OPEN_FLAGS, 0o600);
    const st = fstatSync(fd);
    this.fd = fd;
    this.ino = st.ino;
    this.dev = st.dev;
    this.needsNewline = st.size > 0 && !endsWithNewline(this.path, st.size);
    return st.size;
  }

  private rotate(): void {
    this.closeFd();
    const name = (n: number) => `${this.path}.${n}`;
    if (this.maxFiles === 0) {
      unlinkIfThere(this.path);
      return;
    }
    // Oldest first, so each rename lands on a name already moved away; `.maxFiles` is overwritten (dropped).
    for (let n = this.maxFiles - 1; n >= 1; n--) renameIfThere(name(n), name(n + 1));
    renameIfThere(this.path, name(1));
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // Nothing left to do with a descriptor that will not close.
    }
    this.fd = null;
  }

  private fail(err: unknown): void {
    // Reopen next time: the directory may come back, the disk may get space.
    this.closeFd();
    if (this.failing) return;
    this.failing = true;
    const why = err instanceof Error ? err.message : String(err);
    try {
      this.onError?.(`cannot write the audit log ${this.path}: ${why}`);
    } catch {
      // The caller's reporter failing is not the caller's run failing.
    }
  }
}

function withoutCode(record: AuditRecord): AuditRecord {
  const copy = { ...record };
  delete copy.code;
  return copy;
}

function endsWithNewline(file: string, size: number): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY);
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, size - 1);
    return byte[0] === 0x0a;
  } catch {
    return true;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function renameIfThere(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function unlinkIfThere(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export interface AuditContext {
  /** The program text; null when there was none to hash (a request refused before its code was read). */
  code: string | null;
  limits: Limits | null;
  /** `name version (pid N)` of the client that asked. */
  client: string;
  includeCode: boolean;
  now?: Date;
}

/** The audit line for one finished run. */
export function auditRecord(result: ExecutionResult, ctx: AuditContext): AuditRecord {
  const record: AuditRecord = {
    ts: (ctx.now ?? new Date()).toISOString(),
    runId: result.runId,
    client: ctx.client,
    language: result.language,
    codeSha256: createHash('sha256')
      .update(ctx.code ?? '')
      .digest('hex'),
    limits: ctx.limits,
    isolation: result.isolation,
    status: result.status,
    durationMs: result.durationMs,
    cpuMs: result.cpuMs,
    peakMemoryBytes: result.peakMemoryBytes,
    cached: result.cached,
    // `?? []`: results made before the scan existed (an old cache entry) have no findings.
    findings: (result.findings ?? []).map((f) => f.ruleId),
  };
  if (ctx.includeCode && ctx.code !== null) record.code = ctx.code;
  if (result.message !== undefined) record.message = truncate(result.message, AUDIT_MESSAGE_MAX_CHARS);
  return record;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export interface AuditReadResult {
  /** Oldest first. */
  records: AuditRecord[];
  /** Non-empty lines that are not a record (a torn last line after a crash). */
  skipped: number;
}

/**
 * Reads the log at `file`: the current file only, or, with `tail`, its last `tail` records, reaching back into the
 * rotated files (`.1`, `.2`, …) while the newer ones hold fewer. Throws the current file's read error (ENOENT: no
 * log yet); a missing rotated file just ends the search.
 */
export function readAudit(file: string, opts: { tail?: number } = {}): AuditReadResult {
  const tail = opts.tail;
  const first = parseLines(readFileSync(file, 'utf8'));
  const chunks = [first.records];
  let skipped = first.skipped;
  let count = first.records.length;
  for (let n = 1; tail !== undefined && count < tail; n++) {
    let text: string;
    try {
      text = readFileSync(`${file}.${n}`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw err;
    }
    const older = parseLines(text);
    chunks.unshift(older.records);
    skipped += older.skipped;
    count += older.records.length;
  }
  const records = chunks.flat();
  return { records: tail !== undefined ? records.slice(Math.max(0, records.length - tail)) : records, skipped };
}

function parseLines(text: string): AuditReadResult {
  const records: AuditRecord[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (isRecordLike(value)) records.push(value);
    else skipped++;
  }
  return { records, skipped };
}

function isRecordLike(value: unknown): value is AuditRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.ts === 'string' && typeof v.runId === 'string' && typeof v.status === 'string';
}
