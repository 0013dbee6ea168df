/**
 * Hostile case 21, in-process escapes: `vm` tricks in node (`this.constructor.constructor("return process")()`) and
 * python's `().__class__.__base__.__subclasses__()` walk do reach the runtime's own `process` / `os`: the server
 * never evaluates user code in-process (TypeScript is only transpiled), so what they reach is the sandboxed
 * program's own runtime. The test asserts the escape gains nothing beyond the sandbox: uid 65534, a pid of the run's
 * own PID namespace, no host secret or file, no write outside /work, no network (a listener on the host's loopback
 * sees nothing).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { assertContained, hostileRun, hostileServer, snapshot, type HostileServer } from './harness';

const SUITE_TIMEOUT_MS = 60_000;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32 };
const SECRET = 'host-secret-21';

let h: HostileServer;
let listener: Server;
let port = 0;
let connections = 0;
let canary = '';
before(async () => {
  h = await hostileServer({ poolSize: 2 });
  canary = path.join(h.dir, 'canary.txt');
  writeFileSync(canary, SECRET);
  listener = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as { port: number }).port;
});
after(async () => {
  await new Promise((resolve) => listener?.close(resolve));
  await h?.close();
});

/** What the escaped code tries, given the `process` it reached. Prints one line per try. */
const NODE_TRIES = (how: string) => `const vm = require('vm');
const p = ${how};
const req = p.mainModule ? p.mainModule.require : require;
const fs = req('fs');
console.log('got process', typeof p.getuid === 'function', p === process);
console.log('uid', p.getuid(), p.geteuid(), 'pid', p.pid);
for (const f of ['/etc/shadow', '/root/.ssh/id_rsa', process.argv.at(-2)]) {
  try { fs.readFileSync(f, 'utf8'); console.log('READ', f); } catch (e) { console.log('read', e.code); }
}
for (const f of ['/usr/escaped-21', process.argv.at(-2)]) {
  try { fs.writeFileSync(f, 'x'); console.log('WROTE', f); } catch (e) { console.log('write', e.code); }
}
const r = req('child_process').spawnSync('id', ['-u'], { encoding: 'utf8' });
console.log('child uid', r.stdout.trim());
const s = req('net').connect(Number(process.argv.at(-3)), '127.0.0.1');
s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });
s.on('error', (e) => { console.log('net', e.code); process.exit(0); });
`;

const PY_TRIES = `import sys
subs = ().__class__.__base__.__subclasses__()
wrap = [c for c in subs if c.__name__ == '_wrap_close'][0]
g = wrap.__init__.__globals__
print('got os', 'system' in g)
print('uid', g['getuid'](), g['geteuid'](), 'pid', g['getpid']())
for f in ('/etc/shadow', '/root/.ssh/id_rsa', sys.argv[-2]):
    try:
        open(f).read()
        print('READ', f)
    except OSError as e:
        print('read', type(e).__name__)
for f in ('/usr/escaped-21', sys.argv[-2]):
    try:
        open(f, 'w').write('x')
        print('WROTE', f)
    except OSError as e:
        print('write', type(e).__name__)
print('child uid', g['popen']('id -u').read().strip())
import socket as sk
s = sk.socket()
s.settimeout(1)
try:
    s.connect(('127.0.0.1', int(sys.argv[-3])))
    print('CONNECTED')
except OSError as e:
    print('net', type(e).__name__)
`;

void describe('in-process escapes reach only the sandboxed runtime', { timeout: SUITE_TIMEOUT_MS }, () => {
  const nodeVariants: [string, string][] = [
    ['vm.runInNewContext: this.constructor.constructor("return process")()', `vm.runInNewContext('this.constructor.constructor("return process")()')`],
    ['vm.runInNewContext with a sandbox object: ({}).constructor.constructor', `vm.runInNewContext('sandbox.constructor.constructor("return process")()', { sandbox: {} })`],
    ['vm.runInNewContext: a host object\'s method, o.toString.constructor', `vm.runInNewContext('o.toString.constructor("return process")()', { o: {} })`],
  ];
  for (const [name, how] of nodeVariants) {
    test(`node: ${name}`, async () => {
      const before = snapshot([canary, '/etc/shadow']);
      const seen = connections;
      const run = await hostileRun(h, { language: 'javascript', code: NODE_TRIES(how), args: [String(port), canary], limits });
      await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs, unchanged: before, absent: ['/usr/escaped-21'] });
      const out = run.result.stdout;
      assert.match(out, /^got process true true$/m, `the trick worked (it reached the program's own process):\n${out}\n${run.result.stderr}`);
      const uid = /^uid (\d+) (\d+) pid (\d+)$/m.exec(out);
      assert.ok(uid, out);
      assert.deepEqual([uid[1], uid[2]], ['65534', '65534']);
      assert.notEqual(Number(uid[3]), h.server.proc.pid, 'not the server');
      assert.ok(Number(uid[3]) < 100, `a pid of the run's own namespace, got ${uid[3]}`);
      assert.doesNotMatch(out, /READ|WROTE|CONNECTED/);
      assert.equal(out.match(/^read (ENOENT|EACCES)$/gm)?.length, 3, out);
      assert.equal(out.match(/^write (EROFS|ENOENT|EACCES)$/gm)?.length, 2, out);
      assert.match(out, /^child uid 65534$/m);
      assert.match(out, /^net (ECONNREFUSED|ENETUNREACH)$/m);
      assert.equal(connections, seen, 'the host listener saw a connection');
    });
  }

  test('typescript: the same trick, transpiled by the server but run only in the sandbox', async () => {
    const seen = connections;
    const run = await hostileRun(h, {
      language: 'typescript',
      code: `declare const require: any;\ndeclare const process: any;\n${NODE_TRIES(`vm.runInNewContext('this.constructor.constructor("return process")()')`)}`,
      args: [String(port), canary],
      limits,
    });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs, absent: ['/usr/escaped-21'] });
    assert.match(run.result.stdout, /^uid 65534 65534 pid \d\d?$/m);
    assert.doesNotMatch(run.result.stdout, /READ|WROTE|CONNECTED/);
    assert.equal(connections, seen);
  });

  test('python: ().__class__.__base__.__subclasses__() to os', async () => {
    const before = snapshot([canary, '/etc/shadow']);
    const seen = connections;
    const run = await hostileRun(h, { language: 'python', code: PY_TRIES, args: [String(port), canary], limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs, unchanged: before, absent: ['/usr/escaped-21'] });
    const out = run.result.stdout;
    assert.match(out, /^got os True$/m, `the trick worked:\n${out}\n${run.result.stderr}`);
    const uid = /^uid (\d+) (\d+) pid (\d+)$/m.exec(out);
    assert.ok(uid, out);
    assert.deepEqual([uid[1], uid[2]], ['65534', '65534']);
    assert.ok(Number(uid[3]) < 100, `a pid of the run's own namespace, got ${uid[3]}`);
    assert.doesNotMatch(out, /READ|WROTE|CONNECTED/);
    assert.equal(out.match(/^read (FileNotFoundError|PermissionError)$/gm)?.length, 3, out);
    assert.equal(out.match(/^write (OSError|FileNotFoundError|PermissionError)$/gm)?.length, 2, out);
    assert.match(out, /^child uid 65534$/m);
    assert.match(out, /^net (ConnectionRefusedError|OSError|TimeoutError)$/m);
    assert.equal(connections, seen, 'the host listener saw a connection');
  });
});
