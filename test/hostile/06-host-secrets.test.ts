/**
 * Hostile case 6: reading host secrets. A run sees only what its runtime needs: no /etc/shadow, no home (under
 * /root only the runtime's own install prefix, when it lives there), a /proc of its own PID namespace (pid 1 is the
 * sandbox's init, whose environment cannot even be read), and an environment that is exactly the allow-list, with none
 * of the server's own variables.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { workRootOf } from '../helpers/server';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };
/** A variable in the server's own environment: it must reach no run. */
const SECRET_NAME = 'SBX_HOSTILE_SECRET';
const SECRET_VALUE = 'hunter2-do-not-leak';
/** The whole environment of a run: server/engine.ts sandboxEnv, plus the PWD bwrap's `--chdir /work` sets. */
const ALLOWED = ['HOME', 'LANG', 'LC_ALL', 'PATH', 'PWD', 'PYTHONDONTWRITEBYTECODE', 'PYTHONIOENCODING', 'PYTHONUNBUFFERED', 'TERM', 'TMPDIR'];
/** Host paths a run must not see (whether or not they exist here). */
const SECRET_PATHS = ['/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/root/.ssh', '/root/.bashrc', '/root/.profile', '/root/.gitconfig', '/root/.npmrc', '/root/.config', '/home', '/var', '/sys', '/etc/hostname', '/etc/hosts'];

void describe('hostile 06: read host secrets', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let canary: string;
  let workRoot: string;
  before(async () => {
    h = await hostileServer({}, { [SECRET_NAME]: SECRET_VALUE });
    canary = path.join(h.dir, 'secret.txt');
    writeFileSync(canary, `${SECRET_VALUE}\n`);
    workRoot = workRootOf(h.server.proc.pid!)!;
    assert.ok(workRoot, 'no work root for the server');
  });
  after(async () => {
    await h?.close();
  });

  void test('python: secret paths absent, /root holds only the runtime prefix, environ is the allow-list', async () => {
    const code = [
      'import json, os',
      'def read(p):',
      '    try:',
      '        with open(p, "rb") as f:',
      '            return f.read().decode(errors="replace")',
      '    except OSError as e:',
      '        return "ERR " + os.strerror(e.errno)',
      'def walk(p):',
      '    try:',
      '        names = sorted(os.listdir(p))',
      '    except OSError:',
      '        return []',
      '    return [p] if len(names) != 1 else walk(os.path.join(p, names[0])) if p.count("/") < 4 else [p]',
      'print(json.dumps({',
      '    "env": sorted(os.environ),',
      '    "exists": [p for p in PATHS if os.path.lexists(p)],',
      '    "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else None,',
      '    "rootChain": walk("/root"),',
      '    "shadow": read("/etc/shadow"),',
      '    "passwd": read("/etc/passwd"),',
      '    "pid1": read("/proc/1/cmdline").split("\\0")[0],',
      '    "pid1env": sorted(k.split("=")[0] for k in read("/proc/1/environ").split("\\0") if k),',
      '    "selfEnviron": read("/proc/self/environ"),',
      '    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),',
      '    "canary": read(CANARY),',
      '    "workRoot": os.path.lexists(WORKROOT),',
      '}))',
    ]
      .join('\n')
      .replace('PATHS', JSON.stringify(SECRET_PATHS))
      .replace('CANARY', JSON.stringify(canary))
      .replace('WORKROOT', JSON.stringify(workRoot));
    const unchanged = snapshot(['/etc/shadow', '/etc/passwd', canary]);
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS, unchanged });
    const seen = JSON.parse(run.result.stdout) as Record<string, unknown>;
    assert.deepEqual(seen.env, ALLOWED, 'the environment is not the allow-list');
    assert.deepEqual(seen.exists, [], 'host secrets are visible');
    // pyenv's python lives under /root: its prefix alone shows, nothing else of /root.
    if (seen.root !== null) {
      assert.deepEqual(seen.root, ['.pyenv']);
      assert.match((seen.rootChain as string[])[0]!, /^\/root\/\.pyenv\/versions\/[^/]+$/);
    }
    assert.match(seen.shadow as string, /^ERR No such file or directory$/);
    assert.doesNotMatch(seen.passwd as string, /^root:/m, "the host's /etc/passwd is visible");
    assert.equal(seen.pid1, '/etc/sbx-launch', "pid 1 is not the sandbox's own init");
    // pid 1 is not dumpable: its environment (like its memory and descriptors) is closed even to the same uid.
    assert.deepEqual(seen.pid1env, ['ERR Permission denied'], "pid 1's environment can be read");
    assert.ok((seen.pids as number[]).length <= 3, `the box sees other processes: ${String(seen.pids)}`);
    assert.match(seen.canary as string, /^ERR No such file or directory$/);
    assert.equal(seen.workRoot, false, "the server's work root is visible");
    assert.ok(!run.result.stdout.includes(SECRET_VALUE), 'the server secret leaked');
    assert.ok(!run.result.stdout.includes(SECRET_NAME), 'the server variable leaked');
  });

  void test('shell: printenv and /proc/$$/environ are the allow-list; secrets not found', async () => {
    const code = [
      'echo "initial: $(tr "\\0" "\\n" < /proc/$$/environ | cut -d= -f1 | sort | tr "\\n" " ")"',
      'echo "printenv: $(printenv | cut -d= -f1 | sort | tr "\\n" " ")"',
      'cat /etc/shadow 2>&1; ls -a ~/.ssh /root/.ssh 2>&1; cat /proc/1/environ | tr "\\0" "\\n" | grep -c SBX_',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: ['ok', 'runtime_error'], limitMs: TIMEOUT_MS });
    const out = run.result.stdout;
    assert.equal(/^initial: (.*)$/m.exec(out)?.[1]?.trim(), ALLOWED.join(' '));
    // bash adds its own SHLVL and _ to what it exports: nothing else.
    const printenv = /^printenv: (.*)$/m.exec(out)?.[1]?.trim().split(' ') ?? [];
    assert.deepEqual(printenv.filter((k) => !['SHLVL', '_'].includes(k)), ALLOWED);
    assert.match(out, /cat: \/etc\/shadow: No such file or directory/);
    assert.match(out, /ls: cannot access '\/work\/\.ssh': No such file or directory/);
    assert.match(out, /ls: cannot access '\/root\/\.ssh': No such file or directory/);
    assert.ok(!out.includes(SECRET_VALUE), 'the server secret leaked');
  });

  void test('javascript: process.env is the allow-list', async () => {
    const code = 'console.log(JSON.stringify(Object.keys(process.env).sort()));';
    const run = await hostileRun(h, { language: 'javascript', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.deepEqual(JSON.parse(run.result.stdout), ALLOWED);
  });
});
