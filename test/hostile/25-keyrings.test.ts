/**
 * Hostile case 25, kernel keyrings. Keyrings live outside every namespace a sandbox has: as host root, a run could
 * link, read and write root's user keyring (`_uid.0`). The seccomp filter refuses keyctl, add_key and request_key
 * outright (EPERM), /proc/keys and /proc/key-users are covered, and the run is not root on the host anyway. Whatever
 * the run tries, no key with its name appears anywhere the host can see.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const LIMITS = { timeoutMs: 5000, memoryMb: 128, processes: 32 };

/** x86-64 and aarch64 numbers of the three keyring calls. */
const KEY_SYSCALLS = process.arch === 'arm64' ? { add_key: 217, request_key: 218, keyctl: 219 } : { add_key: 248, request_key: 249, keyctl: 250 };

const PYTHON = `import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
N = json.loads(sys.argv[1])
name = sys.argv[2].encode()
USER_KEYRING, SESSION_KEYRING = -4, -3
def call(label, *args):
    r = libc.syscall(*args)
    print(label, "OK %d" % r if r >= 0 else os.strerror(ctypes.get_errno()))
call("get user keyring", N["keyctl"], 0, USER_KEYRING, 1)
call("join _uid.0", N["keyctl"], 1, b"_uid.0")
call("add_key", N["add_key"], b"user", name, b"secret", 6, USER_KEYRING)
call("add_key session", N["add_key"], b"user", name, b"secret", 6, SESSION_KEYRING)
call("request_key", N["request_key"], b"user", b"_uid.0", None, 0)
call("search _uid.0", N["keyctl"], 10, USER_KEYRING, b"keyring", b"_uid.0", 0)
for p in ["/proc/keys", "/proc/key-users"]:
    try:
        print(p, len(open(p).read()))
    except OSError as e:
        print(p, e.strerror)
`;

const C = `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static void say(const char *label, long r) { printf("%s %s\\n", label, r >= 0 ? "OK" : strerror(errno)); }
int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "none";
  say("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4, 1));
  say("add_key", syscall(SYS_add_key, "user", name, "secret", 6, -4));
  say("request_key", syscall(SYS_request_key, "user", "_uid.0", NULL, 0));
  return 0;
}
`;

/** The keys the host can see that carry `name` (root sees every key it may view in /proc/keys). */
function hostKeysNamed(name: string): string[] {
  try {
    return readFileSync('/proc/keys', 'utf8').split('\n').filter((l) => l.includes(name));
  } catch {
    return [];
  }
}

void describe('hostile 25: kernel keyrings', { timeout: 60_000 }, () => {
  let h: HostileServer;
  before(async () => {
    h = await hostileServer({ poolSize: 2 });
  });
  after(async () => {
    await h?.close();
  });

  test('python: keyctl, add_key, request_key all EPERM; /proc/keys and /proc/key-users closed', async () => {
    const name = `sbx-key-${process.pid}-${Date.now()}`;
    const run = await hostileRun(h, { language: 'python', code: PYTHON, args: [JSON.stringify(KEY_SYSCALLS), name], limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(
      run.result.stdout,
      [
        'get user keyring Operation not permitted',
        'join _uid.0 Operation not permitted',
        'add_key Operation not permitted',
        'add_key session Operation not permitted',
        'request_key Operation not permitted',
        'search _uid.0 Operation not permitted',
        '/proc/keys Permission denied',
        '/proc/key-users Permission denied',
        '',
      ].join('\n'),
    );
    assert.deepEqual(hostKeysNamed(name), [], 'a key of the run appeared on the host');
  });

  test('C: the same calls by syscall(2): EPERM, and the program goes on', async () => {
    const name = `sbx-key-c-${process.pid}-${Date.now()}`;
    const run = await hostileRun(h, { language: 'c', code: C, args: [name], limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: LIMITS.timeoutMs });
    assert.equal(run.result.stdout, 'keyctl Operation not permitted\nadd_key Operation not permitted\nrequest_key Operation not permitted\n');
    assert.deepEqual(hostKeysNamed(name), []);
  });
});
