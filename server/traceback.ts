/**
 * Where a failed run failed: a failure's output (stderr, stdout, or both) → the file, line and message a test
 * result or a diagnostic can point at. Pure (no I/O), shared by the client's Test Explorer and tests.
 *
 * Understands: Python tracebacks (chained ones: the last; SyntaxError's frame without `in`), Node stack traces
 * (`at fn (file:line:col)`, `at file:line:col`) and the uncaught-error header (`file:line`), node:test's TAP
 * (`not ok` … `stack:`/`location:`) and spec reporters, node:assert messages, bash's `file: line N: …`, and
 * gcc/g++/esbuild's `file:line:col: error: …`.
 *
 * The sandbox runs a program as `main.<ext>` in a temporary work dir; frames in that file are mapped back to
 * `options.file`. Known limits: a TypeScript run's runtime lines are those of the transpiled JavaScript (no source
 * maps), which match the source only where esbuild kept the lines; Python columns are not reported (the caret
 * line is relative to the stripped source line); linker errors (`undefined reference`) and crashes without a
 * message (a segfault) have no location.
 */

export interface FailureLocation {
  /** The file that failed: `options.file` for the run's own program; undefined when that was not given. */
  file?: string;
  /** 1-based. */
  line: number;
  /** 1-based, when the output says. */
  column?: number;
  /** The error's own words, e.g. `ValueError: invalid literal for int() with base 10: 'x'`. */
  message: string;
}

export interface LocateOptions {
  /**
   * The user's file: the original of the sandbox's `main.<ext>`, or the test file a harness imported. Frames in it
   * are preferred to every other frame.
   */
  file?: string;
  /** The sandbox language of the run (`python`, `javascript`, `typescript`, `shell`, `c`, `cpp`): its format first. */
  language?: string;
}

interface Frame {
  file: string;
  line: number;
  column?: number;
}

const SANDBOX_PROGRAM = /^main\.(py|js|mjs|cjs|ts|mts|cts|sh|bash|c|cpp|cc|cxx)$/;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

const baseName = (f: string): string => f.slice(Math.max(f.lastIndexOf('/'), f.lastIndexOf('\\')) + 1);
const stripFileUrl = (f: string): string => (f.startsWith('file://') ? decodeURIComponent(f.slice('file://'.length)) : f);

/** Whether `frameFile` is the user's file (2), the sandbox program (1), or something else (0). */
function rank(frameFile: string, options: LocateOptions): number {
  const f = stripFileUrl(frameFile);
  if (options.file && (f === options.file || f === baseName(options.file) || f.endsWith(`/${options.file}`))) return 2;
  return SANDBOX_PROGRAM.test(baseName(f)) ? 1 : 0;
}

/** The best frame: the user's file first, then the sandbox program, then `fallback`; in `frames` order. */
function pick(frames: Frame[], options: LocateOptions, fallback: (frames: Frame[]) => Frame | undefined): Frame | undefined {
  return frames.find((f) => rank(f.file, options) === 2) ?? frames.find((f) => rank(f.file, options) === 1) ?? fallback(frames);
}

function located(frame: Frame, message: string, options: LocateOptions): FailureLocation {
  const file = stripFileUrl(frame.file);
  const r = rank(file, options);
  const loc: FailureLocation = { line: frame.line, message: message.trim() };
  if (r === 2) loc.file = options.file!;
  else if (r === 1) {
    if (options.file) loc.file = options.file;
  } else loc.file = file;
  if (frame.column !== undefined) loc.column = frame.column;
  return loc;
}

/** The location of the failure in `output`, or undefined when it names none. */
export function locateFailure(output: string, options: LocateOptions = {}): FailureLocation | undefined {
  const lines = output.replace(ANSI, '').split(/\r\n|\r|\n/);
  const parsers: Record<string, (lines: string[], o: LocateOptions) => FailureLocation | undefined> = {
    python,
    node: (l, o) => nodeTap(l, o) ?? nodeStack(l, o),
    compiler,
    bash,
  };
  const first =
    options.language === 'python'
      ? 'python'
      : options.language === 'javascript' || options.language === 'typescript'
        ? 'node'
        : options.language === 'shell'
          ? 'bash'
          : options.language === 'c' || options.language === 'cpp'
            ? 'compiler'
            : undefined;
  // A TypeScript compile error (`main.ts:3:5: error: …`) has the compiler's shape, so every format is tried.
  const order = [...(first ? [first] : []), ...['python', 'compiler', 'bash', 'node'].filter((p) => p !== first)];
  for (const name of order) {
    const found = parsers[name]!(lines, options);
    if (found) return found;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Python

const PY_FRAME = /^\s*File "(.+?)", line (\d+)(?:, in .+)?$/;

function python(lines: string[], options: LocateOptions): FailureLocation | undefined {
  // Chained exceptions print one traceback each; the last is the one that ended the program.
  let start = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('Traceback (most recent call last):')) {
      start = i;
      break;
    }
  }
  const frames: Frame[] = [];
  let lastFrameLine = -1;
  for (let i = start; i < lines.length; i++) {
    const m = PY_FRAME.exec(lines[i]!);
    if (!m) continue;
    frames.push({ file: m[1]!, line: Number(m[2]) });
    lastFrameLine = i;
  }
  if (frames.length === 0) return undefined;
  // The exception line is the first unindented line after the last frame (code and caret lines are indented).
  let message = '';
  for (let i = lastFrameLine + 1; i < lines.length; i++) {
    if (lines[i]!.trim() !== '' && !/^\s/.test(lines[i]!)) {
      message = lines[i]!;
      break;
    }
  }
  // Innermost first: tracebacks list the outermost call first.
  const innermostFirst = [...frames].reverse();
  const frame = pick(innermostFirst, options, (f) => f[0]);
  return frame && located(frame, message, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Node

/** `at fn (file:line:col)`, `at file:line:col`, and TAP's `stack:` lines, which drop the `at`. */
const NODE_FRAME = /^\s*(?:at\s+)?(?:.*?\()?((?:file:\/\/)?[^\s()]+?):(\d+):(\d+)\)?\s*$/;
const NODE_HEADER = /^((?:file:\/\/)?\/?[^\s:]+?\.(?:[mc]?js|[mc]?ts)):(\d+)$/;
const isInternal = (file: string): boolean => file.startsWith('node:') || file.includes('/node_modules/') || !file.includes('.');

function nodeFrames(lines: string[]): Frame[] {
  const frames: Frame[] = [];
  for (const line of lines) {
    const m = NODE_FRAME.exec(line);
    if (m) frames.push({ file: m[1]!, line: Number(m[2]), column: Number(m[3]) });
  }
  return frames;
}

/** node:test's TAP reporter: the first `not ok` that failed by itself (not because of its subtests). */
function nodeTap(lines: string[], options: LocateOptions): FailureLocation | undefined {
  for (let i = 0; i < lines.length; i++) {
    const notOk = /^(\s*)not ok \d+ - (.*)$/.exec(lines[i]!);
    if (!notOk || !/^\s*---\s*$/.test(lines[i + 1] ?? '')) continue;
    const indent = notOk[1]!.length;
    // the YAML block runs to its `...`
    let end = i + 2;
    while (end < lines.length && !/^\s*\.\.\.\s*$/.test(lines[end]!)) end++;
    const yaml = lines.slice(i + 2, end);
    const field = (name: string): { value: string; at: number } | undefined => {
      const at = yaml.findIndex((l) => l.startsWith(`${' '.repeat(indent + 2)}${name}:`));
      return at < 0 ? undefined : { value: yaml[at]!.slice(yaml[at]!.indexOf(':') + 1).trim(), at };
    };
    if (field('failureType')?.value.includes('subtestsFailed')) continue;
    /** A field's text: inline (`'…'`) or a `|-` block (the lines indented deeper than the field). */
    const text = (name: string): string[] => {
      const f = field(name);
      if (!f) return [];
      if (!f.value.startsWith('|') && !f.value.startsWith('>')) return [f.value.replace(/^'(.*)'$/, '$1').replace(/''/g, "'")];
      const block: string[] = [];
      for (let j = f.at + 1; j < yaml.length && (yaml[j]!.trim() === '' || /^\s*/.exec(yaml[j]!)![0].length > indent + 2); j++) {
        block.push(yaml[j]!.trim());
      }
      return block;
    };
    const errorText = text('error');
    const name = field('name')?.value.replace(/^'(.*)'$/, '$1');
    let message = errorText.join('\n').replace(/\n{3,}/g, '\n\n').trim() || `test "${notOk[2]}" failed`;
    if (name && !message.startsWith(name)) message = `${name}: ${message}`;
    const frame =
      pick(nodeFrames(text('stack')), options, () => undefined) ??
      pick(nodeFrames(text('location').map((l) => l.replace(/^'(.*)'$/, '$1'))), options, (f) => f[0]);
    if (frame) return located(frame, message, options);
  }
  return undefined;
}

/** A Node stack trace (uncaught error, node:test's spec reporter, assert): the error's header and best frame. */
function nodeStack(lines: string[], options: LocateOptions): FailureLocation | undefined {
  const firstAt = lines.findIndex((l) => /^\s*at\s/.test(l) && NODE_FRAME.test(l));
  const header = lines.map((l) => NODE_HEADER.exec(l.trim())).find((m) => m !== null);
  if (firstAt < 0 && !header) return undefined;
  // The error's words: from its `Name: …` line down to the first frame.
  let message = '';
  if (firstAt >= 0) {
    const isErrorLine = (l: string) => /^\s*(?:[A-Z]\w*(?:Error|Exception)|Error)\b[^:]*(?::|$)/.test(l);
    let from = firstAt - 1;
    while (from >= 0 && from > firstAt - 20 && !isErrorLine(lines[from]!)) from--;
    if (from < 0 || !isErrorLine(lines[from]!)) {
      // no `Name: …` line: the nearest non-empty line above the stack
      from = firstAt - 1;
      while (from > 0 && lines[from]!.trim() === '') from--;
    }
    message = lines
      .slice(from, firstAt)
      .map((l) => l.trim())
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim();
  }
  if (!message) message = lines.find((l) => l.trim() !== '')?.trim() ?? 'failed';
  const frames: Frame[] = [];
  // the stack starting at the first `at`, up to the first line that is not a frame
  for (let i = Math.max(firstAt, 0); firstAt >= 0 && i < lines.length; i++) {
    const m = /^\s*at\s/.test(lines[i]!) ? NODE_FRAME.exec(lines[i]!) : null;
    if (!m) break;
    frames.push({ file: m[1]!, line: Number(m[2]), column: Number(m[3]) });
  }
  const frame =
    pick(frames, options, () => undefined) ??
    (header ? { file: header[1]!, line: Number(header[2]) } : frames.find((f) => !isInternal(f.file)));
  return frame && located(frame, message, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Compilers and bash

/** gcc, g++ (`main.c:5:5: error: …`, `fatal error:`) and the server's TypeScript transpile errors (same shape). */
function compiler(lines: string[], options: LocateOptions): FailureLocation | undefined {
  for (const line of lines) {
    const m = /^(.+?):(\d+):(?:(\d+):)? (?:fatal )?error: (.*)$/.exec(line);
    if (!m) continue;
    const frame: Frame = { file: m[1]!, line: Number(m[2]) };
    if (m[3]) frame.column = Number(m[3]);
    return located(frame, m[4]!, options);
  }
  return undefined;
}

/** bash: `main.sh: line 3: nosuchcmd: command not found` — the first error in the user's file, else the first. */
function bash(lines: string[], options: LocateOptions): FailureLocation | undefined {
  const frames: { frame: Frame; message: string }[] = [];
  for (const line of lines) {
    const m = /^(.+?): line (\d+): (.*)$/.exec(line);
    if (m) frames.push({ frame: { file: m[1]!, line: Number(m[2]) }, message: m[3]! });
  }
  const best =
    frames.find((f) => rank(f.frame.file, options) === 2) ?? frames.find((f) => rank(f.frame.file, options) === 1) ?? frames[0];
  return best && located(best.frame, best.message, options);
}
