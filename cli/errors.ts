/**
 * The CLI's error types. Each carries the exit code it ends the process with; `sbx.ts` prints the message as one
 * line (`sbx: <message>`) and never a stack trace.
 */

/** Exit codes of the CLI (besides a program's own exit code, which `run` passes through). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  internal: 70,
  timeout: 124,
  outputLimit: 125,
  interrupted: 130,
  memoryLimit: 137,
} as const;

/** A failure with a message meant for the user and the exit code that goes with it. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** Extra lines printed after the message (e.g. the tail of the server's log). */
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad input from the user: a missing file, a bad number, an unknown language... Exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}

/** The sandbox server went away or could not be started. Exit 70. */
export class ServerError extends CliError {
  constructor(message: string, details: string[] = []) {
    super(message, EXIT.internal, details);
    this.name = 'ServerError';
  }
}

/** The message of anything thrown, without its stack. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
