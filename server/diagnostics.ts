/**
 * The security scan (server/scanner.ts) as LSP diagnostics, so the editor underlines risky operations as they are
 * typed. Pure: no vscode import (this runs in the server), no I/O.
 */
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver/node';
import type { FindingSeverity } from './protocol';
import { scanMatches, type ScanLanguage } from './scanner';

export const DIAGNOSTIC_SOURCE = 'Sandbox Runner';

/** VS Code language ids (and the sandbox's own) → the language the scanner reads the text as. */
const SCAN_LANGUAGE_OF: Readonly<Record<string, ScanLanguage>> = {
  python: 'python',
  javascript: 'javascript',
  javascriptreact: 'javascript',
  typescript: 'typescript',
  typescriptreact: 'typescript',
  shellscript: 'shell',
  shell: 'shell',
  c: 'c',
  cpp: 'cpp',
};

const SEVERITY: Record<FindingSeverity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
};

/** One diagnostic per scan finding of a document; none for languages the scan does not know. */
export function diagnosticsFor(languageId: string, text: string): Diagnostic[] {
  const language = Object.hasOwn(SCAN_LANGUAGE_OF, languageId) ? SCAN_LANGUAGE_OF[languageId] : undefined;
  if (!language) return [];
  const matches = scanMatches(language, text);
  if (matches.length === 0) return [];
  const lines = text.split('\n');
  return matches.map((m) => {
    const line = m.line - 1;
    const lineText = (lines[line] ?? '').replace(/\r$/, '');
    let start: number;
    let end: number;
    if (m.column !== undefined) {
      start = m.column - 1;
      end = Math.min(start + m.length, lineText.length);
    } else {
      // No column: underline the line's text without its indentation.
      start = lineText.length - lineText.trimStart().length;
      end = lineText.trimEnd().length;
    }
    return {
      range: { start: { line, character: start }, end: { line, character: Math.max(end, start) } },
      severity: SEVERITY[m.severity],
      source: DIAGNOSTIC_SOURCE,
      code: m.ruleId,
      message: m.message,
    };
  });
}
