/** What every command shares: global options, one server per command, output helpers and Ctrl-C handling. */
import type { ServerConfig } from '../server/protocol';
import { EXIT } from './errors';
import { loadConfig } from './options';
import { ServerSession } from './server';

export interface GlobalOptions {
  config?: string;
  verbose?: boolean;
}

/** Loads the config (a bad file is a UsageError before anything starts), runs `fn` with a server, stops it. */
export async function openSession<T>(globals: GlobalOptions, fn: (session: ServerSession) => Promise<T>): Promise<T> {
  const config: ServerConfig = globals.config !== undefined ? loadConfig(globals.config) : {};
  const session = await ServerSession.start({ config, configFile: globals.config, verbose: globals.verbose === true });
  // Outside a cancellable request there is nothing to wait for: Ctrl-C stops the server and exits.
  const guard = onInterrupt(() => {
    session.kill();
    process.exit(EXIT.interrupted);
  });
  try {
    return await fn(session);
  } finally {
    guard.dispose();
    await session.close();
  }
}

/** Whether the last thing written to each stream ended a line (so a status line can start on its own). */
const lineStart = { stdout: true, stderr: true };

export function writeOut(text: string): void {
  if (text === '') return;
  process.stdout.write(text);
  lineStart.stdout = text.endsWith('\n');
}

export function writeErr(text: string): void {
  if (text === '') return;
  process.stderr.write(text);
  lineStart.stderr = text.endsWith('\n');
}

/** Writes a status line on stderr, first ending the program's unfinished line when it shares the terminal. */
export function writeStatus(line: string): void {
  const shared = process.stdout.isTTY === true && process.stderr.isTTY === true;
  const pending = !lineStart.stderr || (shared && !lineStart.stdout);
  writeErr(`${pending ? '\n' : ''}${line}\n`);
  lineStart.stdout = true;
}

const INTERRUPT_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** The innermost handler gets the first Ctrl-C; the stack is empty when nothing needs a graceful stop. */
const interruptHandlers: (() => void)[] = [];
let interrupts = 0;

function dispatchInterrupt(): void {
  interrupts++;
  const handler = interruptHandlers.at(-1);
  // A second Ctrl-C means the user is done waiting: exit at once (the exit handler kills the server).
  if (handler === undefined || interrupts > 1) process.exit(EXIT.interrupted);
  handler();
}

/**
 * Calls `onFirst` on the first SIGINT/SIGTERM/SIGHUP while it is registered (a command cancels its request and
 * reports `cancelled`); a second one exits 130 at once. Handlers nest: the innermost one is called.
 */
export function onInterrupt(onFirst: () => void): { dispose(): void } {
  if (interruptHandlers.length === 0) {
    for (const signal of INTERRUPT_SIGNALS) process.on(signal, dispatchInterrupt);
  }
  interruptHandlers.push(onFirst);
  return {
    dispose: () => {
      const index = interruptHandlers.lastIndexOf(onFirst);
      if (index >= 0) interruptHandlers.splice(index, 1);
      if (interruptHandlers.length === 0) {
        for (const signal of INTERRUPT_SIGNALS) process.off(signal, dispatchInterrupt);
      }
    },
  };
}
