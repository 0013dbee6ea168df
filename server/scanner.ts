/**
 * The static security scan: flags risky operations in a program before it runs (ServerConfig.scanPolicy decides
 * whether findings only warn or block the run) and feeds the editor's diagnostics (server/diagnostics.ts).
 *
 * Pure and fast — no I/O, no parser. Each language gets a small quote-aware tokenizer that yields three views of
 * the program, all the same length as the source so offsets (and so lines and columns) carry over:
 * - `code`: comments and the contents of string/regex literals blanked — where calls and imports are matched, so
 *   `print("socket")` or `# import socket` flag nothing;
 * - `text`: only comments blanked — for module names (`require('net')`) and shell, whose quoted words are often
 *   code (`bash -c "curl …"`);
 * - `strings`: only the contents of string literals kept (module specifiers and `#include "…"` left out) — where
 *   file paths live.
 * Rules are data (RULES below): a regex run over one view, with an optional `at` group marking the token to report.
 * Structural rules (fork bombs inside endless loops, recursion without a guard) are small functions over the views.
 *
 * Known limits: heuristics, not proof. Code built at run time (string concatenation, getattr, aliases such as
 * `const cp = require; cp('child' + '_process')`) is not seen; a shell `#` is a comment only at the start of a word;
 * nested double quotes inside shell `"$(…)"` end the string early; JS regex literals are recognised by the usual
 * "follows an operator" heuristic.
 */
import type { Finding, FindingSeverity } from './protocol';

export type ScanLanguage = 'python' | 'javascript' | 'typescript' | 'shell' | 'c' | 'cpp';

export const SCAN_LANGUAGES: readonly ScanLanguage[] = ['python', 'javascript', 'typescript', 'shell', 'c', 'cpp'];

/** A finding plus the length of the token it was found on (for editor ranges; not part of the protocol). */
export interface ScanMatch extends Finding {
  /** UTF-16 length of the matched token, starting at `column`. */
  length: number;
}

type View = 'code' | 'text' | 'strings';

interface PatternRule {
  id: string;
  severity: FindingSeverity;
  languages: readonly ScanLanguage[];
  /** Which view of the program the pattern runs over (see the module comment). */
  view: View;
  /** Matched across the whole view (flags `g`, `m` and `d` are added). A named group `at` marks the token to
   *  report; without it, the whole match. */
  pattern: RegExp;
  /** Extra test on a match's named groups, for what a regex cannot say (e.g. "a huge number"). */
  accept?: (groups: Record<string, string | undefined>) => boolean;
  /** One sentence; `{name}` is replaced by the named group `name` (`{at}`: the token). */
  message: string;
}

interface StructuralRule {
  id: string;
  severity: FindingSeverity;
  languages: readonly ScanLanguage[];
  find: (views: Views, language: ScanLanguage) => Hit[];
  message: string;
}

type ScanRule = PatternRule | StructuralRule;

/** A match before it becomes a finding: offsets into the program. */
interface Hit {
  start: number;
  end: number;
  groups?: Record<string, string | undefined>;
}

interface Views {
  source: string;
  code: string;
  text: string;
  strings: string;
}

const PY: readonly ScanLanguage[] = ['python'];
const JS: readonly ScanLanguage[] = ['javascript', 'typescript'];
const SH: readonly ScanLanguage[] = ['shell'];
const C: readonly ScanLanguage[] = ['c', 'cpp'];
const QUOTED: readonly ScanLanguage[] = ['python', 'javascript', 'typescript', 'c', 'cpp'];

// ---------------------------------------------------------------------------------------------------------------
// Pattern builders, so the rule table reads as "which names" rather than regex plumbing.

/** Python `import a, m` / `from m import …` / `import m.sub` of one of `modules` (regex alternation). */
function pyImport(modules: string): RegExp {
  return new RegExp(
    String.raw`(?:^|;)[ \t]*(?:from[ \t]+|import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*)(?<at>(?:${modules}))(?![\w])`,
  );
}

/** JS `require('m')`, `import('m')`, `import … from 'm'`, `import 'm'` (also `node:m` and `m/sub`); text view. */
function jsModule(modules: string): RegExp {
  return new RegExp(
    String.raw`(?:\brequire[ \t]*\([ \t]*|\bimport[ \t]*\([ \t]*|\bfrom[ \t]*|\bimport[ \t]*)(?<at>(['"\`])(?:node:)?(?:${modules})(?:\/[\w/.-]*)?\2)`,
  );
}

/** A shell command word in command position: line start, after `;`, `&`, `|`, `(`, `` ` ``, `$(`, `{`, `!`, a
 *  keyword such as `then`/`do`, a wrapper such as `sudo`/`exec`, or `-c "` — optionally with a directory. */
function shCommand(commands: string, after = String.raw`(?![\w.-])`): RegExp {
  return new RegExp(
    String.raw`(?:^|[;&|({\`!]|\$\(|-c[ \t]+["']|\b(?:then|do|else|elif|if|while|until|exec|sudo|time|nohup|xargs|command|builtin|env)[ \t])[ \t]*(?:[\w.-]*\/)*(?<at>${commands})${after}`,
  );
}

/** A bare call `name(` in C-like code: not a member (`x.name(`, `p->name(`), `::name(` and `std::name(` allowed. */
function cCall(names: string): RegExp {
  return new RegExp(String.raw`(?<![\w.>$])(?:std::)?(?<at>${names})[ \t]*\(`);
}

/** Absolute paths and escapes outside the run's work dir; `/dev/tcp|udp` belong to the network rule, and the
 *  harmless devices (null, std streams, zero, random, fd) are allowed. */
const OUTSIDE_PATH = String.raw`(?<![\w.~$\/-])(?<at>(?:\/(?:etc|root|home|Users|boot)(?![\w.-])|\/(?:var\/)?run\/docker\.sock|\/proc\/[^\/\s'"]+\/(?:environ|mem)\b|\/dev\/(?!(?:null|stdin|stdout|stderr|zero|urandom|random|fd|tcp|udp)(?![\w-]))[\w-]+|(?<!=)~[\w-]*(?=\/|[\s'"\`;|&)]|$)|\$\{?HOME\b\}?|\.\.\/)[^\s'"\`;|&)<>]*)`;

/** `rm` with flags, aimed at `/`, `~` or `$HOME` (optionally `/*`); `accept` checks the flags are recursive. */
const DESTRUCTIVE_RM = String.raw`\brm(?<flags>(?:[ \t]+-{1,2}[\w-]+)+)[ \t]+(?<q>["']?)(?<at>\/\*?|~\/?\*?|\$\{?HOME\}?\/?\*?)\k<q>(?=[\s;&|)"'\`]|$)`;

const NETWORK = 'opens a network connection: runs have no network in the sandbox, so this will fail';
const SUBPROCESS = 'starts another program: it runs inside the same sandbox and limits, and may not be installed there';

// ---------------------------------------------------------------------------------------------------------------
// The rules. Several entries may share an id (one per way of spelling the operation).

export const RULES: readonly ScanRule[] = [
  // network
  {
    id: 'network',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern: pyImport(
      String.raw`socket|socketserver|urllib\d?|urllib3|requests|httpx|aiohttp|http\.client|http\.server|ftplib|smtplib|poplib|imaplib|telnetlib|xmlrpc|websockets?|paramiko`,
    ),
    message: `imports \`{at}\`, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern:
      /(?<![\w.])(?<at>socket\.(?:socket|create_connection|create_server|getaddrinfo|gethostbyname)|urllib\.request\.\w+|urlopen|requests\.(?:get|post|put|patch|delete|head|request|Session)|http\.client\.\w+|asyncio\.open_connection)\s*\(/,
    message: `calls \`{at}\`, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: JS,
    view: 'text',
    pattern: jsModule(String.raw`net|http|https|http2|dgram|dns|tls|undici|axios|node-fetch|ws|got`),
    message: `loads the module {at}, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: JS,
    view: 'code',
    pattern: /(?:(?<![\w$.])|\b(?:globalThis|window|self)\.)(?<at>fetch)\s*\(|\bnew\s+(?<at2>WebSocket|XMLHttpRequest|EventSource)\b/,
    message: `calls \`{at}\`, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: SH,
    view: 'text',
    pattern: shCommand('curl|wget|nc|ncat|netcat|ssh|scp|sftp|telnet|socat|ftp|ping'),
    message: `runs \`{at}\`, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: SH,
    view: 'text',
    pattern: /(?<at>\/dev\/(?:tcp|udp)\/)/,
    message: `uses bash's \`{at}\` sockets, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: C,
    view: 'code',
    pattern: /^[ \t]*#[ \t]*include[ \t]*<(?<at>sys\/socket\.h|netdb\.h|arpa\/inet\.h|netinet\/in\.h)>/,
    message: `includes <{at}> for sockets, which ${NETWORK}`,
  },
  {
    id: 'network',
    severity: 'warning',
    languages: C,
    view: 'code',
    pattern: cCall('socket|connect|getaddrinfo|gethostbyname'),
    message: `calls \`{at}()\`, which ${NETWORK}`,
  },

  // subprocess
  {
    id: 'subprocess',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern: pyImport('subprocess|pty'),
    message: `imports \`{at}\`, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern:
      /(?<![\w.])(?<at>os\.(?:system|popen|fork|forkpty|exec\w*|spawn\w*|posix_spawnp?)|subprocess\.\w+|pty\.(?:spawn|fork))\s*\(/,
    message: `calls \`{at}\`, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern: /^[ \t]*from[ \t]+os[ \t]+import\b[^\n]*?\b(?<at>system|popen|fork|exec\w*|spawn\w*)\b/,
    message: `imports \`os.{at}\`, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: JS,
    view: 'text',
    pattern: jsModule('child_process|cluster'),
    message: `loads the module {at}, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: JS,
    view: 'code',
    pattern:
      /(?<![\w$.])(?<at>execSync|execFileSync|spawnSync|execFile|spawn)\s*\(|\b(?<at2>child_process\.\w+|Bun\.spawn(?:Sync)?|Deno\.(?:run|Command))\b/,
    message: `calls \`{at}\`, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: C,
    view: 'code',
    pattern: cCall('system|popen|execl|execlp|execle|execv|execvp|execvpe|execve|fork|vfork|posix_spawnp?'),
    message: `calls \`{at}()\`, which ${SUBPROCESS}`,
  },
  {
    id: 'subprocess',
    severity: 'warning',
    languages: SH,
    view: 'text',
    pattern:
      /\b(?<at>curl|wget)\b[^\n;]*?\|[ \t]*(?:sudo[ \t]+)?(?:(?:ba|z|da|k|fi)?sh|python3?|perl|ruby|node)\b|\b(?:(?:ba|z|da)?sh|source|\.)[ \t]+<\([ \t]*(?<at2>curl|wget)\b|\b(?:(?:ba|z|da)?sh[ \t]+-c|eval)[ \t]+["']?\$\([ \t]*(?<at3>curl|wget)\b/,
    message: 'downloads a script and runs it: the sandbox has no network, and running code fetched at run time is unreviewable',
  },

  // fork-bomb
  {
    id: 'fork-bomb',
    severity: 'error',
    languages: SH,
    view: 'text',
    // `:(){ :|:& };:`, `f(){ f|f& }`, `function f() { f | f & }`
    pattern:
      /(?<![^\s;&|(){}])(?:function[ \t]+)?(?<at>[^\s(){}|&;<>'"]+)[ \t]*\([ \t]*\)[ \t]*\{[^}]*?(?<![\w.-])\k<at>[ \t]*[|&][ \t]*\k<at>[ \t]*&/,
    message: 'defines a function that starts two copies of itself in the background (a fork bomb): it exhausts the process limit and the run is killed',
  },
  {
    id: 'fork-bomb',
    severity: 'error',
    languages: SH,
    view: 'text',
    pattern: /\bfunction[ \t]+(?<at>[^\s(){}|&;<>'"]+)[ \t]*\{[^}]*?(?<![\w.-])\k<at>[ \t]*[|&][ \t]*\k<at>[ \t]*&/,
    message: 'defines a function that starts two copies of itself in the background (a fork bomb): it exhausts the process limit and the run is killed',
  },
  {
    id: 'fork-bomb',
    severity: 'error',
    languages: PY,
    find: (views) => endlessLoopsWithFork(views.code, 'python'),
    message: 'calls fork() inside an endless loop (a fork bomb): it exhausts the process limit and the run is killed',
  },
  {
    id: 'fork-bomb',
    severity: 'error',
    languages: C,
    find: (views) => endlessLoopsWithFork(views.code, 'c'),
    message: 'calls fork() inside an endless loop (a fork bomb): it exhausts the process limit and the run is killed',
  },

  // file-outside-workdir
  {
    id: 'file-outside-workdir',
    severity: 'error',
    languages: SCAN_LANGUAGES,
    view: 'text',
    pattern: new RegExp(DESTRUCTIVE_RM),
    accept: (g) => /(?:^|[ \t])-[a-zA-Z]*[rR]|--recursive\b/.test(g.flags ?? ''),
    message: 'recursively deletes `{at}`: this destroys a home directory or the whole file system wherever the sandbox lets it write',
  },
  {
    id: 'file-outside-workdir',
    severity: 'error',
    languages: PY,
    view: 'text',
    pattern: /\b(?<at>rmtree)\s*\(\s*(?:["'](?:\/|~\/?)["']|os\.path\.expanduser\(\s*["']~\/?["']\s*\)|(?:pathlib\.)?Path\.home\(\))/,
    message: 'recursively deletes the root or home directory: this destroys files wherever the sandbox lets it write',
  },
  {
    id: 'file-outside-workdir',
    severity: 'error',
    languages: JS,
    view: 'text',
    pattern: /\b(?<at>rm(?:Sync)?|rmdir(?:Sync)?)\s*\(\s*(["'`])(?:\/|~\/?)\2[^)\n]*\brecursive\s*:\s*true/,
    message: 'recursively deletes the root or home directory: this destroys files wherever the sandbox lets it write',
  },
  {
    id: 'file-outside-workdir',
    severity: 'warning',
    languages: QUOTED,
    view: 'strings',
    pattern: new RegExp(OUTSIDE_PATH),
    message: 'refers to `{at}`, outside the run\'s work dir: the sandbox hides or protects it, so this will fail or read the sandbox\'s copy',
  },
  {
    id: 'file-outside-workdir',
    severity: 'warning',
    languages: SH,
    view: 'text',
    pattern: new RegExp(OUTSIDE_PATH),
    message: 'refers to `{at}`, outside the run\'s work dir: the sandbox hides or protects it, so this will fail or read the sandbox\'s copy',
  },

  // dynamic-eval
  {
    id: 'dynamic-eval',
    severity: 'warning',
    languages: PY,
    view: 'code',
    // A string-literal argument (blanked to spaces in this view) is fine: the code is right there to read.
    pattern:
      /(?<![\w.])(?<at>eval|exec|compile|__import__|importlib\.import_module)\s*\((?![ \t]*[rRbBuU]{0,2}(?:"""|'''|"|')[^"']*(?:"""|'''|"|')[ \t]*[,)])/,
    message: 'runs `{at}` on code built at run time: what it executes cannot be checked before the run',
  },
  {
    id: 'dynamic-eval',
    severity: 'warning',
    languages: JS,
    view: 'code',
    pattern: /(?<![\w$.])(?<at>eval|Function)\s*\(|\bnew\s+(?<at2>Function)\b/,
    message: 'runs `{at}` on a string of code: what it executes cannot be checked before the run',
  },
  {
    id: 'dynamic-eval',
    severity: 'warning',
    languages: JS,
    view: 'text',
    pattern: jsModule('vm'),
    message: 'loads the module {at}, which runs strings of code: what it executes cannot be checked before the run',
  },
  {
    id: 'dynamic-eval',
    severity: 'warning',
    languages: JS,
    view: 'code',
    // A Worker started with `eval: true` runs its first argument as code, not a file.
    pattern: /\bnew\s+(?<at>Worker)\s*\([^\n]*\beval\s*:\s*true/,
    message: 'starts a `Worker` from a string of code (`eval: true`): what it executes cannot be checked before the run',
  },
  {
    id: 'dynamic-eval',
    severity: 'warning',
    languages: SH,
    view: 'text',
    pattern: shCommand('eval'),
    message: 'runs `eval` on text built at run time: what it executes cannot be checked before the run',
  },

  // native-code
  {
    id: 'native-code',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern: pyImport('ctypes|_ctypes|cffi'),
    message: 'imports `{at}`, which calls native code directly: it can bypass Python\'s safety checks and crash the run',
  },
  {
    id: 'native-code',
    severity: 'warning',
    languages: PY,
    view: 'code',
    pattern: /(?<![\w.])(?<at>ctypes\.\w+|cffi\.FFI)\b/,
    message: 'uses `{at}`, which calls native code directly: it can bypass Python\'s safety checks and crash the run',
  },
  {
    id: 'native-code',
    severity: 'warning',
    languages: JS,
    view: 'code',
    pattern: /\bprocess\s*\.\s*(?<at>binding|_linkedBinding|dlopen)\s*\(/,
    message: 'calls `process.{at}`, which loads native code: it bypasses Node\'s safety checks and can crash the run',
  },
  {
    id: 'native-code',
    severity: 'warning',
    languages: JS,
    view: 'text',
    pattern: jsModule('ffi-napi|ffi|node-ffi|ref-napi|koffi'),
    message: 'loads the module {at}, which calls native code directly: it bypasses Node\'s safety checks and can crash the run',
  },
  {
    id: 'native-code',
    severity: 'warning',
    languages: C,
    view: 'code',
    pattern: /(?<![\w.])(?<at>asm|__asm__|__asm)\b[ \t]*(?:volatile|__volatile__|goto)?[ \t]*[({]/,
    message: 'uses inline assembly (`{at}`): it can make system calls the scan cannot see',
  },
  {
    id: 'native-code',
    severity: 'warning',
    languages: C,
    view: 'code',
    pattern: cCall('dlopen|dlsym|syscall|ptrace'),
    message: 'calls `{at}()`, which loads code or talks to the kernel directly: the sandbox may forbid it and the run fail',
  },

  // environment
  {
    id: 'environment',
    severity: 'info',
    languages: PY,
    view: 'code',
    // Bare `environ`/`getenv` only when used (`from os import environ`); a WSGI `environ` parameter is not read.
    pattern: /(?<![\w.])(?<at>os\.environb?|os\.getenv|getenv(?=\s*\()|environ(?=\s*(?:\[|\.get\b)))/,
    message: 'reads environment variables (`{at}`): the sandbox passes only a minimal environment, so secrets and settings are absent',
  },
  {
    id: 'environment',
    severity: 'info',
    languages: JS,
    view: 'code',
    pattern: /\b(?<at>(?:process|Deno|Bun)\s*\.\s*env)\b/,
    message: 'reads environment variables (`{at}`): the sandbox passes only a minimal environment, so secrets and settings are absent',
  },
  {
    id: 'environment',
    severity: 'info',
    languages: SH,
    view: 'text',
    pattern: shCommand('printenv'),
    message: 'prints the environment (`{at}`): the sandbox passes only a minimal environment, so secrets and settings are absent',
  },
  {
    id: 'environment',
    severity: 'info',
    languages: SH,
    view: 'text',
    // `env` alone (or piped/redirected) dumps the environment; `env VAR=x cmd` runs a command.
    pattern: shCommand('env', String.raw`(?=[ \t]*(?:$|[|;&>)\`]))`),
    message: 'prints the environment (`{at}`): the sandbox passes only a minimal environment, so secrets and settings are absent',
  },
  {
    id: 'environment',
    severity: 'info',
    languages: C,
    view: 'code',
    pattern: /(?<![\w.>$])(?:std::)?(?<at>(?:secure_)?getenv)[ \t]*\(|(?<![\w.>$])(?<at2>environ)\b/,
    message: 'reads environment variables (`{at}`): the sandbox passes only a minimal environment, so secrets and settings are absent',
  },

  // unbounded-recursion
  {
    id: 'unbounded-recursion',
    severity: 'info',
    languages: PY,
    view: 'code',
    pattern: /(?<![\w.])(?<at>(?:sys\.)?setrecursionlimit)\s*\(\s*(?<limit>[\d_]+(?:\s*\*\*\s*\d+)?|\d+(?:\.\d+)?[eE]\d+)\s*\)/,
    accept: (g) => literalNumber(g.limit ?? '') >= 100_000,
    message: 'raises the recursion limit to {limit}: deep recursion then overflows the C stack and crashes instead of raising RecursionError',
  },
  {
    id: 'unbounded-recursion',
    severity: 'info',
    languages: SCAN_LANGUAGES,
    find: (views, language) => unguardedRecursion(views.code, language),
    message: '`{name}` calls itself with no `if` or `return` before the call: unless something stops it, the run ends in a stack overflow',
  },
];

// ---------------------------------------------------------------------------------------------------------------
// The scan

const SEVERITY_RANK: Record<FindingSeverity, number> = { info: 0, warning: 1, error: 2 };

interface CompiledRule {
  rule: ScanRule;
  index: number;
  regex?: RegExp;
}

/** The rules of each language, regexes compiled once with the flags every rule needs. */
const RULES_BY_LANGUAGE = new Map<ScanLanguage, CompiledRule[]>(
  SCAN_LANGUAGES.map((language) => [
    language,
    RULES.flatMap((rule, index) =>
      rule.languages.includes(language)
        ? [{ rule, index, regex: 'pattern' in rule ? withFlags(rule.pattern, 'gmd') : undefined }]
        : [],
    ),
  ]),
);

function withFlags(re: RegExp, flags: string): RegExp {
  return new RegExp(re.source, [...new Set(re.flags + flags)].join(''));
}

function isScanLanguage(language: string): language is ScanLanguage {
  return (SCAN_LANGUAGES as readonly string[]).includes(language);
}

/** Findings with token lengths, one per (rule, line), in program order. For the editor's diagnostics. */
export function scanMatches(language: string, code: string): ScanMatch[] {
  if (!isScanLanguage(language) || code.length === 0) return [];
  const views = buildViews(language, code);
  const lineStarts = lineStartsOf(code);
  const best = new Map<string, ScanMatch & { order: number }>();

  for (const { rule, index, regex } of RULES_BY_LANGUAGE.get(language) ?? []) {
    const hits = regex && 'view' in rule ? patternHits(rule, regex, views[rule.view]) : 'find' in rule ? rule.find(views, language) : [];
    for (const hit of hits) {
      const line = lineOf(lineStarts, hit.start);
      const match: ScanMatch & { order: number } = {
        ruleId: rule.id,
        message: fillMessage(rule.message, hit, code),
        line: line + 1,
        column: hit.start - lineStarts[line] + 1,
        severity: rule.severity,
        length: Math.max(1, Math.min(hit.end, lineEnd(code, hit.start)) - hit.start),
        order: index,
      };
      // One finding per (rule, line): the most severe, then the leftmost.
      const key = `${rule.id}\n${match.line}`;
      const old = best.get(key);
      if (
        !old ||
        SEVERITY_RANK[match.severity] > SEVERITY_RANK[old.severity] ||
        (match.severity === old.severity && (match.column ?? 0) < (old.column ?? 0))
      ) {
        best.set(key, match);
      }
    }
  }
  // A fork bomb is also a function calling itself; the error says all the hint would.
  const forkBombLines = new Set([...best.values()].filter((m) => m.ruleId === 'fork-bomb').map((m) => m.line));
  return [...best.values()]
    .filter((m) => m.ruleId !== 'unbounded-recursion' || !forkBombLines.has(m.line))
    .sort((a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0) || a.order - b.order)
    .map(({ order: _order, ...m }) => m);
}

/** The security findings of a program, one per (rule, line), in program order. Unknown languages: none. */
export function scanProgram(language: string, code: string): Finding[] {
  return scanMatches(language, code).map(({ length: _length, ...finding }) => finding);
}

/** The findings `scanPolicy: 'block'` rejects a run on: warnings and errors (info hints never block). */
export function blockingFindings(findings: Finding[]): Finding[] {
  return findings.filter((f) => f.severity === 'warning' || f.severity === 'error');
}

/** One line per finding, e.g. `line 3: network — imports \`socket\`, which opens a network connection: …`. */
export function describeFindings(findings: Finding[]): string {
  return findings.map((f) => `line ${f.line}: ${f.ruleId} — ${f.message}`).join('\n');
}

function patternHits(rule: PatternRule, regex: RegExp, view: string): Hit[] {
  const hits: Hit[] = [];
  regex.lastIndex = 0;
  for (let m = regex.exec(view); m !== null; m = regex.exec(view)) {
    if (m[0].length === 0) regex.lastIndex++;
    const groups = m.groups ?? {};
    if (rule.accept && !rule.accept(groups)) continue;
    // `at2`, `at3`: the token group of another alternative of the same pattern.
    const atName = ['at', 'at2', 'at3'].find((name) => groups[name] !== undefined);
    const span = atName ? m.indices?.groups?.[atName] : undefined;
    const [start, end] = span ?? [m.index, m.index + m[0].length];
    hits.push({ start, end, groups: { ...groups, at: atName ? groups[atName] : m[0] } });
  }
  return hits;
}

function fillMessage(template: string, hit: Hit, code: string): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = name === 'at' ? code.slice(hit.start, hit.end) : hit.groups?.[name];
    if (value === undefined) return whole;
    const oneLine = value.replace(/\s+/g, ' ').trim();
    return oneLine.length > 40 ? `${oneLine.slice(0, 39)}…` : oneLine;
  });
}

/** Value of a Python integer literal such as `10**6`, `1_000_000` or `1e6` (NaN when it is none of these). */
function literalNumber(literal: string): number {
  const [base, exponent] = literal.replace(/_/g, '').split('**');
  return exponent === undefined ? Number(base) : Number(base) ** Number(exponent);
}

function lineStartsOf(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** 0-based line holding `offset`. */
function lineOf(lineStarts: number[], offset: number): number {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function lineEnd(text: string, offset: number): number {
  const end = text.indexOf('\n', offset);
  return end === -1 ? text.length : end;
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizers: where comments and literals are, so the views can blank them.

type SpanKind = 'comment' | 'string' | 'literal';

/** `string`: a string literal's contents; `literal`: contents that are not data (module specifiers, `#include`
 *  names, JS regex literals) — code-blanked but kept out of the strings view. */
interface Span {
  kind: SpanKind;
  start: number;
  end: number;
}

function buildViews(language: ScanLanguage, source: string): Views {
  const spans =
    language === 'python'
      ? tokenizePython(source)
      : language === 'shell'
        ? tokenizeShell(source)
        : language === 'c' || language === 'cpp'
          ? tokenizeC(source)
          : tokenizeJs(source);
  // Built as UTF-16 code-unit arrays: slicing and joining megabytes of string pieces is several times slower and
  // leaves the garbage collector most of the work.
  const units = toUnits(source);
  const code = units.slice();
  const text = units.slice();
  const strings = new Uint16Array(source.length).fill(SPACE);
  for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) strings[i] = NEWLINE;
  for (const span of spans) {
    blankRange(code, span.start, span.end);
    if (span.kind === 'comment') blankRange(text, span.start, span.end);
    else if (span.kind === 'string') strings.set(units.subarray(span.start, span.end), span.start);
  }
  return { source, code: fromUnits(code), text: fromUnits(text), strings: fromUnits(strings) };
}

const SPACE = 0x20;
const NEWLINE = 0x0a;

/** Spaces instead of every character but newlines, so offsets and line numbers stay put. */
function blankRange(units: Uint16Array, start: number, end: number): void {
  for (let i = start; i < end; i++) if (units[i] !== NEWLINE) units[i] = SPACE;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toUnits(text: string): Uint16Array {
  if (LITTLE_ENDIAN) {
    // Buffer's encoder is native; a fresh ArrayBuffer keeps the 2-byte alignment a Uint16Array needs.
    const units = new Uint16Array(text.length);
    Buffer.from(units.buffer).write(text, 'utf16le');
    return units;
  }
  const units = new Uint16Array(text.length);
  for (let i = 0; i < text.length; i++) units[i] = text.charCodeAt(i);
  return units;
}

/** The string of these UTF-16 code units (native decoder; one unit per unit, so offsets hold). */
function fromUnits(units: Uint16Array): string {
  if (LITTLE_ENDIAN) return Buffer.from(units.buffer, units.byteOffset, units.byteLength).toString('utf16le');
  const chunks: string[] = [];
  for (let i = 0; i < units.length; i += 4096) chunks.push(String.fromCharCode.apply(null, Array.from(units.subarray(i, i + 4096))));
  return chunks.join('');
}

/** End of a quoted body starting at `from`: the index of the closing `quote`, or where it stops (end of line
 *  for single-line strings, end of text). */
function quotedEnd(src: string, from: number, quote: string, escapes: boolean, multiline: boolean): number {
  // Jump between the only characters that matter (closing quote, backslash, newline) instead of stepping.
  const key = `${quote[0]}${escapes ? 'e' : ''}${multiline ? 'm' : ''}`;
  let stops = QUOTE_STOPS.get(key);
  if (!stops) {
    stops = new RegExp(`[${quote[0] === "'" ? "'" : quote[0] === '`' ? '`' : '"'}${escapes ? '\\\\' : ''}${multiline ? '' : '\\n'}]`, 'g');
    QUOTE_STOPS.set(key, stops);
  }
  stops.lastIndex = from;
  for (let m = stops.exec(src); m !== null; m = stops.exec(src)) {
    const at = m.index;
    if (src[at] === '\\') stops.lastIndex = at + 2;
    else if (src[at] === '\n' || src.startsWith(quote, at)) return at;
  }
  return src.length;
}

const QUOTE_STOPS = new Map<string, RegExp>();

function tokenizePython(src: string): Span[] {
  const spans: Span[] = [];
  const interesting = /[#'"]/g;
  let i = 0;
  while (i < src.length) {
    interesting.lastIndex = i;
    const m = interesting.exec(src);
    if (!m) break;
    i = m.index;
    if (src[i] === '#') {
      const end = lineEnd(src, i);
      spans.push({ kind: 'comment', start: i, end });
      i = end;
      continue;
    }
    const quote = src.startsWith(src[i].repeat(3), i) ? src[i].repeat(3) : src[i];
    const start = i + quote.length;
    const end = quotedEnd(src, start, quote, true, quote.length === 3);
    spans.push({ kind: 'string', start, end: Math.min(end, src.length) });
    i = src.startsWith(quote, end) ? end + quote.length : end;
  }
  return spans;
}

function tokenizeShell(src: string): Span[] {
  const spans: Span[] = [];
  const interesting = /[#'"\\<]/g;
  let i = 0;
  while (i < src.length) {
    interesting.lastIndex = i;
    const m = interesting.exec(src);
    if (!m) break;
    i = m.index;
    const ch = src[i];
    if (ch === '\\') {
      i += 2;
    } else if (ch === '#') {
      // A comment only at the start of a word: `$#`, `${#x}` and `a#b` are not comments.
      if (i === 0 || /[\s;&|()]/.test(src[i - 1])) {
        const end = lineEnd(src, i);
        spans.push({ kind: 'comment', start: i, end });
        i = end;
      } else i++;
    } else if (ch === '<') {
      // A here-document's body is data (often code for another program), not shell syntax.
      const here = /^<<-?[ \t]*(['"]?)([A-Za-z_][\w.-]*)\1/.exec(src.slice(i, i + 200));
      const bodyStart = here ? src.indexOf('\n', i) + 1 : 0;
      if (!here || bodyStart === 0) {
        i++;
        continue;
      }
      const terminator = new RegExp(String.raw`^[ \t]*${here[2].replace(/[.-]/g, '\\$&')}[ \t]*$`, 'gm');
      terminator.lastIndex = bodyStart;
      const rest = terminator.exec(src);
      const bodyEnd = rest ? rest.index : src.length;
      spans.push({ kind: 'string', start: bodyStart, end: bodyEnd });
      i = rest ? bodyEnd + rest[0].length : src.length;
    } else {
      // `'…'` has no escapes except in `$'…'`; `"…"` has backslash escapes; both may span lines.
      const escapes = ch === '"' || (i > 0 && src[i - 1] === '$');
      const end = quotedEnd(src, i + 1, ch, escapes, true);
      spans.push({ kind: 'string', start: i + 1, end });
      i = end + 1;
    }
  }
  return spans;
}

/** Whether the string opening at `at` names a module (`from '…'`, `require('…')`, `import('…')`). */
function isJsSpecifier(src: string, at: number): boolean {
  return /(?:\bfrom|\bimport|\brequire)[ \t]*\(?[ \t]*$/.test(src.slice(Math.max(0, at - 40), at));
}

/** Whether a `/` at `at` starts a regex literal rather than a division: it follows an operator or keyword. */
function startsJsRegex(src: string, at: number): boolean {
  let j = at - 1;
  while (j >= 0 && (src[j] === ' ' || src[j] === '\t')) j--;
  if (j < 0 || src[j] === '\n') return true;
  if ('(,=:[!&|?{};+-*%<>~^'.includes(src[j])) return true;
  return /\b(?:return|typeof|case|in|of|delete|void|throw|new|else|do|yield|await)$/.test(src.slice(Math.max(0, j - 10), j + 1));
}

function tokenizeJs(src: string): Span[] {
  const spans: Span[] = [];
  const interesting = /[/'"`{}]/g;
  // Each entry: the brace depth at which a `${…}` returns to its template literal.
  const templates: number[] = [];
  let depth = 0;
  let i = 0;

  const template = (from: number): number => {
    // Body of a template literal from `from`: ends at the closing backtick or at a `${` (code until its `}`).
    let j = from;
    while (j < src.length && src[j] !== '`' && !(src[j] === '$' && src[j + 1] === '{')) j += src[j] === '\\' ? 2 : 1;
    spans.push({ kind: 'string', start: from, end: Math.min(j, src.length) });
    if (src[j] === '$') {
      templates.push(depth);
      depth++;
      return j + 2;
    }
    return j + 1;
  };

  while (i < src.length) {
    interesting.lastIndex = i;
    const m = interesting.exec(src);
    if (!m) break;
    i = m.index;
    const ch = src[i];
    if (ch === '{') {
      depth++;
      i++;
    } else if (ch === '}') {
      depth--;
      i++;
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop();
        i = template(i);
      }
    } else if (ch === '`') {
      i = template(i + 1);
    } else if (ch === '/') {
      const end = slashComment(src, i, spans);
      if (end !== undefined) {
        i = end;
      } else if (startsJsRegex(src, i)) {
        let j = i + 1;
        let inClass = false;
        while (j < src.length && src[j] !== '\n' && (inClass || src[j] !== '/')) {
          if (src[j] === '\\') j++;
          else if (src[j] === '[') inClass = true;
          else if (src[j] === ']') inClass = false;
          j++;
        }
        spans.push({ kind: 'literal', start: i + 1, end: Math.min(j, src.length) });
        i = j + 1;
      } else i++;
    } else {
      const end = quotedEnd(src, i + 1, ch, true, false);
      spans.push({ kind: isJsSpecifier(src, i) ? 'literal' : 'string', start: i + 1, end });
      i = end + 1;
    }
  }
  return spans;
}

/** A line or block comment starting at `i` (JS, TS, C, C++): records its span and returns where it ends, or
 *  undefined when the slash starts no comment. */
function slashComment(src: string, i: number, spans: Span[]): number | undefined {
  let end: number;
  if (src[i + 1] === '/') end = lineEnd(src, i);
  else if (src[i + 1] === '*') {
    const close = src.indexOf('*/', i + 2);
    end = close === -1 ? src.length : close + 2;
  } else return undefined;
  spans.push({ kind: 'comment', start: i, end });
  return end;
}

function tokenizeC(src: string): Span[] {
  const spans: Span[] = [];
  const interesting = /[/'"]/g;
  let i = 0;
  while (i < src.length) {
    interesting.lastIndex = i;
    const m = interesting.exec(src);
    if (!m) break;
    i = m.index;
    const ch = src[i];
    if (ch === '/') {
      i = slashComment(src, i, spans) ?? i + 1;
    } else if (ch === "'" && i > 0 && /[0-9a-fA-F]/.test(src[i - 1]) && /[0-9a-fA-F]/.test(src[i + 1] ?? '')) {
      i++; // C++14 digit separator: 1'000'000
    } else if (ch === '"' && src[i - 1] === 'R' && /^[^\s()\\]{0,16}\(/.test(src.slice(i + 1, i + 18))) {
      // C++ raw string R"delim( … )delim"
      const open = src.indexOf('(', i);
      const close = src.indexOf(`)${src.slice(i + 1, open)}"`, open);
      const end = close === -1 ? src.length : close;
      spans.push({ kind: 'string', start: open + 1, end });
      i = close === -1 ? src.length : close + open - i + 1;
    } else {
      const lineStart = src.lastIndexOf('\n', i - 1) + 1;
      const isInclude = ch === '"' && /^[ \t]*#[ \t]*(?:include|import)[ \t]*$/.test(src.slice(lineStart, i));
      const end = quotedEnd(src, i + 1, ch, true, false);
      spans.push({ kind: isInclude ? 'literal' : 'string', start: i + 1, end });
      i = end + 1;
    }
  }
  return spans;
}

// ---------------------------------------------------------------------------------------------------------------
// Structural rules

/** Index just past the `}` matching the `{` at `open` in code with literals blanked (or the end of the text). */
function matchingBrace(code: string, open: number): number {
  let depth = 0;
  for (let j = open; j < code.length; j++) {
    if (code[j] === '{') depth++;
    else if (code[j] === '}' && --depth === 0) return j + 1;
  }
  return code.length;
}

/** Where a Python block opened on the line of `headerAt` ends: the first later non-blank line indented no deeper
 *  than `indent` (blank includes comment-only lines, since comments are blanked). */
function pythonBlockEnd(code: string, headerAt: number, indent: number): number {
  let at = lineEnd(code, headerAt);
  while (at < code.length) {
    const next = lineEnd(code, at + 1);
    const line = code.slice(at + 1, next);
    const depth = line.length - line.trimStart().length;
    if (line.trim() !== '' && depth <= indent) return at;
    at = next;
  }
  return code.length;
}

const FORK_CALL = /(?<![\w.>$])(?:os\.)?fork[ \t]*\(/;

/** Endless loops (`while True:`, `for(;;)`, `while(1)`) whose body calls fork(); the hit is the loop keyword. */
function endlessLoopsWithFork(code: string, family: 'python' | 'c'): Hit[] {
  const hits: Hit[] = [];
  if (family === 'python') {
    const loop = /^([ \t]*)(?<at>while)[ \t]+(?:True|1|not[ \t]+False)[ \t]*:/gm;
    for (let m = loop.exec(code); m !== null; m = loop.exec(code)) {
      const body = code.slice(m.index + m[0].length, pythonBlockEnd(code, m.index, m[1].length));
      if (FORK_CALL.test(body)) hits.push({ start: m.index + m[1].length, end: m.index + m[1].length + 5 });
    }
  } else {
    const loop = /\b(?:for[ \t]*\([ \t]*;[ \t]*;[ \t]*\)|while[ \t]*\([ \t]*(?:1|true|!0)[ \t]*\))/g;
    for (let m = loop.exec(code); m !== null; m = loop.exec(code)) {
      let at = m.index + m[0].length;
      while (/\s/.test(code[at] ?? '')) at++;
      const end = code[at] === '{' ? matchingBrace(code, at) : code.indexOf(';', at) + 1 || code.length;
      if (FORK_CALL.test(code.slice(at, end))) hits.push({ start: m.index, end: m.index + m[0].length });
    }
  }
  return hits;
}

interface FunctionBody {
  name: string;
  /** Offsets of the body (after the header). */
  start: number;
  end: number;
}

const C_KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'return', 'sizeof', 'catch', 'else', 'do']);

function functionBodies(code: string, language: ScanLanguage): FunctionBody[] {
  const bodies: FunctionBody[] = [];
  const braced = (re: RegExp, accept: (m: RegExpExecArray) => boolean = () => true) => {
    for (let m = re.exec(code); m !== null; m = re.exec(code)) {
      const open = m.index + m[0].length - 1;
      if (m.groups?.name && accept(m)) bodies.push({ name: m.groups.name, start: open + 1, end: matchingBrace(code, open) - 1 });
      re.lastIndex = open + 1;
    }
  };
  if (language === 'python') {
    const def = /^([ \t]*)(?:async[ \t]+)?def[ \t]+(?<name>\w+)[ \t]*\(/gm;
    for (let m = def.exec(code); m !== null; m = def.exec(code)) {
      // The body starts after the header's `:` at bracket depth 0 (parameters may hold `:` annotations).
      let depth = 0;
      let j = m.index + m[0].length - 1;
      for (; j < code.length; j++) {
        if ('([{'.includes(code[j])) depth++;
        else if (')]}'.includes(code[j])) depth--;
        else if (code[j] === ':' && depth === 0) break;
      }
      bodies.push({ name: m.groups?.name ?? '', start: j + 1, end: pythonBlockEnd(code, j, m[1].length) });
    }
  } else if (language === 'javascript' || language === 'typescript') {
    braced(/\bfunction\b[ \t]*\*?[ \t]*(?<name>[\w$]+)[ \t]*(?:<[^>{]*>)?\([^)]*\)[^{;]*\{/g);
    braced(
      /\b(?:const|let|var)[ \t]+(?<name>[\w$]+)[ \t]*(?::[^=\n]+)?=[ \t]*(?:async[ \t]*)?(?:function\b[^{;]*|\([^)]*\)[^{;=]*=>[ \t]*)\{/g,
    );
  } else if (language === 'shell') {
    braced(/^[ \t]*(?<fn>function[ \t]+)?(?<name>[\w.:-]+)[ \t]*(?<parens>\([ \t]*\))?[ \t]*\{/gm, (m) => !!(m.groups?.fn || m.groups?.parens));
  } else {
    braced(/^[ \t]*(?:[\w:<>,]+[ \t*&]+)+(?<name>\w+)[ \t]*\([^;{}()]*\)[ \t]*(?:const[ \t]*)?(?:noexcept[ \t]*)?\{/gm, (m) => !C_KEYWORDS.has(m.groups?.name ?? ''));
  }
  return bodies;
}

interface RecursionSyntax {
  /** Something before the call that can stop the recursion. */
  guardBefore: RegExp;
  /** A condition in the call's own statement (`return n ? f(n - 1) : 0`). */
  guardInStatement: RegExp;
  /** Characters that end a statement. */
  boundary: RegExp;
}

const RECURSION_SYNTAX: Record<'python' | 'braces' | 'shell', RecursionSyntax> = {
  python: {
    guardBefore: /\b(?:if|elif|return|raise|while|for|match|try|assert)\b/,
    guardInStatement: /\b(?:if|else|and|or)\b/,
    boundary: /[\n;]/,
  },
  braces: {
    guardBefore: /\b(?:if|return|throw|while|for|switch|case|try)\b|\?|&&|\|\|/,
    guardInStatement: /\bif\b|\?|&&|\|\|/,
    boundary: /[\n;{}]/,
  },
  shell: {
    guardBefore: /\b(?:if|then|elif|return|exit|case|while|until|for)\b|&&|\|\|/,
    guardInStatement: /&&|\|\|/,
    boundary: /[\n;{}]/,
  },
};

/** Functions whose first call to themselves comes before any `if`/`return`-like guard. */
function unguardedRecursion(code: string, language: ScanLanguage): Hit[] {
  const syntax = RECURSION_SYNTAX[language === 'python' ? 'python' : language === 'shell' ? 'shell' : 'braces'];
  const hits: Hit[] = [];
  // One regex per function name, not per definition: generated code may define thousands of same-named functions.
  const calls = new Map<string, RegExp>();
  for (const body of functionBodies(code, language)) {
    const name = body.name.replace(/[$.:-]/g, '\\$&');
    const call =
      calls.get(name) ??
      (language === 'shell'
        ? new RegExp(String.raw`(?<![\w$.:-])${name}(?![\w.:-]|[ \t]*\([ \t]*\))`)
        : language === 'python'
          ? new RegExp(String.raw`(?<![\w.])(?:(?:self|cls)\.)?${name}[ \t]*\(`)
          : new RegExp(String.raw`(?<![\w$.])(?:this\.)?${name}[ \t]*\(`));
    calls.set(name, call);
    const text = code.slice(body.start, body.end);
    const found = call.exec(text);
    if (!found) continue;
    const callAt = found.index;
    let statementStart = callAt;
    while (statementStart > 0 && !syntax.boundary.test(text[statementStart - 1])) statementStart--;
    let statementEnd = callAt + found[0].length;
    while (statementEnd < text.length && !syntax.boundary.test(text[statementEnd])) statementEnd++;
    if (syntax.guardBefore.test(text.slice(0, statementStart))) continue;
    if (syntax.guardInStatement.test(text.slice(statementStart, statementEnd))) continue;
    const nameAt = found[0].lastIndexOf(body.name);
    hits.push({
      start: body.start + callAt + nameAt,
      end: body.start + callAt + nameAt + body.name.length,
      groups: { name: body.name },
    });
  }
  return hits;
}
