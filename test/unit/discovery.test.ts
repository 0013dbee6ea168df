import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  DEFAULT_TEST_GLOBS,
  discoverUnits,
  fenceLanguageOf,
  isDefaultTestFile,
  sandboxLanguageOf,
  type DiscoveredUnit,
} from '../../server/discovery';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'codelens');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

/** `kind name startLine-endLine` (1-based lines, as an editor shows them), for compact expectations. */
const brief = (units: DiscoveredUnit[]): string[] =>
  units.map((u) => `${u.kind}${u.name === undefined ? '' : ` ${u.name}`} ${u.range.start.line + 1}-${u.range.end.line + 1}`);

describe('discoverUnits: Python', () => {
  it('finds top-level tests, async tests, Test* methods and the main block, not strings or other classes', () => {
    const units = discoverUnits('python', fixture('inventory.py'));
    assert.deepEqual(brief(units), [
      'test test_restock 12-13',
      'test test_restock_async 16-17',
      'test test_multiline_signature 20-29',
      'test TestInventory.test_empty 38-39',
      'test TestInventory.test_fig 41-42',
      'main 52-54',
    ]);
    assert.ok(units.every((u) => u.language === 'python'));
    assert.deepEqual(units[3]!.path, ['TestInventory', 'test_empty']);
    // a range ends at the end of its last line
    const lines = fixture('inventory.py').split('\n');
    assert.deepEqual(units[5]!.range, { start: { line: 51, character: 0 }, end: { line: 53, character: lines[53]!.length } });
  });

  it('gives a file without a main block one whole-file unit at the top', () => {
    const text = fixture('script.py');
    assert.deepEqual(discoverUnits('python', text), [
      { kind: 'file', language: 'python', range: { start: { line: 0, character: 0 }, end: { line: 3, character: 0 } } },
    ]);
  });

  it("recognises the main guard's spellings, and only at the top level", () => {
    for (const guard of ["if __name__ == '__main__':", 'if "__main__" == __name__:', 'if __name__=="__main__":  # run']) {
      assert.deepEqual(brief(discoverUnits('python', `x = 1\n${guard}\n    main()\n`)), ['main 2-3'], guard);
    }
    assert.deepEqual(brief(discoverUnits('python', 'def f():\n    if __name__ == "__main__":\n        pass\n')), ['file 1-4']);
  });

  it('ends a function at the first line indented no deeper, keeping blank lines inside and comments out of its end', () => {
    const text = 'def test_a():\n    x = 1\n\n    assert x\n# after\nvalue = 2\n';
    assert.deepEqual(brief(discoverUnits('python', text)), ['file 1-7', 'test test_a 1-4']);
  });

  it('ignores indented defs outside Test* classes, nested classes, and methods of nested functions', () => {
    const text = [
      'class TestOuter:',
      '    def helper(self):',
      '        def test_inner():',
      '            pass',
      '    class TestNested:',
      '        def test_deep(self):',
      '            pass',
      '    def test_real(self):',
      '        pass',
    ].join('\n');
    assert.deepEqual(brief(discoverUnits('python', text)), ['file 1-9', 'test TestOuter.test_real 8-9']);
  });

  it('reads CRLF text with the same lines', () => {
    const text = 'def test_a():\r\n    pass\r\n\r\nif __name__ == "__main__":\r\n    test_a()\r\n';
    assert.deepEqual(brief(discoverUnits('python', text)), ['test test_a 1-2', 'main 4-5']);
  });
});

describe('discoverUnits: JavaScript and TypeScript', () => {
  it('finds describe/it/test calls with literal titles and nested paths, in document order', () => {
    const units = discoverUnits('typescript', fixture('cart.test.ts'));
    assert.deepEqual(brief(units), [
      'file 1-34',
      'test cart 8-26',
      'test cart > starts empty 9-11',
      'test cart > totals 13-21',
      'test cart > totals > sums quantities 14-18',
      'test cart > totals > ignores "void" lines 20-20',
      'test top level, multi-line 28-33',
    ]);
    assert.ok(units.every((u) => u.language === 'typescript'));
    assert.deepEqual(units[4]!.path, ['cart', 'totals', 'sums quantities']);
    // a call's range runs from its callee to its closing parenthesis
    assert.deepEqual(units[2]!.range, { start: { line: 8, character: 2 }, end: { line: 10, character: 4 } });
  });

  it('skips titles that are not fixed strings, and everything inside a describe whose title is not', () => {
    const text = "describe(title, () => {\n  it('inner', () => {});\n});\ntest('a' + b, () => {});\nit(`x${1}`, () => {});\n";
    assert.deepEqual(brief(discoverUnits('javascript', text)), ['file 1-6']);
  });

  it('does not take method calls, declarations, comments, strings or regexes for tests', () => {
    const text = [
      'function test(a) { return a; }',
      "obj.test('not a test', () => {});",
      "const s = \"test('in a string', () => {})\";",
      "const r = /it\\('in a regex'\\)/;",
      "/* describe('in a block comment', () => {}) */",
      "const t = `it('in a template', () => {})`;",
      "latest('suffix is not test', () => {});",
      "it.only('real', () => {});",
    ].join('\n');
    assert.deepEqual(brief(discoverUnits('javascript', text)), ['file 1-8', 'test real 8-8']);
  });

  it('keeps its place through template literals with nested substitutions', () => {
    const text = "const a = `${`${{ b: '}' }.b}`}`;\ntest(`after`, () => {});\n";
    assert.deepEqual(brief(discoverUnits('javascript', text)), ['file 1-3', 'test after 2-2']);
  });

  it('decodes escapes in titles', () => {
    const [, unit] = discoverUnits('javascript', "test('it\\'s \\\"quoted\\\"', () => {});");
    assert.equal(unit!.name, 'it\'s "quoted"');
  });
});

describe('discoverUnits: shell', () => {
  it('finds test_ functions in their three spellings, with their bodies', () => {
    const units = discoverUnits('shellscript', fixture('backup.test.sh'));
    assert.deepEqual(brief(units), [
      'file 1-22',
      'test test_creates_archive 8-11',
      'test test_braces_in_strings 13-16',
      'test test_next_line_brace 18-21',
    ]);
    assert.ok(units.every((u) => u.language === 'shell'));
  });

  it('takes a function whose body is not a brace group as just its header, and only top-level ones', () => {
    const text = 'test_sub() ( exit 0 )\n  test_indented() { :; }\ntest_one() { true; }\n';
    assert.deepEqual(brief(discoverUnits('shell', text)), ['file 1-4', 'test test_sub 1-1', 'test test_one 3-3']);
  });
});

describe('discoverUnits: Markdown', () => {
  it('finds fenced blocks in supported languages with their code, and nothing else', () => {
    const units = discoverUnits('markdown', fixture('GUIDE.md'));
    assert.deepEqual(
      units.map((u) => [u.language, u.range.start.line + 1, u.range.end.line + 1, u.code]),
      [
        ['python', 5, 7, 'print("hello from python")\n'],
        ['javascript', 21, 23, 'console.log(40 + 2);\n'],
        ['shell', 25, 27, 'echo "tilde fence with ``` inside"\n'],
        ['cpp', 29, 32, '#include <iostream>\nint main() { std::cout << "```" << std::endl; }\n'],
        // unclosed: runs to the end of the document
        ['typescript', 34, 37, 'const unclosed: number = 1;\nconsole.log(unclosed);\n'],
      ],
    );
    assert.ok(units.every((u) => u.kind === 'block' && u.name === undefined));
  });

  it('accepts info strings with attributes and any case, and skips empty blocks', () => {
    const text = '```Python title="x.py"\nprint(1)\n```\n```{.bash}\necho 2\n```\n```py\n\n```\n';
    assert.deepEqual(
      discoverUnits('markdown', text).map((u) => [u.language, u.code]),
      [
        ['python', 'print(1)\n'],
        ['shell', 'echo 2\n'],
      ],
    );
  });
});

describe('languages and test files', () => {
  it('maps editor language ids and fence words to sandbox languages', () => {
    assert.equal(sandboxLanguageOf('shellscript'), 'shell');
    assert.equal(sandboxLanguageOf('python'), 'python');
    assert.equal(sandboxLanguageOf('rust'), undefined);
    assert.deepEqual(
      ['py', 'python', 'js', 'javascript', 'ts', 'typescript', 'sh', 'bash', 'shell', 'c', 'cpp', 'c++', 'go'].map(fenceLanguageOf),
      ['python', 'python', 'javascript', 'javascript', 'typescript', 'typescript', 'shell', 'shell', 'shell', 'c', 'cpp', 'cpp', undefined],
    );
  });

  it('has no units for languages it does not scan', () => {
    assert.deepEqual(discoverUnits('rust', 'fn main() {}'), []);
    assert.deepEqual(discoverUnits('c', 'int main(void) { return 0; }'), []);
  });

  it('exports the default test globs and matches file names against them', () => {
    assert.deepEqual(DEFAULT_TEST_GLOBS, ['**/test_*.py', '**/*_test.py', '**/*.test.{js,ts}', '**/*.test.sh']);
    const yes = ['/w/tests/test_calc.py', 'calc_test.py', 'src/cart.test.ts', 'a\\b\\ui.test.js', 'backup.test.sh'];
    const no = ['/w/test_calc.pyc', 'contest.py', 'cart.test.tsx', 'test.sh', '/w/test_dir/calc.py', '.test.js'];
    for (const f of yes) assert.equal(isDefaultTestFile(f), true, f);
    for (const f of no) assert.equal(isDefaultTestFile(f), false, f);
  });
});
