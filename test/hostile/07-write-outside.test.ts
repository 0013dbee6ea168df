/**
 * Hostile case 7: writing outside the work dir. Everything but /work and /tmp (each a private tmpfs) is read-only
 * or absent in the box, bwrap's own root included: writes to /usr/x, ../x, /x, /etc/x and a host /tmp path fail
 * inside, and the host paths are absent or unchanged afterwards.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };

void describe('hostile 07: write outside the work dir', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let canary: string;
  let fresh: string;
  let targets: string[];
  before(async () => {
    h = await hostileServer();
    canary = path.join(h.dir, 'canary.txt');
    writeFileSync(canary, 'original\n');
    fresh = path.join(h.dir, 'new.txt');
    targets = ['/usr/x', '../x', '/x', '/etc/x', '/run/x', canary, fresh];
  });
  after(async () => {
    await h?.close();
  });

  const hostPaths = (): string[] => ['/usr/x', '/x', '/etc/x', '/run/x', fresh, '/work/x'];

  void test('shell: every write outside fails; host paths absent or unchanged', async () => {
    const code = [
      ...targets.map((t) => `if echo pwned > '${t}'; then echo "WROTE ${t}"; else echo "denied ${t}"; fi`),
      // Made on purpose, the host dir exists in the box only inside its own /tmp tmpfs: a write there stays there.
      `mkdir -p '${h.dir}' && echo pwned > '${canary}' && echo pwned > '${fresh}' && echo "box-only"`,
    ].join('\n');
    const unchanged = snapshot([canary, '/usr', '/etc/passwd']);
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged, absent: hostPaths() });
    assert.match(run.result.stdout, /^box-only$/m);
    for (const t of targets) assert.match(run.result.stdout, new RegExp(`^denied ${t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), run.result.stdout);
  });

  void test('python: open(..., "w") outside fails with EROFS, EACCES or ENOENT', async () => {
    const code = [
      'import errno, os',
      'for t in TARGETS:',
      '    try:',
      '        with open(t, "w") as f:',
      '            f.write("pwned")',
      '        print("WROTE", t)',
      '    except OSError as e:',
      '        print("denied", t, errno.errorcode[e.errno])',
    ]
      .join('\n')
      .replace('TARGETS', JSON.stringify(targets));
    const unchanged = snapshot([canary, '/usr', '/etc/passwd']);
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged, absent: hostPaths() });
    const lines = run.result.stdout.trim().split('\n');
    assert.equal(lines.length, targets.length, run.result.stdout);
    for (const line of lines) assert.match(line, /^denied \S+ (EROFS|EACCES|ENOENT|EPERM)$/);
  });

  void test('C: open(O_CREAT) outside fails', async () => {
    const list = targets.map((t) => JSON.stringify(t)).join(', ');
    const code = [
      '#include <errno.h>',
      '#include <fcntl.h>',
      '#include <stdio.h>',
      '#include <string.h>',
      '#include <unistd.h>',
      'int main(void) {',
      `  const char *targets[] = { ${list} };`,
      '  for (unsigned i = 0; i < sizeof targets / sizeof *targets; i++) {',
      '    int fd = open(targets[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);',
      '    if (fd >= 0 && write(fd, "pwned", 5) == 5) printf("WROTE %s\\n", targets[i]);',
      '    else printf("denied %s %s\\n", targets[i], strerror(errno));',
      '  }',
      '  return 0;',
      '}',
    ].join('\n');
    const unchanged = snapshot([canary, '/usr', '/etc/passwd']);
    const run = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged, absent: hostPaths() });
    assert.doesNotMatch(run.result.stdout, /WROTE/);
    assert.equal(run.result.stdout.trim().split('\n').length, targets.length);
  });
});
