/**
 * Hostile case 18, privilege escalation: the run is uid/gid 65534 in its worker's user namespace (on the host a uid
 * of its own, never root nor the server's: hostile case 23 checks that from the host), with no capabilities
 * (effective, permitted, bounding, ambient, inheritable all zero), no supplementary groups and no_new_privs set, so
 * setuid binaries don't elevate, setuid(0) fails, and a nested user namespace (`unshare -rm`) is refused by the
 * seccomp filter (were it not, it would give "root" over nothing: the host's files stay out of reach and read-only).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const SUITE_TIMEOUT_MS = 60_000;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 2 });
});
after(async () => {
  await h?.close();
});

/** Host files an escalation would go for. */
const TARGETS = ['/etc/shadow', '/etc/passwd', '/etc/sudoers', '/usr/bin/su', '/usr/bin/passwd', '/root'];

void describe('privilege escalation: unprivileged inside, every way up fails', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('id and /proc/self/status: uid 65534, no capabilities, NoNewPrivs', async () => {
    const run = await hostileRun(h, { language: 'shell', code: 'id\ngrep -E "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):" /proc/self/status\n', limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    const out = run.result.stdout;
    assert.match(out, /^uid=65534\(nobody\) gid=65534\(nogroup\) groups=65534\(nogroup\)$/m);
    assert.match(out, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(out, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.match(out, new RegExp(`^${cap}:\\s+0{16}$`, 'm'), `${cap} is not zero:\n${out}`);
    }
    assert.match(out, /^NoNewPrivs:\s+1$/m);
  });

  test('setuid binaries: su, sudo, passwd, mount all fail; the files stay as they were', async () => {
    const before = snapshot(TARGETS);
    const code = [
      'for b in su sudo passwd mount; do command -v $b >/dev/null && echo "have $b"; done',
      'su -c "id -u > /tmp/su-ran" root </dev/null; echo "su rc=$?"',
      'sudo -n id -u; echo "sudo rc=$?"',
      'echo x | passwd --stdin root; echo "passwd rc=$?"',
      'mount -t tmpfs none /tmp; echo "mount rc=$?"',
      'mount -o remount,rw /usr; echo "remount rc=$?"',
      'test -e /tmp/su-ran && echo "SU RAN: $(cat /tmp/su-ran)"',
      'ls -ln /usr/bin/su',
      'id -u',
      '',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs, unchanged: before });
    const out = run.result.stdout;
    assert.match(out, /^have su$/m, 'su is there to try');
    for (const b of ['su', 'passwd', 'mount', 'remount']) {
      const rc = new RegExp(`^${b} rc=(\\d+)$`, 'm').exec(out);
      assert.ok(rc, `${b} ran: ${out}`);
      assert.notEqual(rc[1], '0', `${b} succeeded:\n${out}\n${run.result.stderr}`);
    }
    assert.doesNotMatch(out, /^sudo rc=0$/m);
    assert.doesNotMatch(out, /SU RAN/);
    // The setuid bit is there, and its owner is the host's root: 0 in here when the server is root (which maps its
    // own uid to 0 in the worker's user namespace), unmapped (65534) otherwise. Neither is the run's uid.
    const owner = process.getuid?.() === 0 ? '0 0' : '65534 65534';
    assert.match(out, new RegExp(`^-rwsr-xr-x \\d+ ${owner} .* /usr/bin/su$`, 'm'));
    assert.match(out, /^65534\n$/m);
  });

  test('python: setuid(0), setgid(0), seteuid(0), setgroups([0]), setresuid fail', async () => {
    const code = [
      'import errno, os',
      'tries = [("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)), ("seteuid", lambda: os.seteuid(0)),',
      '        ("setgroups", lambda: os.setgroups([0])), ("setresuid", lambda: os.setresuid(0, 0, 0))]',
      'for name, f in tries:',
      '    try:',
      '        f()',
      '        print(name, "ESCALATED")',
      '    except OSError as e:',
      '        print(name, errno.errorcode[e.errno])',
      'print(os.getuid(), os.geteuid(), os.getgid(), os.getegid())',
      '',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    const out = run.result.stdout;
    assert.doesNotMatch(out, /ESCALATED/);
    // uid 0 has no mapping in the run's user namespace (EINVAL); setgroups is denied outright (EPERM).
    for (const name of ['setuid', 'setgid', 'seteuid', 'setgroups', 'setresuid']) {
      assert.match(out, new RegExp(`^${name} (EPERM|EINVAL)$`, 'm'), out);
    }
    assert.match(out, /^65534 65534 65534 65534$/m);
  });

  test('unshare -rm, unshare -U, a new user namespace from python: refused (the seccomp filter)', async () => {
    const before = snapshot(TARGETS);
    const code = [
      'unshare -rm true 2>&1; echo "unshare -rm rc=$?"',
      'unshare -U true 2>&1; echo "unshare -U rc=$?"',
      `python3 -c 'import ctypes, os; c = ctypes.CDLL(None, use_errno=True); print("python unshare", c.unshare(0x10000000), os.strerror(ctypes.get_errno()))'`,
      'touch /usr/escalated 2>/dev/null && echo "WROTE /usr" || echo "/usr read-only"',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits: { ...limits, timeoutMs: 5000 } });
    await assertContained(h, run, { status: 'ok', limitMs: 5000, unchanged: before, absent: ['/usr/escalated', '/etc/escalated'] });
    const out = run.result.stdout;
    assert.match(out, /unshare failed: Operation not permitted\nunshare -rm rc=1$/m, out);
    assert.match(out, /unshare failed: Operation not permitted\nunshare -U rc=1$/m, out);
    assert.match(out, /^python unshare -1 Operation not permitted$/m, out);
    assert.match(out, /^\/usr read-only$/m);
    assert.ok(!existsSync(path.join('/usr', 'escalated')));
  });
});
