import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { locateFailure } from '../../server/traceback';

// Real outputs of failing runs through the sandbox (`sbx run … --json`), and of node:test's reporters.
const OUTPUT = path.resolve(import.meta.dirname, '..', 'fixtures', 'codelens', 'output');
const output = (name: string): string => readFileSync(path.join(OUTPUT, name), 'utf8');

describe('locateFailure: Python', () => {
  it('takes the innermost frame of the program and maps main.py back to the original file', () => {
    assert.deepEqual(locateFailure(output('python-nested.txt'), { file: '/home/dev/calc.py', language: 'python' }), {
      file: '/home/dev/calc.py',
      line: 9,
      message: "ValueError: invalid literal for int() with base 10: 'x'",
    });
  });

  it('without the original file name, leaves file out (the run’s own program)', () => {
    assert.deepEqual(locateFailure(output('python-nested.txt')), {
      line: 9,
      message: "ValueError: invalid literal for int() with base 10: 'x'",
    });
  });

  it('uses the last of chained tracebacks', () => {
    assert.deepEqual(locateFailure(output('python-chained.txt'), { file: 'chained.py' }), {
      file: 'chained.py',
      line: 5,
      message: 'ValueError: missing name',
    });
  });

  it('reads a SyntaxError’s frame, which names no function', () => {
    assert.deepEqual(locateFailure(output('python-syntax.txt'), { file: '/w/syn.py' }), {
      file: '/w/syn.py',
      line: 1,
      message: 'SyntaxError: invalid syntax',
    });
  });

  it('prefers the user’s test file to the harness that imported it (innermost frame in that file)', () => {
    const file = '/home/dev/project/tests/test_calc.py';
    assert.deepEqual(locateFailure(output('python-harness.txt'), { file, language: 'python' }), {
      file,
      line: 5,
      message: "TypeError: unsupported operand type(s) for +: 'decimal.Decimal' and 'float'",
    });
  });

  it('falls back to the innermost frame when none is the user’s', () => {
    const text = [
      'Traceback (most recent call last):',
      '  File "/opt/app/run.py", line 3, in <module>',
      '    lib.go()',
      '  File "/opt/app/lib.py", line 7, in go',
      '    raise RuntimeError("x")',
      'RuntimeError: x',
    ].join('\n');
    assert.deepEqual(locateFailure(text, { file: '/w/other.py' }), { file: '/opt/app/lib.py', line: 7, message: 'RuntimeError: x' });
  });
});

describe('locateFailure: Node', () => {
  it('takes the first frame of an uncaught error in the program, with its column', () => {
    assert.deepEqual(locateFailure(output('node-uncaught.txt'), { file: '/w/boom.js', language: 'javascript' }), {
      file: '/w/boom.js',
      line: 2,
      column: 20,
      message: 'TypeError: bad value 2',
    });
  });

  it('uses the header line of a SyntaxError, whose frames are all node internals', () => {
    assert.deepEqual(locateFailure(output('node-syntax.txt'), { file: '/w/syn.js' }), {
      file: '/w/syn.js',
      line: 2,
      message: "SyntaxError: Unexpected token ';'",
    });
  });

  it('reads node:test’s TAP report: the failing test, not its suite, with the assert message', () => {
    assert.deepEqual(locateFailure(output('node-test-tap.txt'), { file: '/w/math.test.js', language: 'javascript' }), {
      file: '/w/math.test.js',
      line: 6,
      column: 12,
      message: 'AssertionError: Expected values to be strictly equal:\n\n2 !== 3',
    });
  });

  it('reads node:test’s spec report', () => {
    assert.deepEqual(locateFailure(output('node-test-spec.txt'), { file: '/w/math.test.js' }), {
      file: '/w/math.test.js',
      line: 6,
      column: 12,
      message: 'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n2 !== 3',
    });
  });

  it('uses the TAP location when the stack names no user frame', () => {
    const text = [
      'not ok 1 - times out',
      '  ---',
      "  location: '/w/slow.test.js:3:1'",
      "  failureType: 'testTimeoutFailure'",
      "  error: 'test timed out after 100ms'",
      "  code: 'ERR_TEST_FAILURE'",
      '  ...',
    ].join('\n');
    assert.deepEqual(locateFailure(text, { file: '/w/slow.test.js' }), {
      file: '/w/slow.test.js',
      line: 3,
      column: 1,
      message: 'test timed out after 100ms',
    });
  });

  it('reports transpiled TypeScript lines as they are (no source maps)', () => {
    assert.deepEqual(locateFailure(output('ts-runtime.txt'), { file: '/w/boom.ts', language: 'typescript' }), {
      file: '/w/boom.ts',
      line: 3,
      column: 20,
      message: 'Error: ts boom',
    });
  });

  it('takes a frame in another user file by path, and a file:// URL as a path', () => {
    const text = 'Error: nope\n    at check (file:///w/lib/check.mjs:4:11)\n    at file:///w/main.mjs:2:1\n';
    assert.deepEqual(locateFailure(text, { file: '/w/lib/check.mjs' }), { file: '/w/lib/check.mjs', line: 4, column: 11, message: 'Error: nope' });
  });
});

describe('locateFailure: compilers and bash', () => {
  it('reads gcc’s first error', () => {
    assert.deepEqual(locateFailure(output('gcc.txt'), { file: '/w/bad.c', language: 'c' }), {
      file: '/w/bad.c',
      line: 5,
      column: 5,
      message: 'expected ‘,’ or ‘;’ before ‘printf’',
    });
  });

  it('reads g++’s error', () => {
    assert.deepEqual(locateFailure(output('gpp.txt'), { file: '/w/bad.cpp' }), {
      file: '/w/bad.cpp',
      line: 3,
      column: 3,
      message: '‘undefined_fn’ was not declared in this scope',
    });
  });

  it('reads the server’s TypeScript transpile error', () => {
    assert.deepEqual(locateFailure(output('ts-compile.txt'), { file: '/w/bad.ts', language: 'typescript' }), {
      file: '/w/bad.ts',
      line: 2,
      column: 14,
      message: 'Unexpected ";"',
    });
  });

  it('reads bash’s first error', () => {
    assert.deepEqual(locateFailure(output('bash.txt'), { file: '/w/err.sh', language: 'shell' }), {
      file: '/w/err.sh',
      line: 3,
      message: 'nosuchcmd: command not found',
    });
  });

  it('prefers an error in the user’s sourced file to the harness’s', () => {
    const text = 'main.sh: line 2: warn: x\n/w/backup.test.sh: line 9: [[: syntax error in expression\n';
    assert.deepEqual(locateFailure(text, { file: '/w/backup.test.sh' }), {
      file: '/w/backup.test.sh',
      line: 9,
      message: '[[: syntax error in expression',
    });
  });
});

describe('locateFailure: nothing to find', () => {
  it('returns undefined for output that names no location', () => {
    assert.equal(locateFailure(''), undefined);
    assert.equal(locateFailure('Segmentation fault (core dumped)\n'), undefined);
    assert.equal(locateFailure('/usr/bin/ld: /tmp/cc1.o: in function `main\':\nmain.c:(.text+0x9): undefined reference to `f\'\n'), undefined);
  });

  it('ignores terminal colours', () => {
    const text = '\x1b[31mmain.sh: line 4: \x1b[0mboom: command not found\n';
    assert.deepEqual(locateFailure(text), { line: 4, message: 'boom: command not found' });
  });
});
