/**
 * Hostile case 3: output floods. Bytes are counted per stream and the run is stopped at the cap: `output_limit`,
 * at most the cap kept (in bytes, invalid UTF-8 included), marked truncated, and stopped by the cap, not the timer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const CAP = 64 * 1024;
const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS, outputBytes: CAP };

const FLOODS: { name: string; language: string; code: string; stream?: 'stdout' | 'stderr' }[] = [
  { name: 'yes', language: 'shell', code: 'yes' },
  { name: 'yes >&2 (stderr)', language: 'shell', code: 'yes >&2', stream: 'stderr' },
  { name: 'python print loop', language: 'python', code: 'while True:\n    print("y" * 50)\n' },
  { name: 'python one endless line, no newline', language: 'python', code: 'import sys\nwhile True:\n    sys.stdout.write("z" * 1000)\n' },
  { name: 'python invalid UTF-8 bytes', language: 'python', code: 'import sys\nwhile True:\n    sys.stdout.buffer.write(b"\\xff\\xfe\\xc3" * 1000)\n' },
  { name: 'C invalid UTF-8 bytes', language: 'c', code: '#include <stdio.h>\nint main(void) { for (;;) fputs("\\xff\\xfe\\xe2\\x82", stdout); }\n' },
  { name: 'javascript one endless line (writeSync)', language: 'javascript', code: 'const fs = require("fs");\nfor (;;) fs.writeSync(1, "y".repeat(100));\n' },
  {
    name: 'javascript process.stdout.write, draining',
    language: 'javascript',
    code: 'const line = "y".repeat(1000) + "\\n";\n(async () => { for (;;) await new Promise((r) => process.stdout.write(line, r)); })();\n',
  },
];

void describe('hostile 03: output flood', { timeout: 90_000 }, () => {
  let h: HostileServer;
  before(async () => {
    h = await hostileServer();
  });
  after(async () => {
    await h?.close();
  });

  for (const flood of FLOODS) {
    void test(`${flood.name}: output_limit, at most the cap, truncated, stopped by the cap`, async () => {
      const stream = flood.stream ?? 'stdout';
      const run = await hostileRun(h, { language: flood.language, code: flood.code, limits: LIMITS });
      await assertContained(h, run, { status: 'output_limit', limitMs: TIMEOUT_MS });
      const r = run.result;
      const kept = stream === 'stdout' ? r.stdout : r.stderr;
      assert.ok(Buffer.byteLength(kept) <= CAP, `${Buffer.byteLength(kept)} bytes of ${stream} kept, cap ${CAP}`);
      assert.ok(Buffer.byteLength(kept) >= CAP / 2, `only ${Buffer.byteLength(kept)} bytes of ${stream} kept`);
      assert.equal(stream === 'stdout' ? r.stdoutTruncated : r.stderrTruncated, true, `${stream} not marked truncated`);
      assert.ok(r.durationMs < TIMEOUT_MS, `ran ${r.durationMs} ms: the timer stopped it, not the cap`);
      // What was streamed live is no more than what was kept.
      assert.ok(h.server.outputOf(r.runId, stream).length <= CAP, 'more was streamed than the cap');
    });
  }
});
