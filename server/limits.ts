/**
 * A run's limits: built-in defaults, per-language defaults, the server's configured defaults, then the request's
 * own. A request may lower any limit, and raise it only up to the configured maxima (like Judge0's max_* settings);
 * above a maximum the run is rejected with a sentence naming the limit, never silently clamped.
 */
import type { Limits } from './protocol';

export const DEFAULT_LIMITS: Limits = {
  timeoutMs: 10_000,
  cpuMs: 10_000,
  memoryMb: 512,
  outputBytes: 1024 * 1024,
  processes: 64,
  fileSizeMb: 64,
  openFiles: 256,
  diskMb: 64,
};

export const DEFAULT_MAX_LIMITS: Limits = {
  timeoutMs: 10 * 60_000,
  cpuMs: 10 * 60_000,
  memoryMb: 8192,
  outputBytes: 64 * 1024 * 1024,
  processes: 1024,
  fileSizeMb: 1024,
  openFiles: 4096,
  diskMb: 1024,
};

/** Where a language needs other defaults than the rest. */
export const LANGUAGE_LIMITS: Record<string, Partial<Limits>> = {
  // A shell script is mostly other processes.
  shell: { processes: 128 },
  // Node starts ~11 threads (libuv pool, V8 workers) before the first line runs; pids limits count threads.
  javascript: { processes: 96 },
  typescript: { processes: 96 },
};

export const LIMIT_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];

export class LimitError extends Error {}

/**
 * The limits of one run. `cpuMs` follows `timeoutMs` unless someone set it: a program given a minute of wall time
 * should not be stopped by a 10 s CPU default.
 */
export function resolveLimits(
  language: string,
  configured: Partial<Limits> | undefined,
  requested: Partial<Limits> | undefined,
  max: Limits,
): Limits {
  for (const name of LIMIT_NAMES) {
    const v = requested?.[name];
    if (v !== undefined && v > max[name]) {
      throw new LimitError(`limits.${name} ${v} is above the most allowed here (maxLimits.${name} = ${max[name]})`);
    }
  }
  const language_ = LANGUAGE_LIMITS[language] ?? {};
  const merged: Limits = { ...DEFAULT_LIMITS, ...language_, ...defined(configured), ...defined(requested) };
  // Configured defaults above a (later lowered) maximum are brought down to it.
  for (const name of LIMIT_NAMES) merged[name] = Math.min(merged[name], max[name]);
  const cpuSet = [language_, configured, requested].some((l) => l?.cpuMs !== undefined);
  if (!cpuSet) merged.cpuMs = Math.min(merged.timeoutMs, max.cpuMs);
  return merged;
}

/** The maxima: built-in ones with the configured ones on top. */
export function resolveMaxLimits(configured: Partial<Limits> | undefined): Limits {
  return { ...DEFAULT_MAX_LIMITS, ...defined(configured) };
}

function defined(l: Partial<Limits> | undefined): Partial<Limits> {
  const out: Partial<Limits> = {};
  for (const name of LIMIT_NAMES) if (l?.[name] !== undefined) out[name] = l[name];
  return out;
}
