import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DiagnosticSeverity } from 'vscode-languageserver/node';
import { DIAGNOSTIC_SOURCE, diagnosticsFor } from '../../server/diagnostics';

void describe('diagnosticsFor', () => {
  void it('turns a finding into a diagnostic on its token', () => {
    assert.deepEqual(diagnosticsFor('python', 'x = 1\nimport socket\n'), [
      {
        range: { start: { line: 1, character: 7 }, end: { line: 1, character: 13 } },
        severity: DiagnosticSeverity.Warning,
        source: 'Sandbox Runner',
        code: 'network',
        message: 'imports `socket`, which opens a network connection: runs have no network in the sandbox, so this will fail',
      },
    ]);
    assert.equal(DIAGNOSTIC_SOURCE, 'Sandbox Runner');
  });

  void it('a path diagnostic spans the whole path', () => {
    const [d] = diagnosticsFor('python', 'data = open("/etc/ssh/sshd_config").read()\n');
    assert.deepEqual(d.range, { start: { line: 0, character: 13 }, end: { line: 0, character: 33 } });
    assert.equal(d.code, 'file-outside-workdir');
  });

  void it('maps severities: error → Error, warning → Warning, info → Information', () => {
    const bySeverity = (languageId: string, text: string) => diagnosticsFor(languageId, text).map((d) => [d.code, d.severity]);
    assert.deepEqual(bySeverity('shellscript', 'rm -rf /\n'), [['file-outside-workdir', DiagnosticSeverity.Error]]);
    assert.deepEqual(bySeverity('shellscript', 'curl x\n'), [['network', DiagnosticSeverity.Warning]]);
    assert.deepEqual(bySeverity('python', 'import os\nkey = os.environ["K"]\n'), [['environment', DiagnosticSeverity.Information]]);
  });

  void it('maps VS Code language ids to scanner languages', () => {
    const cases: [string, string, string][] = [
      ['python', 'eval(x)', 'dynamic-eval'],
      ['javascript', 'eval(x);', 'dynamic-eval'],
      ['javascriptreact', 'const t = process.env.TOKEN;', 'environment'],
      ['typescript', "import net from 'node:net';", 'network'],
      ['typescriptreact', 'const r = await fetch(u);', 'network'],
      ['shellscript', 'eval "$x"', 'dynamic-eval'],
      ['c', 'system("ls");', 'subprocess'],
      ['cpp', 'std::system("ls");', 'subprocess'],
    ];
    for (const [languageId, text, code] of cases) {
      assert.deepEqual(
        diagnosticsFor(languageId, text).map((d) => d.code),
        [code],
        languageId,
      );
    }
  });

  void it('unknown language ids and clean programs have no diagnostics', () => {
    assert.deepEqual(diagnosticsFor('markdown', '```sh\ncurl x | sh\n```\n'), []);
    assert.deepEqual(diagnosticsFor('ruby', 'system("ls")'), []);
    assert.deepEqual(diagnosticsFor('toString', 'eval(x)'), [], 'not an inherited property name');
    assert.deepEqual(diagnosticsFor('python', 'print("hello")\n'), []);
  });

  void it('ranges stay inside the line with CRLF line ends', () => {
    const [d] = diagnosticsFor('shellscript', 'echo hi\r\ncurl x\r\n');
    assert.deepEqual(d.range, { start: { line: 1, character: 0 }, end: { line: 1, character: 4 } });
  });

  void it('one diagnostic per finding, in document order', () => {
    const diagnostics = diagnosticsFor('python', 'import socket\nimport subprocess\neval(x)\n');
    assert.deepEqual(
      diagnostics.map((d) => [d.range.start.line, d.code]),
      [
        [0, 'network'],
        [1, 'subprocess'],
        [2, 'dynamic-eval'],
      ],
    );
  });

  void it('server/diagnostics.ts never imports vscode (it runs in the server)', () => {
    const source = readFileSync(new URL('../../server/diagnostics.ts', import.meta.url), 'utf8');
    assert.doesNotMatch(source, /from\s+['"]vscode['"]|require\(\s*['"]vscode['"]\s*\)/);
  });
});
