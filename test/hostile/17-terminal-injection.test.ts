/**
 * Hostile case 17, terminal injection: TIOCSTI pushes characters into a terminal's input, as if typed, so a program
 * holding the user's terminal could make the shell behind it run commands. The seccomp filter refuses the ioctl itself
 * (EPERM, whatever the descriptor); and a run has no terminal to push into anyway: its stdio are sockets or /dev/null
 * (without the filter, ENOTTY), it runs in a new session without a controlling terminal (/dev/tty: ENXIO; tty_nr 0
 * in /proc/self/stat). The ioctl fails on every descriptor and nothing is injected anywhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const SUITE_TIMEOUT_MS = 60_000;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  h = await hostileServer({ poolSize: 2 });
});
after(async () => {
  await h?.close();
});

const PY_TIOCSTI = `import errno, fcntl, os, termios
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b'x')
        print(fd, 'INJECTED')
    except OSError as e:
        print(fd, errno.errorcode[e.errno])
try:
    t = os.open('/dev/tty', os.O_RDWR)
    fcntl.ioctl(t, termios.TIOCSTI, b'x')
    print('tty INJECTED')
except OSError as e:
    print('tty', errno.errorcode[e.errno])
stat = open('/proc/self/stat').read()
print('tty_nr', stat[stat.rindex(')') + 2:].split()[4])
`;

const C_TIOCSTI = `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>
int main(void) {
  char c = 'x';
  for (int fd = 0; fd < 3; fd++) {
    int r = ioctl(fd, TIOCSTI, &c);
    printf("%d %s %d\\n", fd, r == 0 ? "INJECTED" : "errno", r == 0 ? 0 : errno);
  }
  int t = open("/dev/tty", O_RDWR);
  if (t < 0) printf("tty open errno %d\\n", errno);
  else printf("tty %s\\n", ioctl(t, TIOCSTI, &c) == 0 ? "INJECTED" : "ioctl failed");
  return 0;
}
`;

void describe('TIOCSTI: fails on every descriptor, nothing injected', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('python: fcntl.ioctl(TIOCSTI) on stdin, stdout, stderr and /dev/tty', async () => {
    const run = await hostileRun(h, { language: 'python', code: PY_TIOCSTI, limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, '0 EPERM\n1 EPERM\n2 EPERM\ntty ENXIO\ntty_nr 0\n');
  });

  test('python, with stdin given (a socket, still no terminal)', async () => {
    const run = await hostileRun(h, { language: 'python', code: PY_TIOCSTI, stdin: 'input\n', limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, '0 EPERM\n1 EPERM\n2 EPERM\ntty ENXIO\ntty_nr 0\n');
  });

  test('C: ioctl(fd, TIOCSTI) on 0, 1, 2 (EPERM = 1, the filter) and open("/dev/tty") (ENXIO = 6)', async () => {
    const run = await hostileRun(h, { language: 'c', code: C_TIOCSTI, limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, '0 errno 1\n1 errno 1\n2 errno 1\ntty open errno 6\n');
  });

  test('shell: no terminal on stdin, /dev/tty cannot be opened', async () => {
    const run = await hostileRun(h, {
      language: 'shell',
      code: 'tty; echo "tty rc=$?"\nif exec 3<>/dev/tty; then echo "tty OPENED"; else echo "no /dev/tty"; fi\n',
      limits,
    });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    assert.equal(run.result.stdout, 'not a tty\ntty rc=1\nno /dev/tty\n');
  });
});
