/**
 * Files on the command line: checking that they can be read (before the server starts, so bad input is fast),
 * expanding the paths and globs of `batch`, and mapping extensions to languages with the server's answer.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

// tinyglobby's ESM build (which an `import` bundles) reads `import.meta.url`, which is empty in the CommonJS bundle
// esbuild makes of the CLI; `require` picks its CommonJS build.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { glob, isDynamicPattern } = require('tinyglobby') as typeof import('tinyglobby');
import type { LanguagesResult } from '../server/protocol';
import { UsageError, messageOf } from './errors';

/** Checks that `file` is a readable regular file; answers its absolute path. `what` names it in the error. */
export function readableFile(file: string, what = 'file'): string {
  const absolute = path.resolve(file);
  let isFile: boolean;
  try {
    isFile = statSync(absolute).isFile();
  } catch (err) {
    throw new UsageError(`cannot read the ${what} "${file}": ${errnoText(err)}`);
  }
  if (!isFile) throw new UsageError(`cannot read the ${what} "${file}": it is a directory, not a file`);
  try {
    accessSync(absolute, constants.R_OK);
  } catch (err) {
    throw new UsageError(`cannot read the ${what} "${file}": ${errnoText(err)}`);
  }
  return absolute;
}

function errnoText(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return messageOf(err);
  }
}

/** Extension (lower case, with the dot) → language id. A language from the executorMap wins over a built-in one. */
export type ExtensionMap = ReadonlyMap<string, string>;

export function extensionMap(result: LanguagesResult): ExtensionMap {
  const map = new Map<string, string>();
  const ordered = [
    ...result.languages.filter((l) => l.source !== 'executorMap'),
    ...result.languages.filter((l) => l.source === 'executorMap'),
  ];
  for (const language of ordered) {
    for (const ext of language.extensions) map.set(normaliseExtension(ext), language.id);
  }
  return map;
}

function normaliseExtension(ext: string): string {
  const lower = ext.toLowerCase();
  return lower.startsWith('.') ? lower : `.${lower}`;
}

/** The language of a file from its extension, or undefined. */
export function languageOf(file: string, map: ExtensionMap): string | undefined {
  const ext = path.extname(file).toLowerCase();
  return ext === '' ? undefined : map.get(ext);
}

/** "known extensions: .c, .cpp, …" for error messages. */
export function knownExtensions(map: ExtensionMap): string {
  return `known extensions: ${[...map.keys()].sort().join(', ')}`;
}

/** One command-line argument of `batch`, expanded. */
export interface BatchTarget {
  arg: string;
  /** A file named explicitly (its extension must be known), a directory, or a glob (both: unknown ones skipped). */
  kind: 'file' | 'directory' | 'glob';
  /** Absolute paths of every file it stands for. */
  files: string[];
}

/** Expands every argument; a path that does not exist and matches nothing is a UsageError. */
export async function expandTargets(args: string[]): Promise<BatchTarget[]> {
  const targets: BatchTarget[] = [];
  for (const arg of args) {
    let stats: ReturnType<typeof statSync> | undefined;
    try {
      stats = statSync(arg);
    } catch {
      stats = undefined;
    }
    if (stats?.isDirectory()) {
      const files = await glob('**/*', {
        cwd: arg,
        absolute: true,
        onlyFiles: true,
        ignore: ['**/node_modules/**'],
      });
      targets.push({ arg, kind: 'directory', files });
    } else if (stats !== undefined) {
      targets.push({ arg, kind: 'file', files: [readableFile(arg)] });
    } else if (isDynamicPattern(arg)) {
      const files = await glob(arg, { absolute: true, onlyFiles: true, ignore: ['**/node_modules/**'] });
      if (files.length === 0) throw new UsageError(`"${arg}" matches no file`);
      targets.push({ arg, kind: 'glob', files });
    } else {
      throw new UsageError(`cannot find "${arg}": no such file or directory`);
    }
  }
  return targets;
}

export interface BatchFile {
  /** Absolute path, sent to the server. */
  file: string;
  /** Relative to the current directory, shown to the user. */
  display: string;
  language: string;
}

/**
 * Keeps the files whose extension maps to a language, sorted and without duplicates. An explicitly named file
 * with an unknown extension, or a directory/glob with no runnable file, is a UsageError.
 */
export function selectFiles(targets: BatchTarget[], map: ExtensionMap): BatchFile[] {
  const selected = new Map<string, BatchFile>();
  for (const target of targets) {
    let kept = 0;
    for (const file of target.files) {
      const language = languageOf(file, map);
      if (language === undefined) {
        if (target.kind === 'file') {
          throw new UsageError(`cannot tell the language of "${target.arg}" from its extension (${knownExtensions(map)})`);
        }
        continue;
      }
      kept++;
      const absolute = path.resolve(file);
      selected.set(absolute, { file: absolute, display: path.relative(process.cwd(), absolute) || absolute, language });
    }
    if (kept === 0) {
      const where = target.kind === 'directory' ? `the directory "${target.arg}" holds` : `"${target.arg}" matches`;
      throw new UsageError(`${where} no file with a known extension (${knownExtensions(map)})`);
    }
  }
  return [...selected.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}
