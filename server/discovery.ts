/**
 * Runnable units in a document's text: what the CodeLenses (server) and the Test Explorer (client) offer to run.
 * Pure — no vscode, no I/O — so both sides can import it and it is unit-tested on plain strings.
 *
 * Units per language: Python — a `main` unit for the `__main__` block, else one `file` unit at the top, plus a
 * `test` unit per test function; JS/TS and shell — one `file` unit plus a `test` unit per test call/function (a
 * `describe` is a `test` unit too: running it runs its suite); Markdown — a `block` unit per runnable fence; C/C++
 * and other languages — none. Tests are found in any file, not only in files matching DEFAULT_TEST_GLOBS.
 *
 * A deliberately small line/character scanner, not a parser. Known limits:
 * - Python: only top-level `def test_*` / `async def test_*`, methods `test_*` directly inside a top-level
 *   `class Test*`, and a top-level `if __name__ == "__main__":`. Triple-quoted strings are skipped, but a line
 *   continuation (`\`) that hides a `def` is not understood; tabs and spaces count as one column each; a unit
 *   starts at its `def` line, not at its decorators; nested `Test*` classes are not searched.
 * - JS/TS: `test`, `it`, `describe`, `suite` (and `.only`/`.skip`/`.todo`) calls whose title is a string literal
 *   or a template literal without `${…}`; a title held in a variable or built by concatenation is not a unit (nor
 *   is anything nested in such a describe). Calls through another name (`const t = test`), `t.test(...)` subtests
 *   and `test.each` tables are not found. Regex literals are recognised by the usual "follows an operator"
 *   heuristic; a `/` after `)` is taken as division.
 * - Shell: top-level functions named `test_*` (`test_x() {`, `function test_x {`, `function test_x() {`); the body
 *   ends at its matching `}` (braces in here-documents are counted, so an unbalanced one there moves the end); a
 *   body that is not a `{ }` group (`test_x() ( … )`) is just its header line.
 * - Markdown: backtick and tilde fences (any indentation, so fences inside list items work); the language is the
 *   first word of the info string (`{.python}` works too). An unclosed fence runs to the end of the document (as
 *   CommonMark says). Empty blocks are not units; fences inside block quotes (`> ````) are not found.
 */
import type { SourceRange, RunUnitKind } from './protocol';

/** Languages the sandbox runs that discovery produces units for. */
export type SandboxLanguage = 'python' | 'javascript' | 'typescript' | 'shell' | 'c' | 'cpp';

export interface DiscoveredUnit {
  kind: RunUnitKind;
  /** The sandbox language to run it with. */
  language: SandboxLanguage;
  /** Tests: the name a runner selects it by (`TestMath.test_add`, `outer > inner > adds`, `test_backup`). */
  name?: string;
  /** Tests: the name's parts (`['outer', 'inner', 'adds']`), for a test tree. */
  path?: string[];
  /** The whole unit: function, call, `if` block, fenced block (fences included) or document. 0-based. */
  range: SourceRange;
  /** Markdown blocks: the block's code, without the fences. */
  code?: string;
}

/** Default globs of test files (the client's Test Explorer searches them; settings may replace them). */
export const DEFAULT_TEST_GLOBS: readonly string[] = ['**/test_*.py', '**/*_test.py', '**/*.test.{js,ts}', '**/*.test.sh'];

/** Whether a path's file name matches one of DEFAULT_TEST_GLOBS (without a glob library). */
export function isDefaultTestFile(filePath: string): boolean {
  const base = filePath.slice(Math.max(filePath.lastIndexOf('/'), filePath.lastIndexOf('\\')) + 1);
  return /^test_.*\.py$/.test(base) || /.+_test\.py$/.test(base) || /.+\.test\.(js|ts)$/.test(base) || /.+\.test\.sh$/.test(base);
}

/** The sandbox language of an editor language id (VS Code's ids and the sandbox's own), or undefined. */
export function sandboxLanguageOf(languageId: string): SandboxLanguage | undefined {
  switch (languageId) {
    case 'python':
      return 'python';
    case 'javascript':
      return 'javascript';
    case 'typescript':
      return 'typescript';
    case 'shell':
    case 'shellscript': // VS Code's id for .sh files
    case 'bash':
    case 'sh':
      return 'shell';
    case 'c':
      return 'c';
    case 'cpp':
      return 'cpp';
    default:
      return undefined;
  }
}

/** The language of a Markdown fence's info-string word (case-insensitive), or undefined when not runnable. */
export function fenceLanguageOf(info: string): SandboxLanguage | undefined {
  switch (info.toLowerCase()) {
    case 'python':
    case 'py':
    case 'python3':
      return 'python';
    case 'js':
    case 'javascript':
      return 'javascript';
    case 'ts':
    case 'typescript':
      return 'typescript';
    case 'sh':
    case 'bash':
    case 'shell':
      return 'shell';
    case 'c':
      return 'c';
    case 'cpp':
    case 'c++':
      return 'cpp';
    default:
      return undefined;
  }
}

/** Every runnable unit of a document, in document order. Unknown languages have none. */
export function discoverUnits(languageId: string, text: string): DiscoveredUnit[] {
  const lines = splitLines(text);
  if (languageId === 'markdown') return markdownBlocks(lines);
  const language = sandboxLanguageOf(languageId);
  switch (language) {
    case 'python':
      return pythonUnits(lines);
    case 'javascript':
    case 'typescript':
      return [fileUnit(language, lines), ...jsTests(language, text)];
    case 'shell':
      return [fileUnit(language, lines), ...shellTests(lines)];
    default:
      // C and C++ are runnable but have no units the issue asks for (a whole-file run is the editor's Run command).
      return [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

function splitLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}

function range(startLine: number, startChar: number, endLine: number, endChar: number): SourceRange {
  return { start: { line: startLine, character: startChar }, end: { line: endLine, character: endChar } };
}

/** A range over whole lines `first..last` (inclusive), ending at the end of `last`. */
function lineRange(lines: string[], first: number, last: number): SourceRange {
  return range(first, 0, last, lines[last]!.length);
}

function fileUnit(language: SandboxLanguage, lines: string[]): DiscoveredUnit {
  return { kind: 'file', language, range: lineRange(lines, 0, lines.length - 1) };
}

const indentOf = (line: string): number => line.length - line.trimStart().length;
const isBlankOrComment = (line: string, comment: string): boolean => {
  const t = line.trim();
  return t === '' || t.startsWith(comment);
};

// ---------------------------------------------------------------------------------------------------------------
// Python

const PY_MAIN = /^if\s+(?:__name__\s*==\s*(['"])__main__\1|(['"])__main__\2\s*==\s*__name__)\s*:/;
const PY_DEF = /^(\s*)(?:async\s+)?def\s+(test_\w*)\s*\(/;
const PY_CLASS = /^class\s+(Test\w*)\s*[(:]/;

/**
 * For each line: true when it is code (not inside a triple-quoted string that began on an earlier line). A line
 * that opens a triple-quoted string still counts as code (`x = """...`), the lines after it do not.
 */
function pythonCodeLines(lines: string[]): boolean[] {
  const code: boolean[] = [];
  let open: string | undefined; // the triple quote we are inside, if any
  for (const line of lines) {
    code.push(open === undefined);
    let i = 0;
    while (i < line.length) {
      if (open) {
        const end = line.indexOf(open, i);
        if (end < 0) break;
        open = undefined;
        i = end + 3;
        continue;
      }
      const c = line[i]!;
      if (c === '#') break;
      if (c === '"' || c === "'") {
        if (line.startsWith(c.repeat(3), i)) {
          open = c.repeat(3);
          i += 3;
          continue;
        }
        // a one-line string: skip to its closing quote
        let j = i + 1;
        while (j < line.length && line[j] !== c) j += line[j] === '\\' ? 2 : 1;
        i = j + 1;
        continue;
      }
      i++;
    }
  }
  return code;
}

/** Bracket balance of a line's code (strings and comments skipped), to follow multi-line signatures. */
function bracketDelta(line: string): number {
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '#') break;
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < line.length && line[j] !== c) j += line[j] === '\\' ? 2 : 1;
      i = j;
    } else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
  }
  return depth;
}

/**
 * The last line of the block whose header starts at `start` with indentation `indent`: the header may span lines
 * (open brackets); the body is every later line indented deeper, or blank, or inside a triple-quoted string.
 * Trailing blank and comment lines are not part of it.
 */
function pythonBlockEnd(lines: string[], code: boolean[], start: number, indent: number): number {
  let i = start;
  let depth = bracketDelta(lines[i]!);
  while (depth > 0 && i + 1 < lines.length) depth += bracketDelta(lines[++i]!);
  let last = i;
  for (let j = i + 1; j < lines.length; j++) {
    const line = lines[j]!;
    if (!code[j]) {
      last = j;
      continue;
    }
    if (isBlankOrComment(line, '#')) continue;
    if (indentOf(line) <= indent) break;
    last = j;
  }
  return last;
}

function pythonUnits(lines: string[]): DiscoveredUnit[] {
  const code = pythonCodeLines(lines);
  const units: DiscoveredUnit[] = [];
  let sawMain = false;
  for (let i = 0; i < lines.length; i++) {
    if (!code[i]) continue;
    const line = lines[i]!;
    if (PY_MAIN.test(line)) {
      sawMain = true;
      units.push({ kind: 'main', language: 'python', range: lineRange(lines, i, pythonBlockEnd(lines, code, i, 0)) });
      continue;
    }
    const def = PY_DEF.exec(line);
    if (def && def[1] === '') {
      const end = pythonBlockEnd(lines, code, i, 0);
      units.push({ kind: 'test', language: 'python', name: def[2]!, path: [def[2]!], range: lineRange(lines, i, end) });
      i = end;
      continue;
    }
    const cls = PY_CLASS.exec(line);
    if (cls) {
      const end = pythonBlockEnd(lines, code, i, 0);
      let bodyIndent: number | undefined; // the indentation of the class's own statements
      for (let j = i + 1; j <= end; j++) {
        if (!code[j] || isBlankOrComment(lines[j]!, '#')) continue;
        const ind = indentOf(lines[j]!);
        bodyIndent ??= ind;
        const m = ind === bodyIndent ? PY_DEF.exec(lines[j]!) : null;
        if (!m) continue;
        const mEnd = pythonBlockEnd(lines, code, j, ind);
        const name = `${cls[1]!}.${m[2]!}`;
        units.push({ kind: 'test', language: 'python', name, path: [cls[1]!, m[2]!], range: lineRange(lines, j, mEnd) });
        j = mEnd;
      }
      i = end;
    }
  }
  // A file with a main block runs through it (the same run); any other file gets a whole-file lens at the top.
  if (!sawMain) units.unshift(fileUnit('python', lines));
  return units;
}

// ---------------------------------------------------------------------------------------------------------------
// JavaScript / TypeScript

const JS_CALLEES = new Set(['test', 'it', 'describe', 'suite']);
const JS_MODIFIERS = new Set(['only', 'skip', 'todo']);
const isIdent = (c: string | undefined): boolean => c !== undefined && /[\w$]/.test(c);

interface OpenCall {
  /** Paren depth outside the call: the call ends when a `)` brings the depth back to it. */
  depth: number;
  /** Title, or null when it is not a literal (the call and everything inside it are not units). */
  title: string | null;
  callee: string;
  start: { line: number; character: number };
}

/**
 * Scans JS/TS text once, character by character, skipping comments, strings, template literals (with `${}`
 * nesting) and regex literals, and following the paren depth of every `test(`/`it(`/`describe(` call.
 */
function jsTests(language: SandboxLanguage, text: string): DiscoveredUnit[] {
  const units: DiscoveredUnit[] = [];
  const open: OpenCall[] = [];
  let line = 0;
  let lineStart = 0;
  let depth = 0;
  /** Template literal nesting: for each `${` we are inside, the brace depth at which it closes. */
  const templates: number[] = [];
  let braces = 0;
  let lastSignificant = ''; // last non-space code character, for the regex heuristic
  let lastWord = '';

  const pos = (i: number) => ({ line, character: i - lineStart });
  const newlineAt = (i: number) => {
    line++;
    lineStart = i + 1;
  };

  /** Skips a string or template body from `i` (just past the opening quote); returns the index after it. */
  const skipQuoted = (i: number, quote: string): number => {
    while (i < text.length) {
      const c = text[i]!;
      if (c === '\\') {
        if (text[i + 1] === '\n') newlineAt(i + 1);
        i += 2;
        continue;
      }
      if (c === '\n') {
        if (quote !== '`') return i; // an unterminated string ends at the line
        newlineAt(i);
      }
      if (c === quote) return i + 1;
      if (quote === '`' && c === '$' && text[i + 1] === '{') {
        templates.push(braces);
        braces++;
        return -(i + 2); // negative: we are now in code inside `${`
      }
      i++;
    }
    return i;
  };

  /** Reads a literal title at `i` (after whitespace/comments), without moving the scanner. */
  const literalTitle = (i: number): string | null => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    const q = text[i];
    if (q !== '"' && q !== "'" && q !== '`') return null;
    let out = '';
    for (let j = i + 1; j < text.length; j++) {
      const c = text[j]!;
      if (c === '\\') {
        const n = text[j + 1] ?? '';
        out += ({ n: '\n', t: '\t', r: '\r', '\n': '' } as Record<string, string>)[n] ?? n;
        j++;
        continue;
      }
      if (c === q) {
        // `'a' + b` is not a fixed title: the literal must be the whole first argument
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k]!)) k++;
        return text[k] === ',' || text[k] === ')' ? out : null;
      }
      if (q === '`' && c === '$' && text[j + 1] === '{') return null; // substitutions: not a fixed title
      if (c === '\n' && q !== '`') return null;
      out += c;
    }
    return null;
  };

  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      newlineAt(i);
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    // comments
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      i += 2;
      while (i < text.length && !(text[i] === '*' && text[i + 1] === '/')) {
        if (text[i] === '\n') newlineAt(i);
        i++;
      }
      i += 2;
      continue;
    }
    // strings and templates
    if (c === '"' || c === "'" || c === '`') {
      const r = skipQuoted(i + 1, c);
      i = Math.abs(r);
      lastSignificant = r < 0 ? '{' : c;
      lastWord = '';
      continue;
    }
    if (c === '}' && templates.length > 0 && templates[templates.length - 1] === braces - 1) {
      // the end of a `${…}`: back into the template literal
      templates.pop();
      braces--;
      const r = skipQuoted(i + 1, '`');
      i = Math.abs(r);
      lastSignificant = r < 0 ? '{' : '`';
      continue;
    }
    // regex literal: a `/` where an operand is expected
    if (c === '/' && (lastSignificant === '' || '(,=:[!&|?{};+-*%<>~^'.includes(lastSignificant) || ['return', 'typeof', 'case', 'in', 'of', 'void', 'yield', 'await'].includes(lastWord))) {
      let j = i + 1;
      let inClass = false;
      while (j < text.length && text[j] !== '\n') {
        const d = text[j]!;
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      if (text[j] === '/') {
        i = j + 1;
        while (isIdent(text[i])) i++;
        lastSignificant = '/';
        lastWord = '';
        continue;
      }
    }
    // identifiers: maybe a test call
    if (isIdent(c) && !isIdent(text[i - 1])) {
      let j = i;
      while (isIdent(text[j])) j++;
      const word = text.slice(i, j);
      const before = lastSignificant;
      if (JS_CALLEES.has(word) && before !== '.' && lastWord !== 'function') {
        let k = j;
        if (text[k] === '.') {
          let m = k + 1;
          while (isIdent(text[m])) m++;
          if (JS_MODIFIERS.has(text.slice(k + 1, m))) k = m;
        }
        while (text[k] === ' ' || text[k] === '\t') k++;
        if (text[k] === '(') {
          open.push({ depth, title: literalTitle(k + 1), callee: word, start: pos(i) });
          depth++;
          i = k + 1;
          lastSignificant = '(';
          lastWord = '';
          continue;
        }
      }
      lastWord = word;
      lastSignificant = word[word.length - 1]!;
      i = j;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      const top = open[open.length - 1];
      if (top && top.depth === depth) {
        open.pop();
        const titles = [...open.map((o) => o.title), top.title];
        if (titles.every((t): t is string => t !== null)) {
          units.push({
            kind: 'test',
            language,
            name: titles.join(' > '),
            path: titles,
            range: { start: top.start, end: { line, character: i + 1 - lineStart } },
          });
        }
      }
    } else if (c === '{') braces++;
    else if (c === '}') braces--;
    lastSignificant = c;
    lastWord = '';
    i++;
  }
  // units are pushed as calls close (inner first): report them in document order
  return units.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
}

// ---------------------------------------------------------------------------------------------------------------
// Shell

const SH_FUNC = /^(?:function\s+(test_[\w-]*)\s*(?:\(\s*\))?|(test_[\w-]*)\s*\(\s*\))\s*(\{)?/;

/** Brace balance of a shell line, skipping quotes and comments. */
function shellBraceDelta(line: string): number {
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\') i++;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) break;
    else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      i = end < 0 ? line.length : end;
    } else if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      i = j;
    } else if (c === '$' && line[i + 1] === '{') {
      // ${var} expansion: skip to its close, not a block brace
      const end = line.indexOf('}', i);
      i = end < 0 ? line.length : end;
    } else if (c === '{') depth++;
    else if (c === '}') depth--;
  }
  return depth;
}

function shellTests(lines: string[]): DiscoveredUnit[] {
  const units: DiscoveredUnit[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = SH_FUNC.exec(lines[i]!);
    if (!m) continue;
    const name = (m[1] ?? m[2])!;
    let depth = shellBraceDelta(lines[i]!);
    let end = i;
    if (m[3] === undefined) {
      // the body's `{` may be on the next line; a body that is not a `{ }` group (a subshell) is just the header
      if (!/^\s*\{/.test(lines[i + 1] ?? '')) {
        units.push({ kind: 'test', language: 'shell', name, path: [name], range: lineRange(lines, i, i) });
        continue;
      }
      end = i + 1;
      depth += shellBraceDelta(lines[end]!);
    }
    while (end + 1 < lines.length && depth > 0) depth += shellBraceDelta(lines[++end]!);
    units.push({ kind: 'test', language: 'shell', name, path: [name], range: lineRange(lines, i, end) });
    i = end;
  }
  return units;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const FENCE_OPEN = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/;

function markdownBlocks(lines: string[]): DiscoveredUnit[] {
  const units: DiscoveredUnit[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE_OPEN.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, info] = open as unknown as [string, string, string, string];
    // A backtick fence's info string may not contain backticks (CommonMark); FENCE_OPEN stops the word there.
    if (fence[0] === '`' && lines[i]!.slice(indent.length + fence.length).includes('`')) continue;
    const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    let end = i + 1;
    while (end < lines.length && !close.test(lines[end]!)) end++;
    const body = lines.slice(i + 1, Math.min(end, lines.length));
    const language = fenceLanguageOf(info.replace(/^\{?\.?/, '').replace(/[},].*$/, ''));
    const last = Math.min(end, lines.length - 1);
    if (language && body.some((l) => l.trim() !== '')) {
      const code = body.map((l) => l.slice(Math.min(indentOf(l), indent.length))).join('\n');
      // one final newline, whatever blank lines the block (or an unclosed one, the document) ended with
      units.push({ kind: 'block', language, range: lineRange(lines, i, last), code: `${code.replace(/\s+$/, '')}\n` });
    }
    i = last;
  }
  return units;
}
