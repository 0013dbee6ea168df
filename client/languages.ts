/**
 * Which VS Code documents the sandbox can run, and under which server language id. Pure: no `vscode` import, so it
 * is unit-tested with node's test runner.
 */
import type { LanguageInfo } from '../server/protocol';

/** VS Code languageId → the server's language id, for the built-in languages. */
export const SERVER_LANGUAGE_BY_VSCODE_ID: Readonly<Record<string, string>> = {
  python: 'python',
  javascript: 'javascript',
  typescript: 'typescript',
  shellscript: 'shell',
  c: 'c',
  cpp: 'cpp',
};

/** VS Code languageIds a whole document (or a selection of it) can be run as. */
export const RUNNABLE_VSCODE_LANGUAGES: readonly string[] = Object.keys(SERVER_LANGUAGE_BY_VSCODE_ID);

/**
 * VS Code languageIds the language client serves: the runnable ones plus Markdown, whose fenced code blocks are
 * runnable units (the server's CodeLens finds them).
 */
export const SERVED_VSCODE_LANGUAGES: readonly string[] = [...RUNNABLE_VSCODE_LANGUAGES, 'markdown'];

/** The server language for a VS Code languageId, or undefined when it is not one the sandbox runs. */
export function serverLanguageForVscodeId(languageId: string): string | undefined {
  return Object.hasOwn(SERVER_LANGUAGE_BY_VSCODE_ID, languageId) ? SERVER_LANGUAGE_BY_VSCODE_ID[languageId] : undefined;
}

/** The lower-cased extension of a path, with its dot (`.py`), or '' when it has none. */
export function extensionOf(fileName: string): string {
  const base = fileName.slice(Math.max(fileName.lastIndexOf('/'), fileName.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

/**
 * The server language for a document: by its VS Code languageId first (untitled buffers have no extension), then
 * by its file extension among the languages the server reported (that is how executorMap languages, such as a
 * `.pypy` file, are found). Unavailable languages are still returned: the server's rejection says why.
 */
export function serverLanguageFor(
  languageId: string | undefined,
  fileName: string | undefined,
  serverLanguages: readonly Pick<LanguageInfo, 'id' | 'extensions'>[] = [],
): string | undefined {
  const byId = languageId !== undefined ? serverLanguageForVscodeId(languageId) : undefined;
  if (byId !== undefined) return byId;
  if (fileName === undefined) return undefined;
  const ext = extensionOf(fileName);
  if (ext === '') return undefined;
  // executorMap entries come after the built-ins in the server's list; a later entry that claims the same extension
  // is an override the user asked for, so the last match wins.
  let found: string | undefined;
  for (const l of serverLanguages) if (l.extensions.some((e) => e.toLowerCase() === ext)) found = l.id;
  return found;
}
