/**
 * Hostile case 8: symlink and hardlink tricks. Links made in the box point into the box (its own /etc/passwd, no
 * host file), hardlinks to bound files cross devices and fail, writes through links fail; where the server itself
 * reads a file (a program given by path, the binary a compiler wrote) it never follows a link: a link is refused,
 * not its target's content returned; and the targets stay untouched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };
const SECRET = 'canary-secret-4b1d';

void describe('hostile 08: symlink / hardlink tricks', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let canary: string;
  before(async () => {
    h = await hostileServer();
    canary = path.join(h.dir, 'canary.txt');
    writeFileSync(canary, `print("${SECRET}")\n`);
  });
  after(async () => {
    await h?.close();
  });

  void test('shell: ln -s /etc/passwd out.txt reads the box passwd; hardlinks fail; writes through links fail', async () => {
    const code = [
      'ln -s /etc/passwd out.txt && echo "link $(readlink out.txt)"',
      'grep -c "^root:" out.txt',
      'ln /etc/passwd hard.txt 2>/dev/null && echo "HARDLINKED passwd" || echo "hardlink passwd failed"',
      'ln /usr/bin/bash hard-bash 2>/dev/null && echo "HARDLINKED bash" || echo "hardlink bash failed"',
      'echo pwned >> out.txt 2>/dev/null && echo "WROTE passwd" || echo "write passwd failed"',
      `ln -s '${canary}' c.txt && { echo pwned > c.txt 2>/dev/null && echo "WROTE canary" || echo "write canary failed"; }`,
      `cat '${canary}' 2>/dev/null || echo "canary not visible"`,
    ].join('\n');
    const unchanged = snapshot(['/etc/passwd', '/usr/bin/bash', canary]);
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: ['ok', 'runtime_error'], limitMs: TIMEOUT_MS, unchanged });
    const out = run.result.stdout;
    assert.match(out, /^link \/etc\/passwd$/m);
    assert.match(out, /^0$/m, "the link reads the host's passwd (a root: line)");
    assert.match(out, /^hardlink passwd failed$/m);
    assert.match(out, /^hardlink bash failed$/m);
    assert.match(out, /^write passwd failed$/m);
    assert.match(out, /^write canary failed$/m);
    assert.match(out, /^canary not visible$/m);
    assert.ok(!out.includes(SECRET));
  });

  void test('python: os.symlink to /etc/shadow and os.link to a bound file fail to reach the host', async () => {
    const code = [
      'import errno, os',
      'os.symlink("/etc/shadow", "out.txt")',
      'try:',
      '    open("out.txt").read(); print("READ shadow")',
      'except OSError as e:',
      '    print("read shadow failed", errno.errorcode[e.errno])',
      'for src in ("/etc/passwd", "/usr/bin/env", "/etc/sbx-launch"):',
      '    try:',
      '        os.link(src, "hard"); print("HARDLINKED", src); os.unlink("hard")',
      '    except OSError as e:',
      '        print("hardlink failed", src, errno.errorcode[e.errno])',
    ].join('\n');
    const unchanged = snapshot(['/etc/passwd', '/usr/bin/env']);
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged });
    assert.match(run.result.stdout, /^read shadow failed ENOENT$/m);
    assert.doesNotMatch(run.result.stdout, /READ|HARDLINKED/);
    assert.equal(run.result.stdout.match(/^hardlink failed/gm)?.length, 3);
  });

  void test('a program given by path that is a symlink: rejected, the target is not read', async () => {
    const link = path.join(h.dir, 'main.py');
    symlinkSync(canary, link);
    const unchanged = snapshot([canary]);
    const run = await hostileRun(h, { language: 'python', file: link, limits: LIMITS });
    await assertContained(h, run, { status: 'rejected', limitMs: TIMEOUT_MS, unchanged });
    assert.match(run.result.message ?? '', /not a regular file/);
    assert.ok(!run.result.stdout.includes(SECRET) && !(run.result.message ?? '').includes(SECRET), 'the target was run');
    const shadow = path.join(h.dir, 'shadow.py');
    symlinkSync('/etc/shadow', shadow);
    const run2 = await hostileRun(h, { language: 'python', file: shadow, limits: LIMITS });
    await assertContained(h, run2, { status: 'rejected', limitMs: TIMEOUT_MS });
    assert.match(run2.result.message ?? '', /not a regular file/);
  });

  void test('C: the program cannot replace its own binary main with a link; the cached binary stays intact', async () => {
    const code = [
      '#include <errno.h>',
      '#include <stdio.h>',
      '#include <string.h>',
      '#include <unistd.h>',
      'int main(void) {',
      '  if (unlink("main") == 0) puts("UNLINKED main"); else printf("unlink main failed %s\\n", strerror(errno));',
      '  if (symlink("/etc/passwd", "main") == 0) puts("LINKED main"); else printf("symlink main failed %s\\n", strerror(errno));',
      '  if (symlink("/etc/passwd", "out.txt") == 0) puts("linked out.txt");',
      '  puts("binary ran");',
      '  return 0;',
      '}',
    ].join('\n');
    const run = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged: snapshot(['/etc/passwd']) });
    assert.doesNotMatch(run.result.stdout, /UNLINKED|LINKED main/);
    // The same source again: the server's kept binary (server/engine.ts copyRegularFile) still runs, not a link.
    const again = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, again, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(again.result.stdout, /^binary ran$/m);
  });
});
