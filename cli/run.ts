/** `sbx run FILE`: one program, its output streamed live, a summary line on stderr, its verdict as exit code. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import { type ExecuteParams, type ExecutionResult } from '../server/protocol';
import { EXIT, UsageError } from './errors';
import { extensionMap, knownExtensions, languageOf, readableFile } from './files';
import { exitCodeFor, findingLines, summaryLine } from './format';
import { limitsFrom } from './options';
import { onInterrupt, openSession, writeErr, writeOut, writeStatus, type GlobalOptions } from './session';

export interface RunOptions {
  lang?: string;
  stdin?: string;
  timeout?: number;
  memory?: number;
  cache: boolean;
  json?: boolean;
}

/** How long the server has to confirm a cancellation before the CLI gives up on it. */
const CANCEL_GRACE_MS = 5_000;

export async function runCommand(fileArg: string, options: RunOptions, globals: GlobalOptions): Promise<number> {
  // Everything the user gave is checked before the server starts.
  const file = readableFile(fileArg);
  let stdin: string | undefined;
  if (options.stdin === '-') {
    stdin = await text(process.stdin);
  } else if (options.stdin !== undefined) {
    stdin = readFileSync(readableFile(options.stdin, '--stdin file'), 'utf8');
  }
  if (options.lang !== undefined && options.lang.trim() === '') {
    throw new UsageError('--lang needs a language id, e.g. --lang python');
  }

  return openSession(globals, async (session) => {
    let language = options.lang;
    if (language === undefined) {
      const map = extensionMap(await session.languages());
      language = languageOf(file, map);
      if (language === undefined) {
        throw new UsageError(`cannot tell the language of "${fileArg}" from its extension; use --lang (${knownExtensions(map)})`);
      }
    }

    const runId = `run-${randomBytes(6).toString('hex')}`;
    const params: ExecuteParams = { language, file, runId };
    if (stdin !== undefined) params.stdin = stdin;
    const limits = limitsFrom(options);
    if (limits !== undefined) params.limits = limits;
    if (!options.cache) params.cache = false;

    // What has been streamed, so that whatever the stream did not deliver (a cached result) is written after.
    const streamed = { stdout: '', stderr: '' };
    const output = options.json
      ? undefined
      : session.onOutput((p) => {
          if (p.runId !== runId) return;
          streamed[p.stream] += p.chunk;
          (p.stream === 'stdout' ? writeOut : writeErr)(p.chunk);
        });

    const cancellation = new CancellationTokenSource();
    let graceTimer: NodeJS.Timeout | undefined;
    const interrupt = onInterrupt(() => {
      // First Ctrl-C: ask the server to cancel (it kills the run and answers `cancelled`).
      cancellation.cancel();
      graceTimer = setTimeout(() => {
        writeStatus('sbx: cancelled (the server did not confirm in time, so it was stopped)');
        session.kill();
        process.exit(EXIT.interrupted);
      }, CANCEL_GRACE_MS);
    });

    let result: ExecutionResult;
    try {
      result = await session.execute(params, cancellation.token);
    } catch (err) {
      // A server may also answer a cancelled request with the RequestCancelled error instead of a result.
      if (cancellation.token.isCancellationRequested && err instanceof Error && err.cause instanceof ResponseError) {
        if (!options.json) writeStatus('sbx: cancelled');
        return EXIT.interrupted;
      }
      throw err;
    } finally {
      clearTimeout(graceTimer);
      interrupt.dispose();
      output?.dispose();
      cancellation.dispose();
    }

    if (options.json) {
      writeOut(`${JSON.stringify(result, null, 2)}\n`);
      return exitCodeFor(result);
    }
    for (const stream of ['stdout', 'stderr'] as const) {
      const full = result[stream];
      if (full.length > streamed[stream].length && full.startsWith(streamed[stream])) {
        (stream === 'stdout' ? writeOut : writeErr)(full.slice(streamed[stream].length));
      }
    }
    const message = result.message?.trim();
    if (message !== undefined && message.includes('\n') && !result.stderr.includes(message)) {
      writeErr(`${message}\n`);
    }
    for (const line of findingLines(result)) writeStatus(line);
    writeStatus(summaryLine(result));
    return exitCodeFor(result);
  });
}
