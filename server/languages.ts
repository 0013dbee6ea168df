/**
 * The languages the server can run: how each one's runtime is found (once, at start, down to its real binary: a
 * pyenv shim costs ~150 ms a call), how a program is prepared (TypeScript transpiled in-process with esbuild, C and
 * C++ compiled with gcc/g++ under the run's limits, binaries cached by source hash) and how a failed run is told
 * apart as running out of memory.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import which from 'which';
import type { ExecutorOverride, LanguageInfo } from './protocol';
import type { Rlimits } from './executor';

/** What a language does to a program before it runs. */
export type Preparation =
  | { kind: 'none' }
  | { kind: 'transpile-ts' }
  | { kind: 'compile'; compiler: string; flags: string[] };

export interface Runtime extends LanguageInfo {
  /** Name of the program file in the work dir, e.g. `main.py`. */
  fileName: string;
  preparation: Preparation;
  /** The command line of a run: `$file` is the program (or the compiled binary). */
  command: string[];
  /** Runtimes that tolerate an address-space limit get RLIMIT_AS = the memory limit. V8 does not (it reserves
   *  far more address space than it uses); node is held by the memory watchdog. (`--max-old-space-size` was tried:
   *  any V8 flag costs node 2.5-4 ms of start-up, ~12 % of a hello world, measured.) */
  addressSpaceLimit: boolean;
  /** Recognises the runtime's own out-of-memory report in stderr. */
  outOfMemory?: RegExp;
}

interface Builtin {
  id: string;
  name: string;
  extensions: string[];
  fileName: string;
  /** Candidate commands, first found wins. */
  candidates: string[];
  /** How to ask the runtime its version (and, for interpreters, its real executable). */
  probe: (binary: string) => Promise<{ binary: string; version: string }>;
  preparation: Preparation;
  command: (binary: string) => string[];
  addressSpaceLimit: boolean;
  outOfMemory?: RegExp;
}

const PROBE_TIMEOUT_MS = 10_000;

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { timeout: PROBE_TIMEOUT_MS, reject: false, stdin: 'ignore', all: true });
  const text = String(r.all ?? '').trim();
  return text.split('\n')[0] ?? '';
}

const versionWord = (line: string): string => /\d+(\.\d+)+\S*/.exec(line)?.[0] ?? (line || 'unknown');

const probeWithVersionFlag = async (binary: string): Promise<{ binary: string; version: string }> => ({
  binary,
  version: versionWord(await firstLine(binary, ['--version'])),
});

const BUILTINS: Builtin[] = [
  {
    id: 'python',
    name: 'Python',
    extensions: ['.py'],
    fileName: 'main.py',
    candidates: ['python3', 'python'],
    // A shim (pyenv, asdf) is a script that finds the interpreter each call: ask the interpreter itself.
    probe: async (binary) => {
      const r = await execa(binary, ['-c', 'import os,sys;print(os.path.realpath(sys.executable));print(sys.version.split()[0])'], {
        timeout: PROBE_TIMEOUT_MS,
        stdin: 'ignore',
      });
      const [real, version] = String(r.stdout).trim().split('\n');
      if (!real || !version) throw new Error(`${binary} did not say where it lives`);
      return { binary: real, version };
    },
    preparation: { kind: 'none' },
    command: (b) => [b, '-B', '-s', '$file'],
    addressSpaceLimit: true,
    outOfMemory: /\bMemoryError\b/,
  },
  {
    id: 'javascript',
    name: 'JavaScript (Node.js)',
    extensions: ['.js', '.mjs', '.cjs'],
    fileName: 'main.js',
    candidates: ['node', 'nodejs'],
    probe: probeWithVersionFlag,
    preparation: { kind: 'none' },
    command: (b) => [b, '$file'],
    addressSpaceLimit: false,
    outOfMemory: /JavaScript heap out of memory|Reached heap limit/,
  },
  {
    id: 'typescript',
    name: 'TypeScript (esbuild + Node.js)',
    extensions: ['.ts', '.mts', '.cts'],
    fileName: 'main.js',
    candidates: ['node', 'nodejs'],
    probe: probeWithVersionFlag,
    preparation: { kind: 'transpile-ts' },
    command: (b) => [b, '$file'],
    addressSpaceLimit: false,
    outOfMemory: /JavaScript heap out of memory|Reached heap limit/,
  },
  {
    id: 'shell',
    name: 'Shell (bash)',
    extensions: ['.sh', '.bash'],
    fileName: 'main.sh',
    candidates: ['bash'],
    probe: probeWithVersionFlag,
    preparation: { kind: 'none' },
    command: (b) => [b, '$file'],
    addressSpaceLimit: true,
    outOfMemory: /cannot allocate memory|xmalloc|xrealloc/i,
  },
  {
    id: 'c',
    name: 'C (gcc)',
    extensions: ['.c'],
    fileName: 'main.c',
    candidates: ['gcc', 'cc'],
    probe: async (binary) => ({ binary, version: versionWord(await firstLine(binary, ['-dumpfullversion'])) }),
    preparation: { kind: 'compile', compiler: '', flags: ['-std=gnu17', '-O2', '-pipe', '-o', '$out', '$file', '-lm'] },
    command: () => ['$file'],
    addressSpaceLimit: true,
    outOfMemory: /std::bad_alloc/,
  },
  {
    id: 'cpp',
    name: 'C++ (g++)',
    extensions: ['.cpp', '.cc', '.cxx', '.c++'],
    fileName: 'main.cpp',
    candidates: ['g++', 'c++'],
    probe: async (binary) => ({ binary, version: versionWord(await firstLine(binary, ['-dumpfullversion'])) }),
    preparation: { kind: 'compile', compiler: '', flags: ['-std=gnu++17', '-O2', '-pipe', '-o', '$out', '$file', '-lm'] },
    command: () => ['$file'],
    addressSpaceLimit: true,
    outOfMemory: /std::bad_alloc/,
  },
];

async function locate(candidates: string[], pathEnv: string): Promise<string | undefined> {
  for (const c of candidates) {
    const found = await which(c, { nothrow: true, path: pathEnv });
    if (found) return found;
  }
  return undefined;
}

async function resolveBuiltin(b: Builtin, pathEnv: string): Promise<Runtime> {
  const base = {
    id: b.id,
    name: b.name,
    extensions: b.extensions,
    source: 'builtin' as const,
    fileName: b.fileName,
    addressSpaceLimit: b.addressSpaceLimit,
    outOfMemory: b.outOfMemory,
  };
  const unavailable = (message: string): Runtime => ({
    ...base,
    available: false,
    binary: null,
    version: null,
    message,
    preparation: b.preparation,
    command: [],
  });
  const found = await locate(b.candidates, pathEnv);
  if (!found) return unavailable(`none of ${b.candidates.join(', ')} was found on PATH`);
  try {
    const probed = await b.probe(await realpath(found));
    const binary = await realpath(probed.binary);
    const preparation: Preparation =
      b.preparation.kind === 'compile' ? { ...b.preparation, compiler: binary } : b.preparation;
    return { ...base, available: true, binary, version: probed.version, preparation, command: b.command(binary) };
  } catch (e) {
    return unavailable(`${found} did not answer: ${(e as Error).message.split('\n')[0]}`);
  }
}

async function resolveOverride(id: string, o: ExecutorOverride, pathEnv: string): Promise<Runtime> {
  const extension = o.extension ?? o.extensions?.[0] ?? '';
  const base = {
    id,
    name: o.name ?? id,
    extensions: o.extensions ?? (o.extension ? [o.extension] : []),
    source: 'executorMap' as const,
    fileName: `main${extension}`,
    preparation: { kind: 'none' } as Preparation,
    addressSpaceLimit: false,
  };
  const found = path.isAbsolute(o.command) ? o.command : await locate([o.command], pathEnv);
  if (!found) {
    return { ...base, available: false, binary: null, version: null, command: [], message: `${o.command} was not found on PATH` };
  }
  const binary = await realpath(found).catch(() => found);
  const version = await firstLine(binary, ['--version'])
    .then(versionWord)
    .catch(() => 'unknown');
  const args = o.args ?? [];
  const command = [binary, ...args, ...(args.includes('$file') ? [] : ['$file'])];
  return { ...base, available: true, binary, version, command };
}

/** Finds every built-in runtime and applies the executor map. Never throws: a missing runtime is `available: false`. */
export async function resolveRuntimes(
  executorMap: Record<string, ExecutorOverride> = {},
  pathEnv = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
): Promise<Map<string, Runtime>> {
  const builtins = await Promise.all(BUILTINS.map((b) => resolveBuiltin(b, pathEnv)));
  const overrides = await Promise.all(
    Object.entries(executorMap).map(([id, o]) => resolveOverride(id, o, pathEnv)),
  );
  const map = new Map<string, Runtime>();
  for (const r of [...builtins, ...overrides]) map.set(r.id, r);
  return map;
}

/** The public face of a runtime, for `sandbox/languages`. */
export function languageInfo(r: Runtime): LanguageInfo {
  const info: LanguageInfo = {
    id: r.id,
    name: r.name,
    extensions: r.extensions,
    available: r.available,
    binary: r.binary,
    version: r.version,
    source: r.source,
  };
  if (r.message) info.message = r.message;
  return info;
}

/** Builds a run's command line: `$file` → the program, then the program's own arguments. */
export function commandLine(r: Runtime, file: string, args: string[]): string[] {
  const line = r.command.map((a) => (a === '$file' ? file : a));
  if (line.length === 0) throw new Error(`${r.id} has no command`);
  return [...line, ...args];
}

/** RLIMIT_AS for runtimes that tolerate it. */
export function rlimitsFor(r: Runtime, memoryMb: number): Rlimits {
  return r.addressSpaceLimit ? { as: memoryMb * 1024 * 1024 } : {};
}

/** The key a compiled binary is cached under: the compiler, its version, its flags and the source. */
export function binaryKey(r: Runtime, code: string): string {
  return createHash('sha256')
    .update(JSON.stringify([r.id, r.binary, r.version, r.preparation, code]))
    .digest('hex');
}
