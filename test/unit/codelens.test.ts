import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { RUN_TEST_TITLE, RUN_TITLE, codeLensesFor } from '../../server/codelens';
import { RUN_UNIT_COMMAND, type RunUnitArgs } from '../../server/protocol';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'codelens');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');
const doc = (uri: string, languageId: string, text: string) => TextDocument.create(uri, languageId, 1, text);
const argsOf = (lens: { command?: { arguments?: unknown[] } }): RunUnitArgs => lens.command!.arguments![0] as RunUnitArgs;

describe('codeLensesFor', () => {
  it('puts a Run Test lens on each Python test and a Run lens on the main block, with RunUnitArgs', () => {
    const lenses = codeLensesFor(doc('file:///w/inventory.py', 'python', fixture('inventory.py')));
    assert.equal(lenses.length, 6);
    assert.deepEqual(
      lenses.map((l) => [l.command!.title, l.command!.command]),
      [...Array(5).fill([RUN_TEST_TITLE, RUN_UNIT_COMMAND]), [RUN_TITLE, RUN_UNIT_COMMAND]],
    );
    assert.equal(RUN_TITLE, '▶ Run in Sandbox');
    assert.equal(RUN_TEST_TITLE, '▶ Run Test in Sandbox');
    assert.equal(RUN_UNIT_COMMAND, 'sandbox.runUnit');
    assert.deepEqual(argsOf(lenses[3]!), {
      uri: 'file:///w/inventory.py',
      languageId: 'python',
      language: 'python',
      kind: 'test',
      name: 'TestInventory.test_empty',
      range: { start: { line: 37, character: 0 }, end: { line: 38, character: 35 } },
    });
    assert.deepEqual(argsOf(lenses[5]!).kind, 'main');
    assert.equal('name' in argsOf(lenses[5]!), false);
    // the lens sits on its unit's range
    assert.deepEqual(lenses[3]!.range, argsOf(lenses[3]!).range);
  });

  it('carries a Markdown block’s code and language, and the document’s own language id', () => {
    const lenses = codeLensesFor(doc('file:///w/GUIDE.md', 'markdown', fixture('GUIDE.md')));
    assert.equal(lenses.length, 5);
    assert.ok(lenses.every((l) => l.command!.title === RUN_TITLE));
    assert.deepEqual(argsOf(lenses[0]!), {
      uri: 'file:///w/GUIDE.md',
      languageId: 'markdown',
      language: 'python',
      kind: 'block',
      range: { start: { line: 4, character: 0 }, end: { line: 6, character: 3 } },
      code: 'print("hello from python")\n',
    });
  });

  it('gives a shell document (VS Code id shellscript) a file lens and test lenses', () => {
    const lenses = codeLensesFor(doc('file:///w/backup.test.sh', 'shellscript', fixture('backup.test.sh')));
    assert.deepEqual(
      lenses.map((l) => [argsOf(l).kind, argsOf(l).language, argsOf(l).name, l.command!.title]),
      [
        ['file', 'shell', undefined, RUN_TITLE],
        ['test', 'shell', 'test_creates_archive', RUN_TEST_TITLE],
        ['test', 'shell', 'test_braces_in_strings', RUN_TEST_TITLE],
        ['test', 'shell', 'test_next_line_brace', RUN_TEST_TITLE],
      ],
    );
  });

  it('has no lenses for a language it does not know', () => {
    assert.deepEqual(codeLensesFor(doc('file:///w/x.rs', 'rust', 'fn main() {}\n')), []);
  });
});
