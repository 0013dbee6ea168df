import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs, { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AuditLog, auditRecord, defaultAuditPath, readAudit } from '../../server/audit';
import type { AuditRecord, ExecutionResult, Limits } from '../../server/protocol';
import { sampleResult } from '../helpers/results';

const LIMITS: Limits = {
  timeoutMs: 5000,
  cpuMs: 5000,
  memoryMb: 256,
  outputBytes: 1 << 20,
  processes: 64,
  fileSizeMb: 16,
  openFiles: 256,
  diskMb: 64,
};

function result(overrides: Partial<ExecutionResult> = {}): ExecutionResult {
  return sampleResult(overrides);
}

function record(runId: string, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    ...auditRecord(result({ runId }), {
      code: `print(${JSON.stringify(runId)})`,
      limits: LIMITS,
      client: 'test 1.0 (pid 1)',
      includeCode: false,
      now: new Date('2026-01-02T03:04:05.000Z'),
    }),
    ...overrides,
  };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sbx-audit-'));
  file = path.join(dir, 'state', 'sandbox-runner', 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

void describe('defaultAuditPath', () => {
  void it('uses $XDG_STATE_HOME when it is set and absolute', () => {
    assert.equal(defaultAuditPath({ XDG_STATE_HOME: '/x/state' }, '/home/u'), '/x/state/sandbox-runner/audit.jsonl');
  });
  void it('falls back to ~/.local/state without it, or with a relative one', () => {
    assert.equal(defaultAuditPath({}, '/home/u'), '/home/u/.local/state/sandbox-runner/audit.jsonl');
    assert.equal(defaultAuditPath({ XDG_STATE_HOME: 'rel' }, '/home/u'), '/home/u/.local/state/sandbox-runner/audit.jsonl');
  });
});

void describe('AuditLog', () => {
  void it('appends records that read back in order, creating the directory 0700 and the file 0600', () => {
    const log = new AuditLog({ path: file });
    const records = [record('a'), record('b'), record('c')];
    for (const r of records) log.append(r);
    log.close();
    assert.deepEqual(readAudit(file), { records, skipped: 0 });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
  });

  void it('writes each record as one whole line in one write (the file is complete JSON Lines after every append)', () => {
    const log = new AuditLog({ path: file });
    // Count the write(2)s an append makes: the named export audit.ts imported follows fs once synced.
    const realWriteSync = fs.writeSync;
    const writes: string[] = [];
    fs.writeSync = ((fd: number, data: Buffer) => {
      writes.push(Buffer.from(data).toString('utf8'));
      return realWriteSync(fd, data);
    }) as typeof fs.writeSync;
    syncBuiltinESMExports();
    try {
      for (let i = 0; i < 5; i++) {
        writes.length = 0;
        log.append(record(`r${i}`));
        assert.deepEqual(writes, [`${JSON.stringify(record(`r${i}`))}\n`], 'one write of the whole line');
      }
    } finally {
      fs.writeSync = realWriteSync;
      syncBuiltinESMExports();
    }
    log.close();
    rmSync(file);
    const again = new AuditLog({ path: file });
    for (let i = 0; i < 5; i++) {
      again.append(record(`r${i}`));
      const text = readFileSync(file, 'utf8');
      assert.ok(text.endsWith('\n'), `after append ${i} the file ends with a newline`);
      const lines = text.trimEnd().split('\n');
      assert.equal(lines.length, i + 1);
      assert.equal((JSON.parse(lines[i]) as AuditRecord).runId, `r${i}`);
    }
    again.close();
  });

  void it('appends to an existing log instead of truncating it', () => {
    const first = new AuditLog({ path: file });
    first.append(record('old'));
    first.close();
    const second = new AuditLog({ path: file });
    second.append(record('new'));
    second.close();
    assert.deepEqual(
      readAudit(file).records.map((r) => r.runId),
      ['old', 'new'],
    );
  });

  void it('rotates before passing maxBytes, keeps maxFiles rotated files and drops the oldest', () => {
    const lineBytes = Buffer.byteLength(`${JSON.stringify(record('r00'))}\n`);
    // Two records fit in a file, a third would pass maxBytes.
    const log = new AuditLog({ path: file, maxBytes: lineBytes * 2 + 1, maxFiles: 2 });
    for (let i = 0; i < 9; i++) log.append(record(`r0${i}`));
    log.close();
    const ids = (f: string) =>
      readFileSync(f, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as AuditRecord).runId);
    assert.deepEqual(ids(file), ['r08']);
    assert.deepEqual(ids(`${file}.1`), ['r06', 'r07']);
    assert.deepEqual(ids(`${file}.2`), ['r04', 'r05']);
    assert.equal(existsSync(`${file}.3`), false, 'no more than maxFiles rotated files');
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(statSync(f).size <= lineBytes * 2 + 1);
  });

  void it('puts a record bigger than maxBytes in a file of its own rather than losing it', () => {
    const log = new AuditLog({ path: file, maxBytes: 10, maxFiles: 1 });
    log.append(record('big1'));
    log.append(record('big2'));
    log.close();
    assert.deepEqual(readAudit(file).records.map((r) => r.runId), ['big2']);
    assert.deepEqual(readAudit(`${file}.1`).records.map((r) => r.runId), ['big1']);
  });

  void it('starts a new line after a torn last line, so only the torn record is lost', () => {
    const log = new AuditLog({ path: file });
    log.append(record('a'));
    log.close();
    // A crash in the middle of the next write.
    appendFileSync(file, JSON.stringify(record('torn')).slice(0, 40));
    const again = new AuditLog({ path: file });
    again.append(record('b'));
    again.close();
    const read = readAudit(file);
    assert.deepEqual(read.records.map((r) => r.runId), ['a', 'b']);
    assert.equal(read.skipped, 1);
  });

  void it('drops code unless includeCode is on', () => {
    const withCode = record('c', { code: 'print(1)' });
    const off = new AuditLog({ path: file });
    off.append(withCode);
    off.close();
    const on = new AuditLog({ path: file, includeCode: true });
    on.append(withCode);
    on.close();
    const [first, second] = readAudit(file).records;
    assert.equal('code' in first, false);
    assert.equal(first.codeSha256, withCode.codeSha256);
    assert.equal(second.code, 'print(1)');
  });

  void it('reports an unwritable path once through onError, never throws, and recovers when it can write', () => {
    // A path under a regular file fails even for root (ENOTDIR), unlike a chmod.
    const blocker = path.join(dir, 'blocker');
    writeFileSync(blocker, 'not a directory');
    const target = path.join(blocker, 'audit.jsonl');
    const errors: string[] = [];
    const log = new AuditLog({ path: target, onError: (m) => errors.push(m) });
    assert.doesNotThrow(() => {
      for (let i = 0; i < 3; i++) log.append(record(`x${i}`));
    });
    assert.equal(errors.length, 1);
    assert.match(errors[0], /audit log/);
    assert.ok(errors[0].includes(target));

    // The log keeps trying: once the path is writable, records land there.
    rmSync(blocker);
    log.append(record('later'));
    log.close();
    assert.deepEqual(readAudit(target).records.map((r) => r.runId), ['later']);
    assert.equal(errors.length, 1);
  });

  void it('survives an onError that throws', () => {
    const blocker = path.join(dir, 'blocker');
    writeFileSync(blocker, '');
    const log = new AuditLog({
      path: path.join(blocker, 'audit.jsonl'),
      onError: () => {
        throw new Error('reporter broke');
      },
    });
    assert.doesNotThrow(() => log.append(record('x')));
  });

  void it('follows a rotation made by another writer of the same file', () => {
    const log = new AuditLog({ path: file });
    log.append(record('a'));
    // Another server sharing the log rotated it.
    const other = new AuditLog({ path: file, maxBytes: 1 });
    other.append(record('b'));
    other.close();
    log.append(record('c'));
    log.close();
    assert.deepEqual(readAudit(file).records.map((r) => r.runId), ['b', 'c']);
    assert.deepEqual(readAudit(`${file}.1`).records.map((r) => r.runId), ['a']);
  });

  void it('ignores appends after close', () => {
    const log = new AuditLog({ path: file });
    log.append(record('a'));
    log.close();
    log.append(record('b'));
    assert.deepEqual(readAudit(file).records.map((r) => r.runId), ['a']);
  });
});

void describe('auditRecord', () => {
  const now = new Date('2026-05-06T07:08:09.123Z');

  void it('fills every field from the result and the context', () => {
    const r = result({
      runId: 'run-9',
      language: 'c',
      status: 'runtime_error',
      durationMs: 42,
      cpuMs: 40,
      peakMemoryBytes: 5_000_000,
      cached: true,
      isolation: 'bwrap',
      findings: [
        { ruleId: 'network', message: 'opens a socket', line: 3, severity: 'warning' },
        { ruleId: 'subprocess', message: 'runs a shell', line: 7, severity: 'error' },
      ],
    });
    const code = 'int main(void) { return 1; }\n';
    assert.deepEqual(auditRecord(r, { code, limits: LIMITS, client: 'sbx 0.1.0 (pid 7)', includeCode: false, now }), {
      ts: '2026-05-06T07:08:09.123Z',
      runId: 'run-9',
      client: 'sbx 0.1.0 (pid 7)',
      language: 'c',
      codeSha256: sha256(code),
      limits: LIMITS,
      isolation: 'bwrap',
      status: 'runtime_error',
      durationMs: 42,
      cpuMs: 40,
      peakMemoryBytes: 5_000_000,
      cached: true,
      findings: ['network', 'subprocess'],
    });
  });

  void it('hashes the code with sha256 (of "" when there is none), non-ASCII text as UTF-8', () => {
    const code = 'print("héllo ✓")';
    const rec = auditRecord(result(), { code, limits: null, client: 'c', includeCode: false, now });
    assert.equal(rec.codeSha256, createHash('sha256').update(Buffer.from(code, 'utf8')).digest('hex'));
    const none = auditRecord(result(), { code: null, limits: null, client: 'c', includeCode: true, now });
    assert.equal(none.codeSha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal('code' in none, false);
    assert.equal(none.limits, null);
  });

  void it('keeps the code only with includeCode', () => {
    const ctx = { code: 'echo hi', limits: LIMITS, client: 'c', now };
    assert.equal(auditRecord(result(), { ...ctx, includeCode: true }).code, 'echo hi');
    assert.equal('code' in auditRecord(result(), { ...ctx, includeCode: false }), false);
  });

  void it('keeps the message, cut to 500 characters', () => {
    const ctx = { code: '', limits: LIMITS, client: 'c', includeCode: false, now };
    assert.equal(auditRecord(result({ message: 'queue full' }), ctx).message, 'queue full');
    const long = auditRecord(result({ message: 'x'.repeat(2000) }), ctx).message!;
    assert.equal(long.length, 500);
    assert.ok(long.startsWith('xxx'));
    assert.equal('message' in auditRecord(result(), ctx), false);
  });

  void it('uses the current time without `now`', () => {
    const before = Date.now();
    const rec = auditRecord(result(), { code: '', limits: null, client: 'c', includeCode: false });
    const ts = Date.parse(rec.ts);
    assert.ok(ts >= before && ts <= Date.now());
  });
});

void describe('readAudit', () => {
  function writeLog(f: string, ids: string[], extra = ''): void {
    writeFileSync(f, ids.map((id) => `${JSON.stringify(record(id))}\n`).join('') + extra);
  }

  void it('skips and counts lines that are not records: a torn last line, garbage, a non-object', () => {
    const f = path.join(dir, 'audit.jsonl');
    writeLog(f, ['a', 'b'], 'not json\n42\n\n{"ts":"2026-01-01T00:00:00Z","runId":"c","sta');
    const read = readAudit(f);
    assert.deepEqual(read.records.map((r) => r.runId), ['a', 'b']);
    assert.equal(read.skipped, 3);
  });

  void it('reads only the current file without tail', () => {
    const f = path.join(dir, 'audit.jsonl');
    writeLog(`${f}.1`, ['old']);
    writeLog(f, ['new']);
    assert.deepEqual(readAudit(f).records.map((r) => r.runId), ['new']);
  });

  void it('with tail, reaches back into the rotated files, oldest first, only as far as needed', () => {
    const f = path.join(dir, 'audit.jsonl');
    writeLog(`${f}.3`, ['r1', 'r2']);
    writeLog(`${f}.2`, ['r3', 'r4']);
    writeLog(`${f}.1`, ['r5', 'r6'], 'torn');
    writeLog(f, ['r7', 'r8']);
    const ids = (tail: number) => readAudit(f, { tail }).records.map((r) => r.runId);
    assert.deepEqual(ids(1), ['r8']);
    assert.deepEqual(ids(2), ['r7', 'r8']);
    assert.deepEqual(ids(3), ['r6', 'r7', 'r8']);
    assert.deepEqual(ids(5), ['r4', 'r5', 'r6', 'r7', 'r8']);
    assert.deepEqual(ids(100), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8']);
    // .1 was only read when the tail needed it.
    assert.equal(readAudit(f, { tail: 2 }).skipped, 0);
    assert.equal(readAudit(f, { tail: 3 }).skipped, 1);
  });

  void it('reads what AuditLog rotated, across files', () => {
    const lineBytes = Buffer.byteLength(`${JSON.stringify(record('r00'))}\n`);
    const log = new AuditLog({ path: file, maxBytes: lineBytes * 3, maxFiles: 3 });
    for (let i = 0; i < 10; i++) log.append(record(`r0${i}`));
    log.close();
    assert.deepEqual(
      readAudit(file, { tail: 7 }).records.map((r) => r.runId),
      ['r03', 'r04', 'r05', 'r06', 'r07', 'r08', 'r09'],
    );
  });

  void it('throws ENOENT when there is no log yet', () => {
    assert.throws(() => readAudit(path.join(dir, 'nothing.jsonl')), { code: 'ENOENT' });
  });
});
