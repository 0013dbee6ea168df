/**
 * CodeLenses from the real bundled server over stdio: documents opened, changed and closed with LSP's own
 * notifications, `textDocument/codeLens` answered from what the server holds, `codeLens: false` obeyed.
 * Run `npm run build` first (`npm test` does).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CodeLens } from 'vscode-languageserver';
import { ConfigureRequest, ExecuteRequest, type RunUnitArgs } from '../../server/protocol';
import { startServer, stopServer, type TestServer } from '../helpers/server';

const FIXTURES = path.resolve(import.meta.dirname, '..', 'fixtures', 'codelens');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');
const uriOf = (name: string): string => `file://${path.join(FIXTURES, name)}`;

const RUN = '▶ Run in Sandbox';
const RUN_TEST = '▶ Run Test in Sandbox';

const open = (server: TestServer, name: string, languageId: string, text = fixture(name)) =>
  server.conn.sendNotification('textDocument/didOpen', { textDocument: { uri: uriOf(name), languageId, version: 1, text } });
const lensesOf = (server: TestServer, name: string): Promise<CodeLens[]> =>
  server.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: uriOf(name) } });
const argsOf = (lens: CodeLens): RunUnitArgs => {
  assert.equal(lens.command?.command, 'sandbox.runUnit');
  assert.equal(lens.command.arguments?.length, 1);
  return lens.command.arguments[0] as RunUnitArgs;
};
/** `title | kind name | start-end` with 1-based lines, for compact expectations. */
const brief = (lenses: CodeLens[]): string[] =>
  lenses.map((l) => {
    const a = argsOf(l);
    return `${l.command!.title} | ${a.kind}${a.name ? ` ${a.name}` : ''} | ${l.range.start.line + 1}-${l.range.end.line + 1}`;
  });

describe('CodeLens over stdio', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ poolSize: 1 });
    await open(server, 'inventory.py', 'python');
    await open(server, 'GUIDE.md', 'markdown');
    await open(server, 'cart.test.ts', 'typescript');
    await open(server, 'backup.test.sh', 'shellscript');
  });
  after(() => stopServer(server));

  it('answers lenses for a Python document: tests and the main block', async () => {
    const lenses = await lensesOf(server, 'inventory.py');
    assert.deepEqual(brief(lenses), [
      `${RUN_TEST} | test test_restock | 12-13`,
      `${RUN_TEST} | test test_restock_async | 16-17`,
      `${RUN_TEST} | test test_multiline_signature | 20-29`,
      `${RUN_TEST} | test TestInventory.test_empty | 38-39`,
      `${RUN_TEST} | test TestInventory.test_fig | 41-42`,
      `${RUN} | main | 52-54`,
    ]);
    assert.deepEqual(argsOf(lenses[0]!), {
      uri: uriOf('inventory.py'),
      languageId: 'python',
      language: 'python',
      kind: 'test',
      name: 'test_restock',
      range: { start: { line: 11, character: 0 }, end: { line: 12, character: 51 } },
    });
    assert.deepEqual(lenses[0]!.range, argsOf(lenses[0]!).range);
  });

  it('answers lenses for Markdown blocks whose code runs as it is through sandbox/execute', async () => {
    const lenses = await lensesOf(server, 'GUIDE.md');
    assert.deepEqual(
      lenses.map((l) => [l.command!.title, argsOf(l).kind, argsOf(l).language, l.range.start.line + 1]),
      [
        [RUN, 'block', 'python', 5],
        [RUN, 'block', 'javascript', 21],
        [RUN, 'block', 'shell', 25],
        [RUN, 'block', 'cpp', 29],
        [RUN, 'block', 'typescript', 34],
      ],
    );
    const block = argsOf(lenses[0]!);
    assert.equal(block.code, 'print("hello from python")\n');
    const result = await server.conn.sendRequest(ExecuteRequest.type, { language: block.language, code: block.code!, cache: false });
    assert.equal(result.status, 'ok');
    assert.equal(result.stdout, 'hello from python\n');
  });

  it('answers lenses for TypeScript tests with describe paths, and shell tests', async () => {
    assert.deepEqual(brief(await lensesOf(server, 'cart.test.ts')), [
      `${RUN} | file | 1-34`,
      `${RUN_TEST} | test cart | 8-26`,
      `${RUN_TEST} | test cart > starts empty | 9-11`,
      `${RUN_TEST} | test cart > totals | 13-21`,
      `${RUN_TEST} | test cart > totals > sums quantities | 14-18`,
      `${RUN_TEST} | test cart > totals > ignores "void" lines | 20-20`,
      `${RUN_TEST} | test top level, multi-line | 28-33`,
    ]);
    const shell = await lensesOf(server, 'backup.test.sh');
    assert.deepEqual(brief(shell), [
      `${RUN} | file | 1-22`,
      `${RUN_TEST} | test test_creates_archive | 8-11`,
      `${RUN_TEST} | test test_braces_in_strings | 13-16`,
      `${RUN_TEST} | test test_next_line_brace | 18-21`,
    ]);
    assert.deepEqual([argsOf(shell[1]!).languageId, argsOf(shell[1]!).language], ['shellscript', 'shell']);
  });

  it('follows incremental changes: lenses move and appear with the edit', async () => {
    const uri = uriOf('script.py');
    await open(server, 'script.py', 'python');
    assert.deepEqual(brief(await lensesOf(server, 'script.py')), [`${RUN} | file | 1-4`]);
    // insert a test after the import (line 1), then append a main guard at the end (line 3, after the first edit)
    await server.conn.sendNotification('textDocument/didChange', {
      textDocument: { uri, version: 2 },
      contentChanges: [
        { range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, text: '\ndef test_sqrt():\n    assert math.sqrt(4) == 2\n' },
        { range: { start: { line: 6, character: 0 }, end: { line: 6, character: 0 } }, text: 'if __name__ == "__main__":\n    test_sqrt()\n' },
      ],
    });
    assert.deepEqual(brief(await lensesOf(server, 'script.py')), [`${RUN_TEST} | test test_sqrt | 3-4`, `${RUN} | main | 7-8`]);
    // a full replacement
    await server.conn.sendNotification('textDocument/didChange', {
      textDocument: { uri, version: 3 },
      contentChanges: [{ text: 'print(1)\n' }],
    });
    assert.deepEqual(brief(await lensesOf(server, 'script.py')), [`${RUN} | file | 1-2`]);
  });

  it('answers no lenses for a closed or never-opened document', async () => {
    await server.conn.sendNotification('textDocument/didClose', { textDocument: { uri: uriOf('script.py') } });
    assert.deepEqual(await lensesOf(server, 'script.py'), []);
    assert.deepEqual(await server.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: 'file:///nowhere/x.py' } }), []);
  });

  it('answers no lenses after sandbox/configure {codeLens: false}, and lenses again after true', async () => {
    assert.equal((await lensesOf(server, 'inventory.py')).length, 6);
    await server.conn.sendRequest(ConfigureRequest.type, { codeLens: false });
    assert.deepEqual(await lensesOf(server, 'inventory.py'), []);
    assert.deepEqual(await lensesOf(server, 'GUIDE.md'), []);
    await server.conn.sendRequest(ConfigureRequest.type, { codeLens: true });
    assert.equal((await lensesOf(server, 'inventory.py')).length, 6);
  });

  it('refuses a codeLens setting that is not a boolean', async () => {
    await assert.rejects(server.conn.sendRequest(ConfigureRequest.type, { codeLens: 'no' as unknown as boolean }), (e: Error & { code?: number }) => {
      assert.equal(e.code, -32602);
      assert.match(e.message, /codeLens must be true or false/);
      return true;
    });
  });
});

describe('CodeLens capabilities and refresh', () => {
  let server: TestServer | undefined;
  after(() => stopServer(server));

  it('advertises incremental sync and lenses, honours codeLens: false at initialize, and asks the client to refresh', async () => {
    server = await startServer({}, false);
    const refreshes: number[] = [];
    server.conn.onRequest('workspace/codeLens/refresh', () => {
      refreshes.push(Date.now());
      return null;
    });
    const init = await server.conn.sendRequest<{ capabilities: Record<string, unknown> }>('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: { workspace: { codeLens: { refreshSupport: true } } },
      initializationOptions: { poolSize: 1, codeLens: false },
    });
    await server.conn.sendNotification('initialized', {});
    assert.equal(init.capabilities.textDocumentSync, 2); // TextDocumentSyncKind.Incremental
    assert.deepEqual(init.capabilities.codeLensProvider, { resolveProvider: false });

    await open(server, 'inventory.py', 'python');
    assert.deepEqual(await lensesOf(server, 'inventory.py'), []);
    // turning lenses on asks the client to fetch them again (its refresh request comes before configure's answer)
    await server.conn.sendRequest(ConfigureRequest.type, { codeLens: true });
    assert.equal(refreshes.length, 1);
    assert.equal((await lensesOf(server, 'inventory.py')).length, 6);
    // a configure that does not change the setting asks for nothing
    await server.conn.sendRequest(ConfigureRequest.type, { codeLens: true, limits: { timeoutMs: 5000 } });
    assert.equal(refreshes.length, 1);
  });
});
