/**
 * Test runs for the Test Explorer: which tests a document holds (server/discovery.ts), the program that runs a test
 * of a file on disk (as ExecuteParams for the engine), and what a run's result says about each test. Pure — no I/O,
 * no vscode — so it is unit-tested on plain strings; server/main.ts wires it to `sandbox/discoverTests` and
 * `sandbox/runTests`.
 *
 * Harnesses (each run gets `workspace` = the test file's directory, so it may import its neighbours; the run's cwd
 * stays its own fresh work dir):
 * - Python `test_x` / `TestCls.test_x`: a small program that puts the file's directory on `sys.path`, loads the file
 *   as a module by path (importlib), calls the function (a method on a fresh instance — `unittest.TestCase`
 *   subclasses get `setUp`/`tearDown` — and a coroutine through `asyncio.run`), prints `PASS <name>`; an exception
 *   prints its traceback and exits 1 (the test failed); a file that does not load, or a test that is not in it,
 *   exits 3 after a `SANDBOX-TEST ERROR:` line (the test errored). No pytest: fixtures and parametrize are not
 *   supported.
 * - JavaScript `*.test.js` (and `.mjs`/`.cjs`): a program that `import()`s the file, so its node:test tests run
 *   and report as TAP (node's default reporter when stdout is not a terminal); every test of one file shares that
 *   one run, and each test's verdict is read from its own TAP line (`ok`/`not ok`, nested by `# Subtest:`).
 * - TypeScript `*.test.ts`: the file's own text, run as `typescript` (transpiled by the server; self-contained test
 *   files only: a relative import does not resolve from the run's work dir), read the same way as JavaScript, but
 *   a failure gets no line (the transpiled lines are not the source's; the client points at the test instead).
 * - Shell `test_x`: bash that sources the file and calls `test_x`; its exit status is the verdict.
 */
import { discoverUnits, sandboxLanguageOf } from './discovery';
import type { DiscoveredTest, ExecuteParams, ExecutionResult, Limits, TestRunItem, TestRunResult } from './protocol';
import { locateFailure } from './traceback';

/** The line a harness prints (on stderr) before exiting 3 when the test could not be run at all. */
export const HARNESS_ERROR = 'SANDBOX-TEST ERROR:';
/** The exit code of a harness that could not run the test (load failure, test not found). */
export const HARNESS_ERROR_EXIT = 3;

/** The tests of a document (test units only), for `sandbox/discoverTests`. */
export function discoverTests(languageId: string, text: string): DiscoveredTest[] {
  return discoverUnits(languageId, text)
    .filter((u) => u.kind === 'test' && u.name !== undefined)
    .map((u) => {
      const path = u.path ?? [u.name!];
      return { id: u.name!, path, name: path[path.length - 1]!, kind: u.kind, range: u.range };
    });
}

const dirname = (f: string): string => {
  const i = Math.max(f.lastIndexOf('/'), f.lastIndexOf('\\'));
  return i <= 0 ? f.slice(0, i + 1) || '/' : f.slice(0, i);
};
const basename = (f: string): string => f.slice(Math.max(f.lastIndexOf('/'), f.lastIndexOf('\\')) + 1);
/** A JSON string is a valid Python and JavaScript string literal. */
const literal = (s: string): string => JSON.stringify(s);
const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const PY_TEST_NAME = /^(?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*$/;
const SH_TEST_NAME = /^[A-Za-z_][\w-]*$/;

/** The Python program that runs test `name` (`test_x` or `Class.test_x`) of the file `file`. */
export function pythonHarness(file: string, name: string): string {
  const stem = basename(file).replace(/\.py$/, '');
  const moduleName = /^[A-Za-z_]\w*$/.test(stem) ? stem : 'sandbox_test_module';
  return `import asyncio, importlib.util, inspect, os, sys, traceback
FILE = ${literal(file)}
NAME = ${literal(name)}
sys.path.insert(0, os.path.dirname(FILE))
try:
    spec = importlib.util.spec_from_file_location(${literal(moduleName)}, FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
except BaseException:
    traceback.print_exc()
    print(f"${HARNESS_ERROR} could not import {FILE}", file=sys.stderr)
    sys.exit(${HARNESS_ERROR_EXIT})
owner_name, _, function_name = NAME.rpartition(".")
owner = getattr(module, owner_name, None) if owner_name else module
if owner is None or not callable(getattr(owner, function_name, None)):
    print(f"${HARNESS_ERROR} no test {NAME} in {FILE}", file=sys.stderr)
    sys.exit(${HARNESS_ERROR_EXIT})
def call():
    if not owner_name:
        return getattr(module, function_name)()
    import unittest
    if isinstance(owner, type) and issubclass(owner, unittest.TestCase):
        instance = owner(function_name)
        instance.setUp()
        try:
            result = getattr(instance, function_name)()
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            return result
        finally:
            instance.tearDown()
    return getattr(owner(), function_name)()
try:
    result = call()
    if inspect.iscoroutine(result):
        asyncio.run(result)
except BaseException as error:
    traceback.print_exc()
    print(f"FAIL {NAME}: {type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(1)
print(f"PASS {NAME}")
`;
}

/** The JavaScript program that imports a node:test file, so its tests run and report as TAP. */
export function javascriptHarness(file: string): string {
  // CommonJS (the sandbox's main.js): a dynamic import() loads CommonJS and ES module test files alike.
  return `const { pathToFileURL } = require('node:url');
const file = ${literal(file)};
import(pathToFileURL(file).href).catch((error) => {
  console.error((error && error.stack) || String(error));
  console.error(${literal(`${HARNESS_ERROR} could not import `)} + file);
  process.exit(${HARNESS_ERROR_EXIT});
});
`;
}

/** The bash program that sources a shell test file and calls test function `name`. */
export function shellHarness(file: string, name: string): string {
  const f = shellQuote(file);
  return `source ${f} || { echo ${shellQuote(`${HARNESS_ERROR} could not source ${file}`)} >&2; exit ${HARNESS_ERROR_EXIT}; }
if ! declare -F ${name} >/dev/null; then
  echo ${shellQuote(`${HARNESS_ERROR} no function ${name} in ${file}`)} >&2
  exit ${HARNESS_ERROR_EXIT}
fi
${name}
status=$?
if [ "$status" -eq 0 ]; then echo ${shellQuote(`PASS ${name}`)}; else echo "FAIL ${name} (exit status $status)" >&2; exit 1; fi
`;
}

/** How the tests of a request map to runs. */
export interface TestPlan {
  /** The runs to make, for one executeBatch. */
  programs: ExecuteParams[];
  /** Per item: the index of its run in `programs`, or why it cannot run. */
  assignment: ({ program: number; language: string } | { error: string })[];
}

/** The runs for a request's tests: one per Python/shell test, one per JS/TS file (shared by its tests). */
export function planTestRuns(items: TestRunItem[], limits?: Partial<Limits>): TestPlan {
  const programs: ExecuteParams[] = [];
  const assignment: TestPlan['assignment'] = [];
  const byFile = new Map<string, number>();
  const add = (p: ExecuteParams): number => {
    if (limits) p.limits = { ...limits };
    programs.push(p);
    return programs.length - 1;
  };
  for (const item of items) {
    const language = sandboxLanguageOf(item.languageId);
    const workspace = item.workspace ?? dirname(item.file);
    if (!item.file.startsWith('/')) {
      assignment.push({ error: `the test file must be an absolute path, got "${item.file}"` });
      continue;
    }
    switch (language) {
      case 'python':
        if (!PY_TEST_NAME.test(item.testId)) {
          assignment.push({ error: `"${item.testId}" is not a Python test name (test_x or TestClass.test_x)` });
          continue;
        }
        assignment.push({ program: add({ language, code: pythonHarness(item.file, item.testId), workspace, cache: false }), language });
        break;
      case 'shell':
        if (!SH_TEST_NAME.test(item.testId)) {
          assignment.push({ error: `"${item.testId}" is not a shell function name` });
          continue;
        }
        assignment.push({ program: add({ language, code: shellHarness(item.file, item.testId), workspace, cache: false }), language });
        break;
      case 'javascript':
      case 'typescript': {
        const key = `${language}\0${item.file}\0${workspace}`;
        let index = byFile.get(key);
        if (index === undefined) {
          index =
            language === 'javascript'
              ? add({ language, code: javascriptHarness(item.file), workspace, cache: false })
              : add({ language, file: item.file, workspace, cache: false });
          byFile.set(key, index);
        }
        assignment.push({ program: index, language });
        break;
      }
      default:
        assignment.push({ error: `the sandbox runs no tests of "${item.languageId}" files (Python, JavaScript, TypeScript and shell only)` });
    }
  }
  return { programs, assignment };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading results

export interface TapEntry {
  ok: boolean;
  directive?: 'skip' | 'todo';
  durationMs?: number;
  /** The node:test `error:` field, when inline (`'1 subtest failed'`). */
  error?: string;
  /** The test's TAP lines: its `ok`/`not ok` line and its YAML block. */
  block: string;
}

const unescapeTap = (s: string): string => s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/** node:test's TAP output → each test's entry by its path joined with ` > ` (as discovery names JS tests). */
export function parseTap(output: string): Map<string, TapEntry> {
  const lines = output.split(/\r\n|\r|\n/);
  const names: string[] = [];
  const entries = new Map<string, TapEntry>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const subtest = /^( *)# Subtest: (.*)$/.exec(line);
    if (subtest) {
      const level = Math.floor(subtest[1]!.length / 4);
      names.length = level;
      names[level] = unescapeTap(subtest[2]!);
      continue;
    }
    const result = /^( *)(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$/i.exec(line);
    if (!result) continue;
    const indent = result[1]!.length;
    const level = Math.floor(indent / 4);
    const path = [...names.slice(0, level), unescapeTap(result[3]!)];
    let end = i;
    if (/^\s*---\s*$/.test(lines[i + 1] ?? '')) {
      end = i + 2;
      while (end < lines.length && !/^\s*\.\.\.\s*$/.test(lines[end]!)) end++;
    }
    const yaml = lines.slice(i + 1, end + 1);
    const field = (name: string): string | undefined => {
      const f = yaml.find((l) => l.startsWith(`${' '.repeat(indent + 2)}${name}:`));
      return f === undefined ? undefined : f.slice(f.indexOf(':') + 1).trim();
    };
    const entry: TapEntry = { ok: result[2] === undefined, block: lines.slice(i, end + 1).join('\n') };
    const directive = result[4]?.toLowerCase();
    if (directive === 'skip' || directive === 'todo') entry.directive = directive;
    const duration = Number(field('duration_ms'));
    if (Number.isFinite(duration) && field('duration_ms') !== undefined) entry.durationMs = duration;
    const error = field('error');
    if (error !== undefined && !error.startsWith('|') && !error.startsWith('>')) entry.error = error.replace(/^'(.*)'$/, '$1').replace(/''/g, "'");
    entries.set(path.join(' > '), entry);
    i = end;
  }
  return entries;
}

const STATUS_WORDS: Partial<Record<ExecutionResult['status'], string>> = {
  timeout: 'the test ran past its time limit and was killed',
  memory_limit: 'the test passed its memory limit and was killed',
  output_limit: 'the test passed its output limit and was stopped',
  cancelled: 'the run was cancelled',
};

/** The last non-empty line of a text. */
const lastLine = (text: string): string | undefined =>
  text
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .at(-1);

/** What a run says about one test of a per-test harness (Python, shell), or about a JS/TS file that did not report. */
function fromRun(item: TestRunItem, language: string, r: ExecutionResult): Omit<TestRunResult, 'uri' | 'testId' | 'output' | 'result' | 'passed'> {
  const output = `${r.stdout}${r.stderr}`;
  const durationMs = r.durationMs;
  const where = (text: string) => locateFailure(text, { file: item.file, language });
  switch (r.status) {
    case 'ok':
      return { outcome: 'passed', durationMs };
    case 'cancelled':
      return { outcome: 'skipped', durationMs, message: STATUS_WORDS.cancelled! };
    case 'timeout':
    case 'memory_limit':
    case 'output_limit':
      return { outcome: 'failed', durationMs, message: STATUS_WORDS[r.status]! };
    case 'runtime_error': {
      const harnessError = r.exitCode === HARNESS_ERROR_EXIT && output.includes(HARNESS_ERROR);
      const location = where(r.stderr) ?? where(output);
      const failLine = r.stderr.split('\n').find((l) => l.startsWith('FAIL ') || l.startsWith(HARNESS_ERROR));
      const message = harnessError
        ? `${failLine?.slice(HARNESS_ERROR.length).trim() ?? 'the test could not be run'}${location ? `: ${location.message}` : ''}`
        : (location?.message || failLine || lastLine(r.stderr) || lastLine(r.stdout) || `exit code ${r.exitCode ?? r.signal}`);
      const out: ReturnType<typeof fromRun> = { outcome: harnessError ? 'errored' : 'failed', durationMs, message };
      if (location) out.location = location;
      return out;
    }
    default: {
      // compile_error, rejected, internal_error: the test could not be run
      const location = r.status === 'compile_error' ? where(r.message ?? r.stderr) : undefined;
      const out: ReturnType<typeof fromRun> = { outcome: 'errored', durationMs, message: r.message ?? r.status };
      if (location) out.location = location;
      return out;
    }
  }
}

/** Each item's verdict from the results of the plan's runs (in the plan's order). */
export function interpretTestResults(items: TestRunItem[], plan: TestPlan, results: ExecutionResult[]): TestRunResult[] {
  const taps = new Map<number, Map<string, TapEntry>>();
  return items.map((item, i) => {
    const assigned = plan.assignment[i]!;
    if ('error' in assigned) {
      return { uri: item.uri, testId: item.testId, outcome: 'errored', passed: false, durationMs: 0, message: assigned.error, output: '' };
    }
    const r = results[assigned.program]!;
    const output = `${r.stdout}${r.stderr}`;
    const base = { uri: item.uri, testId: item.testId, output, result: r };
    let verdict: ReturnType<typeof fromRun>;
    if (assigned.language === 'javascript' || assigned.language === 'typescript') {
      let tap = taps.get(assigned.program);
      if (!tap) taps.set(assigned.program, (tap = parseTap(r.stdout)));
      const entry = tap.get(item.testId);
      if (entry) {
        const durationMs = entry.durationMs ?? r.durationMs;
        if (entry.directive) verdict = { outcome: 'skipped', durationMs, message: `marked ${entry.directive}` };
        else if (entry.ok) verdict = { outcome: 'passed', durationMs };
        else {
          const location = locateFailure(entry.block, { file: item.file, language: assigned.language });
          verdict = { outcome: 'failed', durationMs, message: location?.message || entry.error || 'failed' };
          // TypeScript runs as transpiled JavaScript whose lines are not the source's (esbuild's CommonJS helpers
          // come first; no source maps): a line there would point at the wrong place, so none is given.
          if (location && assigned.language === 'javascript') verdict.location = location;
        }
      } else if (tap.size > 0 && (r.status === 'ok' || r.status === 'runtime_error')) {
        verdict = {
          outcome: 'errored',
          durationMs: 0,
          message: `node:test did not report "${item.testId}" (a title built at run time, or a test that never started)`,
        };
      } else {
        verdict = fromRun(item, assigned.language, r);
        // A file whose run "passed" without reporting the test never ran it.
        if (verdict.outcome === 'passed') verdict = { outcome: 'errored', durationMs: 0, message: `node:test did not report "${item.testId}"` };
      }
    } else {
      verdict = fromRun(item, assigned.language, r);
    }
    return { ...base, ...verdict, passed: verdict.outcome === 'passed' };
  });
}
