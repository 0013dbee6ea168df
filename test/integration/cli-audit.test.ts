/**
 * `sbx audit` end to end: the BUILT dist/cli.js, spawned as a real process, reading audit logs written with the
 * server's own AuditLog. No server is involved. Run `npm run build` first (`npm test` does).
 *
 *   node --import tsx --test test/integration/cli-audit.test.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AuditLog, auditRecord } from '../../server/audit';
import type { AuditRecord, ExecutionResult, RunStatus } from '../../server/protocol';
import { CLI, ROOT } from '../helpers/server';

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js ...args` from the repository root with `env` added to the environment. */
function sbx(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const limit = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(limit);
      resolve({ code, stdout, stderr });
    });
  });
}

function record(runId: string, status: RunStatus, extra: Partial<ExecutionResult> = {}): AuditRecord {
  const result: ExecutionResult = {
    runId,
    language: 'python',
    status,
    exitCode: status === 'ok' ? 0 : 1,
    signal: null,
    stdout: '',
    stderr: '',
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMs: 1234.4,
    cpuMs: 1000,
    peakMemoryBytes: 10 * 1024 * 1024,
    cached: false,
    workerId: 'w1',
    isolation: 'process',
    findings: [],
    ...extra,
  };
  return auditRecord(result, {
    code: `print(${JSON.stringify(runId)})`,
    limits: null,
    client: 'test (pid 1)',
    includeCode: false,
    now: new Date('2026-03-04T05:06:07.890Z'),
  });
}

/** No stack trace, no commander noise: exactly one line on stderr. */
function assertOneSentence(stderr: string): void {
  assert.equal(stderr.trimEnd().split('\n').length, 1, `one line on stderr, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

let dir: string;
let log: string;
let records: AuditRecord[];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sbx-cli-audit-'));
  log = path.join(dir, 'audit.jsonl');
  records = [
    record('run-ok', 'ok'),
    record('run-cached', 'ok', { cached: true, isolation: 'bwrap', durationMs: 0, peakMemoryBytes: 0 }),
    record('run-timeout', 'timeout', { durationMs: 5000 }),
  ];
  const writer = new AuditLog({ path: log });
  for (const r of records) writer.append(r);
  writer.close();
  // A crash in the middle of a write.
  appendFileSync(log, '{"ts":"2026-03-04T05:06:08Z","runId":"to');
});

after(() => rmSync(dir, { recursive: true, force: true }));

void describe('sbx audit', () => {
  void test('prints a table of the records and how many lines were unreadable', async () => {
    const out = await sbx(['audit', '--file', log]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, '');
    const lines = out.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^time\s+status\s+language\s+duration\s+peak\s+isolation\s+cached\s+sha256\s+runId$/);
    assert.equal(lines.length, 1 + records.length + 1);
    const cells = lines.slice(1, -1).map((l) => l.trim().split(/\s{2,}/));
    assert.deepEqual(cells[0], [
      '2026-03-04T05:06:07Z',
      'ok',
      'python',
      '1234 ms',
      '10.0 MiB',
      'process',
      'no',
      records[0].codeSha256.slice(0, 12),
      'run-ok',
    ]);
    assert.deepEqual(cells[1].slice(1, 7), ['ok', 'python', '0 ms', '0.0 MiB', 'bwrap', 'yes']);
    assert.deepEqual(cells.map((c) => c.at(-1)), ['run-ok', 'run-cached', 'run-timeout']);
    assert.equal(cells[2][1], 'timeout');
    assert.equal(lines.at(-1), '3 records (1 unreadable line skipped)');
  });

  void test('--json prints the records as a JSON array', async () => {
    const out = await sbx(['audit', '--file', log, '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), records);
    // The skipped line is still told, on stderr, so stdout stays pure JSON.
    assert.match(out.stderr, /1 unreadable line skipped/);
  });

  void test('--tail N keeps the last N records, reaching into rotated files', async () => {
    const rotated = path.join(dir, 'rotated', 'audit.jsonl');
    const many = Array.from({ length: 7 }, (_, i) => record(`r${i}`, 'ok'));
    const lineBytes = Buffer.byteLength(`${JSON.stringify(many[0])}\n`);
    const writer = new AuditLog({ path: rotated, maxBytes: lineBytes * 2, maxFiles: 5 });
    for (const r of many) writer.append(r);
    writer.close();

    const json = await sbx(['audit', '--file', rotated, '--tail', '4', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(
      (JSON.parse(json.stdout) as AuditRecord[]).map((r) => r.runId),
      ['r3', 'r4', 'r5', 'r6'],
    );
    const human = await sbx(['audit', '--file', rotated, '--tail', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /\br6\n1 record\n$/);
    assert.doesNotMatch(human.stdout, /\br5\b/);
  });

  void test('without --file it reads $XDG_STATE_HOME/sandbox-runner/audit.jsonl', async () => {
    const state = path.join(dir, 'state');
    const writer = new AuditLog({ path: path.join(state, 'sandbox-runner', 'audit.jsonl') });
    writer.append(record('from-xdg', 'ok'));
    writer.close();
    const out = await sbx(['audit', '--json'], { XDG_STATE_HOME: state });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual((JSON.parse(out.stdout) as AuditRecord[]).map((r) => r.runId), ['from-xdg']);
  });

  void test('takes audit.path from --config, and still refuses a bad config', async () => {
    const configured = path.join(dir, 'configured.jsonl');
    const writer = new AuditLog({ path: configured });
    writer.append(record('from-config', 'ok'));
    writer.close();
    const good = path.join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ poolSize: 2, audit: { path: configured } }));
    const out = await sbx(['--config', good, 'audit', '--json'], { XDG_STATE_HOME: path.join(dir, 'empty') });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual((JSON.parse(out.stdout) as AuditRecord[]).map((r) => r.runId), ['from-config']);

    // --file wins over the config.
    const file = await sbx(['--config', good, 'audit', '--file', log, '--json']);
    assert.equal((JSON.parse(file.stdout) as AuditRecord[]).length, records.length);

    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ poolSize: 'two', audit: { path: configured } }));
    const refused = await sbx(['--config', bad, 'audit']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^sbx: the config file ".*bad\.json" is not a valid ServerConfig: .*poolSize/);
    assertOneSentence(refused.stderr);
  });

  void test('no log yet: one sentence on stderr, exit 1', async () => {
    const missing = path.join(dir, 'nowhere', 'audit.jsonl');
    const out = await sbx(['audit', '--file', missing]);
    assert.equal(out.code, 1);
    assert.equal(out.stdout, '');
    assert.ok(out.stderr.startsWith(`sbx: no audit log at ${missing} yet: `), out.stderr);
    assertOneSentence(out.stderr);
  });

  void test('a log that cannot be read (a directory): one sentence, exit 1', async () => {
    const asDir = path.join(dir, 'a-directory');
    mkdirSync(asDir);
    const out = await sbx(['audit', '--file', asDir]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^sbx: cannot read the audit log .*a-directory: it is a directory\n$/);
  });

  for (const tail of ['0', '-3', 'abc', '1.5']) {
    void test(`--tail ${tail}: one sentence, exit 2`, async () => {
      const out = await sbx(['audit', '--file', log, '--tail', tail]);
      assert.equal(out.code, 2);
      assert.equal(out.stdout, '');
      assert.match(out.stderr, /^sbx: .*--tail must be a positive whole number/);
      assertOneSentence(out.stderr);
    });
  }
});
