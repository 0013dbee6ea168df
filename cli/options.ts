/**
 * Parsing and validating what the user typed: the numeric options (as commander argument parsers) and the
 * `--config` file. Everything here fails with one sentence, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { Limits, ServerConfig } from '../server/protocol';
import { parseConfig } from '../server/validation';
import { UsageError, messageOf } from './errors';

/**
 * The sentence of the last numeric option that failed to parse. Commander wraps an InvalidArgumentError's message
 * in its own ("option '--timeout <ms>' argument 'abc' is invalid. ..."); sbx.ts prints this sentence instead.
 */
let lastInvalidArgument: string | undefined;

export function takeInvalidArgumentMessage(): string | undefined {
  const message = lastInvalidArgument;
  lastInvalidArgument = undefined;
  return message;
}

/** A commander argument parser accepting only a positive whole number, e.g. `positiveInt('--timeout', 'milliseconds')`. */
export function positiveInt(flag: string, unit: string): (value: string) => number {
  return (value: string) => {
    const n = /^\+?\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) {
      lastInvalidArgument = `${flag} must be a positive whole number of ${unit}, got "${value}"`;
      throw new InvalidArgumentError(lastInvalidArgument);
    }
    return n;
  };
}

/** Reads and checks a `--config` file; any problem is a UsageError naming the file. */
export function loadConfig(file: string): ServerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : messageOf(err);
    throw new UsageError(`cannot read the config file "${file}": ${why}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the config file "${file}" is not valid JSON: ${messageOf(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError(`the config file "${file}" must hold a JSON object (a ServerConfig), not ${describe(json)}`);
  }
  // The server's own schema: the CLI refuses exactly what the server would, before starting it.
  const parsed = parseConfig(json);
  if (!parsed.ok) throw new UsageError(`the config file "${file}" is not a valid ServerConfig: ${parsed.message}`);
  return parsed.value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** The per-run limits the user set with --timeout/--memory, or undefined for the server's defaults. */
export function limitsFrom(options: { timeout?: number; memory?: number }): Partial<Limits> | undefined {
  const limits: Partial<Limits> = {};
  if (options.timeout !== undefined) limits.timeoutMs = options.timeout;
  if (options.memory !== undefined) limits.memoryMb = options.memory;
  return Object.keys(limits).length > 0 ? limits : undefined;
}
