/**
 * Hostile case 9: orphans that try to outlive the run: setsid, double fork, nohup/disown, a daemonizing Python, a C
 * double fork, a detached node child. The sandbox's init (pid 1 of the run's PID namespace) kills everything in the
 * namespace when the program ends, and the run's cgroup is swept: zero processes of the run after the result. Each
 * program waits until its orphans are really up (they say so) before it exits, so the check is not vacuous; the
 * orphans carry the run's marker ($1 / argv) on their command line where they can.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };

void describe('hostile 09: orphans outliving the run', { timeout: 90_000 }, () => {
  let h: HostileServer;
  before(async () => {
    h = await hostileServer();
  });
  after(async () => {
    await h?.close();
  });

  void test('shell: setsid, double fork, nohup + disown, all up before the script exits', async () => {
    const code = [
      'setsid bash -c \'touch /tmp/up1; exec sleep 1000\' "$1" &',
      '( bash -c \'touch /tmp/up2; sleep 1000; :\' "$1" & ) &',
      'nohup bash -c \'touch /tmp/up3; sleep 1000; :\' "$1" >/dev/null 2>&1 &',
      'disown -a',
      'for i in $(seq 200); do [ -e /tmp/up1 ] && [ -e /tmp/up2 ] && [ -e /tmp/up3 ] && break; sleep 0.01; done',
      'ls /tmp | tr "\\n" " "; echo',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.equal(run.result.stdout.trim(), 'up1 up2 up3', 'the orphans never came up');
  });

  void test('python: a classic daemon (double fork, setsid, chdir /, closed stdio) is gone after the result', async () => {
    const code = [
      'import os, sys, time',
      'r, w = os.pipe()',
      'if os.fork() == 0:',
      '    os.setsid()',
      '    if os.fork() != 0:',
      '        os._exit(0)',
      '    os.chdir("/")',
      '    os.write(w, b"up")',
      '    for fd in (0, 1, 2):',
      '        os.close(fd)',
      '    os.execv("/bin/sleep", ["sleep", "1000"])',
      'os.close(w)',
      'print("daemon", os.read(r, 2).decode(), flush=True)',
    ].join('\n');
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.equal(run.result.stdout, 'daemon up\n');
  });

  void test('C: double fork + setsid, the grandchild ignores SIGTERM and SIGHUP', async () => {
    const code = [
      '#include <signal.h>',
      '#include <stdio.h>',
      '#include <unistd.h>',
      'int main(int argc, char **argv) {',
      '  (void)argc; (void)argv;',
      '  int p[2];',
      '  if (pipe(p) != 0) return 2;',
      '  if (fork() == 0) {',
      '    setsid();',
      '    if (fork() != 0) _exit(0);',
      '    signal(SIGTERM, SIG_IGN); signal(SIGHUP, SIG_IGN);',
      '    if (write(p[1], "up", 2) != 2) _exit(1);',
      '    for (;;) pause();',
      '  }',
      '  char buf[3] = { 0 };',
      '  close(p[1]);',
      '  if (read(p[0], buf, 2) != 2) return 3;',
      '  printf("daemon %s\\n", buf);',
      '  return 0;',
      '}',
    ].join('\n');
    const run = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.equal(run.result.stdout, 'daemon up\n');
  });

  void test('javascript: a detached, unref()ed child is gone after the result', async () => {
    const code = [
      'const { spawn } = require("child_process");',
      'const marker = process.argv[process.argv.length - 1];',
      'const child = spawn("/bin/bash", ["-c", "echo up; exec sleep 1000", marker], { detached: true, stdio: ["ignore", "pipe", "ignore"] });',
      'child.stdout.once("data", (d) => { console.log("child", String(d).trim()); child.stdout.destroy(); child.unref(); });',
    ].join('\n');
    const run = await hostileRun(h, { language: 'javascript', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.equal(run.result.stdout, 'child up\n');
  });
});
