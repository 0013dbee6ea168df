/**
 * Hostile case 4: disk and inode fill. The work dir and /tmp are each a tmpfs of `diskMb` (RAM, charged to the run's
 * memory cgroup), the rest of the box is read-only, and RLIMIT_FSIZE caps each file: writing 10 GB fails inside
 * (ENOSPC or EFBIG), a million files fail inside or the run is stopped, and the host disk does not move.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import os from 'node:os';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const MiB = 1024 * 1024;
const TIMEOUT_MS = 4000;
/** fileSizeMb far above diskMb, so that only the tmpfs can stop a 10 GB write. */
const LIMITS = { timeoutMs: TIMEOUT_MS, diskMb: 8, fileSizeMb: 1024, memoryMb: 128 };
/** How much the host's temp file system may lose during a test (other processes write too). */
const HOST_SLACK_BYTES = 16 * MiB;

function freeBytes(): number {
  const s = statfsSync(os.tmpdir());
  return s.bavail * s.bsize;
}

void describe('hostile 04: disk / inode fill', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let free = 0;
  before(async () => {
    h = await hostileServer();
  });
  after(async () => {
    await h?.close();
  });

  const hostDiskUnchanged = (): void => {
    const lost = free - freeBytes();
    assert.ok(lost <= HOST_SLACK_BYTES, `the host temp file system lost ${Math.round(lost / MiB)} MiB`);
  };

  void test('dd 10 GB into the work dir: ENOSPC inside, host disk unchanged', async () => {
    free = freeBytes();
    const code = [
      'dd if=/dev/zero of=big bs=1M count=10240; echo "dd=$?"',
      'dd if=/dev/zero of=/tmp/big bs=1M count=10240; echo "tmp=$?"',
      // bwrap's own root and its /dev are tmpfs with no size limit: they must not take writes either; /dev/shm is
      // sized like /tmp.
      'dd if=/dev/zero of=/big bs=1M count=10240; echo "root=$?"',
      'dd if=/dev/zero of=/dev/big bs=1M count=10240; echo "dev=$?"',
      'dd if=/dev/zero of=/dev/shm/big bs=1M count=10240; echo "shm=$?"',
      'df -B1 --output=size /dev/shm | tail -n 1 | tr -d " "',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^dd=1$/m);
    assert.match(run.result.stdout, /^tmp=1$/m);
    assert.match(run.result.stdout, /^root=1$/m);
    assert.match(run.result.stdout, /^dev=1$/m);
    assert.match(run.result.stdout, /^shm=1$/m);
    assert.match(run.result.stdout, new RegExp(`^${LIMITS.diskMb * MiB}$`, 'm'), '/dev/shm is a tmpfs of diskMb');
    assert.match(run.result.stderr, /No space left on device/);
    assert.match(run.result.stderr, /'\/big': Read-only file system/);
    assert.match(run.result.stderr, /'\/dev\/big': Read-only file system/);
    hostDiskUnchanged();
  });

  void test('python writes 10 GB: OSError ENOSPC inside, host disk unchanged', async () => {
    free = freeBytes();
    const code = [
      'import errno',
      'try:',
      '    with open("big", "wb") as f:',
      '        for _ in range(10240):',
      '            f.write(b"\\0" * (1 << 20))',
      '            f.flush()',
      'except OSError as e:',
      '    print("failed", errno.errorcode[e.errno])',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^failed ENOSPC$/m);
    hostDiskUnchanged();
  });

  void test('python writes past fileSizeMb: EFBIG inside (RLIMIT_FSIZE; Python ignores SIGXFSZ)', async () => {
    free = freeBytes();
    const code = [
      'import errno',
      'try:',
      '    with open("/tmp/big", "wb") as f:',
      '        for _ in range(10240):',
      '            f.write(b"\\0" * (1 << 20))',
      '            f.flush()',
      'except OSError as e:',
      '    print("failed", errno.errorcode[e.errno])',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: { ...LIMITS, fileSizeMb: 2 } });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^failed EFBIG$/m);
    hostDiskUnchanged();
  });

  void test('dd past fileSizeMb: killed by SIGXFSZ inside', async () => {
    const run = await hostileRun(h, { language: 'shell', code: 'exec dd if=/dev/zero of=big bs=1M count=10240', limits: { ...LIMITS, fileSizeMb: 2 } });
    await assertContained(h, run, { status: 'runtime_error', limitMs: TIMEOUT_MS });
    assert.equal(run.result.signal, 'SIGXFSZ');
  });

  void test('python creates 1M files: fails inside, or the run is stopped; host disk unchanged', async () => {
    free = freeBytes();
    const code = [
      'import errno',
      'n = 0',
      'try:',
      '    for i in range(1_000_000):',
      '        open("f%d" % i, "w").close()',
      '        n += 1',
      'except OSError as e:',
      '    print("failed", n, errno.errorcode[e.errno])',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: ['ok', 'runtime_error', 'memory_limit', 'timeout'], limitMs: TIMEOUT_MS });
    if (run.result.status === 'ok') assert.match(run.result.stdout, /^failed \d+ E/m, 'a million files fitted');
    hostDiskUnchanged();
  });

  void test('bash touch loop in a subdirectory: fails inside, or the run is stopped', async () => {
    free = freeBytes();
    const code = 'mkdir d && cd d || exit 9\ni=0\nwhile : > "$i"; do i=$((i+1)); [ "$i" -ge 1000000 ] && break; done\necho "stopped at $i"\n';
    const run = await hostileRun(h, { language: 'shell', code, limits: { ...LIMITS, timeoutMs: 2000 } });
    await assertContained(h, run, { status: ['ok', 'runtime_error', 'memory_limit', 'timeout'], limitMs: 2000 });
    if (run.result.status === 'ok') assert.doesNotMatch(run.result.stdout, /stopped at 1000000/, 'a million files fitted');
    hostDiskUnchanged();
  });
});
