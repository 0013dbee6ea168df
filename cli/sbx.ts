/**
 * `sbx`: the headless command line of Sandbox Runner. It starts the sandbox server (dist/server.js) for the
 * length of one command and talks JSON-RPC to it over stdio.
 *
 *   sbx run FILE [--lang L] [--stdin FILE|-] [--timeout MS] [--memory MB] [--no-cache] [--json]
 *   sbx batch PATH_OR_GLOB... [--concurrency N] [--timeout MS] [--memory MB] [--no-cache] [--json]
 *   sbx languages [--json]
 *   sbx audit [--file PATH] [--tail N] [--json]     (reads the audit log's file; starts no server)
 *   global: --config FILE, --verbose, --version, --help
 *
 * Bad input is one sentence on stderr and exit 2; see cli/format.ts for the exit codes of `run`.
 */
import { Command, CommanderError, Option } from 'commander';
import { version } from '../package.json';
import { auditCommand, type AuditOptions } from './audit';
import { batchCommand, type BatchOptions } from './batch';
import { CliError, EXIT, messageOf } from './errors';
import { languagesCommand } from './languages';
import { positiveInt, takeInvalidArgumentMessage } from './options';
import { runCommand, type RunOptions } from './run';
import type { GlobalOptions } from './session';

function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('sbx')
    .description('Run code you don\'t fully trust in a sandbox: time, CPU, memory and an honest verdict for every run.')
    .version(version, '--version', 'print the version of sbx')
    .helpOption('-h, --help', 'show help')
    .option('--config <file>', 'JSON file with the server configuration (a ServerConfig)')
    .option('--verbose', "show the sandbox server's log on stderr")
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(true);

  const timeout = () =>
    new Option('--timeout <ms>', 'wall-clock limit per run, in milliseconds').argParser(positiveInt('--timeout', 'milliseconds'));
  const memory = () =>
    new Option('--memory <mb>', 'memory limit per run, in MiB').argParser(positiveInt('--memory', 'MiB'));
  const globalsOf = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

  program
    .command('run')
    .description('run one program; its output is streamed, its verdict becomes the exit code')
    .argument('<file>', 'the program')
    .option('--lang <id>', 'language id (default: from the file extension; see `sbx languages`)')
    .option('--stdin <file>', 'feed this file to the program\'s stdin ("-": the stdin of sbx)')
    .addOption(timeout())
    .addOption(memory())
    .option('--no-cache', 'always run, neither reading nor storing a cached result')
    .option('--json', 'print the ExecutionResult as JSON instead of the output and summary')
    .addHelpText(
      'after',
      '\nExit code: the program\'s own (128+N when killed by signal N); timeout 124, output limit 125, memory limit 137,\ncompile error 1, rejected 2, cancelled 130, internal error 70.',
    )
    .action(async (file: string, opts: RunOptions, cmd: Command) => {
      setExitCode(await runCommand(file, opts, globalsOf(cmd)));
    });

  program
    .command('batch')
    .description('run many programs through the server\'s pool and print a table and metrics')
    .argument('<paths...>', 'files, directories (every file with a known extension under it) or globs')
    .addOption(
      new Option('--concurrency <n>', 'how many run at once (default and maximum: the pool size)').argParser(
        positiveInt('--concurrency', 'runs'),
      ),
    )
    .addOption(timeout())
    .addOption(memory())
    .option('--no-cache', 'always run, neither reading nor storing cached results')
    .option('--json', 'print {results, summary, metrics} as JSON')
    .addHelpText('after', '\nExit code: 0 when every program ends ok, 1 otherwise.')
    .action(async (paths: string[], opts: BatchOptions, cmd: Command) => {
      setExitCode(await batchCommand(paths, opts, globalsOf(cmd)));
    });

  program
    .command('languages')
    .description('list the languages the server can run, with their binaries and versions')
    .option('--json', 'print the LanguagesResult as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExitCode(await languagesCommand(opts, globalsOf(cmd)));
    });

  program
    .command('audit')
    .description('show the audit log, one record per finished run: the whole current file, or the last N records with --tail')
    .option('--file <path>', 'the audit log (default: audit.path of --config, else sandbox-runner/audit.jsonl in $XDG_STATE_HOME or ~/.local/state)')
    .addOption(
      new Option('--tail <n>', 'only the last N records, reaching into rotated files when needed').argParser(
        positiveInt('--tail', 'records'),
      ),
    )
    .option('--json', 'print the records as a JSON array')
    .addHelpText('after', '\nExit code: 0 when the log was read, 1 when there is none (or it cannot be read).')
    .action((opts: AuditOptions, cmd: Command) => {
      setExitCode(auditCommand(opts, globalsOf(cmd)));
    });

  return program;
}

/** Runs the CLI and answers its exit code; every error becomes a message on stderr here. */
export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    return report(err, argv.includes('--verbose'));
  }
}

function report(err: unknown, verbose: boolean): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
    // `sbx help` (exit code 0) or `sbx` with no command (commander printed the help on stderr).
    if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const sentence =
      (err.code === 'commander.invalidArgument' ? takeInvalidArgumentMessage() : undefined) ??
      err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
    process.stderr.write(`sbx: ${sentence} (see "sbx --help")\n`);
    return EXIT.usage;
  }
  if (err instanceof CliError) {
    process.stderr.write(`sbx: ${err.message}\n`);
    for (const line of err.details) process.stderr.write(`${line}\n`);
    return err.exitCode;
  }
  process.stderr.write(`sbx: unexpected error: ${messageOf(err)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT.internal;
}

/** Exits once stdout and stderr have been written out (a pipe may still hold the end of a long result). */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

// A closed pipe on our stdout (`sbx run x | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
});

main(process.argv).then(exitAfterFlush, (err: unknown) => exitAfterFlush(report(err, false)));
