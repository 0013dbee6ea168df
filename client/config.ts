/**
 * The `sandbox.*` settings → the ServerConfig the server takes (`initializationOptions`, `sandbox/configure`). Pure:
 * it takes the settings as a plain object keyed by setting name without the `sandbox.` prefix (`limits.timeoutMs`),
 * so it is unit-tested without VS Code. The server refuses a whole config with one bad field, so a bad value is
 * dropped here (the server keeps its default) and named in `problems`, never sent.
 */
import type { ExecutorOverride, ServerConfig } from '../server/protocol';

/** Every setting the builder reads, by its name under `sandbox.`. */
export const SERVER_SETTING_KEYS = [
  'poolSize',
  'limits.timeoutMs',
  'limits.memoryMb',
  'limits.outputBytes',
  'cache.enabled',
  'cache.ttlMs',
  'cache.maxEntries',
  'cache.maxBytes',
  'executorMap',
  'codeLens.enabled',
] as const;
export type ServerSettingKey = (typeof SERVER_SETTING_KEYS)[number];

export interface BuiltConfig {
  config: ServerConfig;
  /** One sentence per setting that was ignored, naming it and why. */
  problems: string[];
}

export interface BuildOptions {
  /**
   * Pool size to send when `sandbox.poolSize` is unset. Leave it out for `initialize` (the server then uses the
   * number of CPUs); give it for `sandbox/configure`, whose omitted fields mean "unchanged", so that clearing the
   * setting brings a running server back to the default.
   */
  defaultPoolSize?: number;
}

const INTEGER_BOUNDS: Readonly<Partial<Record<ServerSettingKey, readonly [number, number]>>> = {
  poolSize: [1, 1024],
  'limits.timeoutMs': [1, 24 * 3600 * 1000],
  'limits.memoryMb': [8, 1024 * 1024],
  'limits.outputBytes': [1, 1024 * 1024 * 1024],
  'cache.ttlMs': [1, 365 * 24 * 3600 * 1000],
  'cache.maxEntries': [1, 10_000_000],
  'cache.maxBytes': [1, 64 * 1024 * 1024 * 1024],
};

const EXTENSION = /^\.[\w+.-]+$/;
const LANGUAGE_ID = /^[\w+.-]{1,64}$/;

export function serverConfigFromSettings(settings: Readonly<Record<string, unknown>>, options: BuildOptions = {}): BuiltConfig {
  const problems: string[] = [];

  const integer = (key: ServerSettingKey): number | undefined => {
    const value = settings[key];
    if (value === undefined || value === null) return undefined;
    const [min, max] = INTEGER_BOUNDS[key]!;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      problems.push(`sandbox.${key} must be a whole number from ${min} to ${max}; ignoring ${JSON.stringify(value)}.`);
      return undefined;
    }
    return value;
  };

  const config: ServerConfig = {};
  const poolSize = integer('poolSize') ?? options.defaultPoolSize;
  if (poolSize !== undefined) config.poolSize = poolSize;

  const limits: NonNullable<ServerConfig['limits']> = {};
  const timeoutMs = integer('limits.timeoutMs');
  if (timeoutMs !== undefined) limits.timeoutMs = timeoutMs;
  const memoryMb = integer('limits.memoryMb');
  if (memoryMb !== undefined) limits.memoryMb = memoryMb;
  const outputBytes = integer('limits.outputBytes');
  if (outputBytes !== undefined) limits.outputBytes = outputBytes;
  if (Object.keys(limits).length > 0) config.limits = limits;

  const cache: NonNullable<ServerConfig['cache']> = {};
  const enabled = settings['cache.enabled'];
  if (typeof enabled === 'boolean') cache.enabled = enabled;
  else if (enabled !== undefined && enabled !== null) problems.push(`sandbox.cache.enabled must be true or false; ignoring ${JSON.stringify(enabled)}.`);
  const ttlMs = integer('cache.ttlMs');
  if (ttlMs !== undefined) cache.ttlMs = ttlMs;
  const maxEntries = integer('cache.maxEntries');
  if (maxEntries !== undefined) cache.maxEntries = maxEntries;
  const maxBytes = integer('cache.maxBytes');
  if (maxBytes !== undefined) cache.maxBytes = maxBytes;
  if (Object.keys(cache).length > 0) config.cache = cache;

  const codeLens = settings['codeLens.enabled'];
  if (typeof codeLens === 'boolean') config.codeLens = codeLens;
  else if (codeLens !== undefined && codeLens !== null) problems.push(`sandbox.codeLens.enabled must be true or false; ignoring ${JSON.stringify(codeLens)}.`);

  const map = settings.executorMap;
  if (map !== undefined && map !== null) {
    if (typeof map !== 'object' || Array.isArray(map)) {
      problems.push('sandbox.executorMap must be an object of language id → { command, args?, extension?, extensions?, name? }; ignoring it.');
    } else {
      // Always sent, even empty: the server replaces its whole map, so a removed entry goes away.
      config.executorMap = {};
      for (const [id, entry] of Object.entries(map as Record<string, unknown>)) {
        const override = executorOverride(id, entry, problems);
        if (override) config.executorMap[id] = override;
      }
    }
  }
  return { config, problems };
}

function executorOverride(id: string, entry: unknown, problems: string[]): ExecutorOverride | undefined {
  const where = `sandbox.executorMap.${id}`;
  if (!LANGUAGE_ID.test(id)) {
    problems.push(`${where}: a language id is 1-64 letters, digits, or + . _ -; ignoring it.`);
    return undefined;
  }
  // A bare string is the common case ("python": "python3.12"): the command alone.
  if (typeof entry === 'string') entry = { command: entry };
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    problems.push(`${where} must be a command or an object with "command"; ignoring it.`);
    return undefined;
  }
  const e = entry as Record<string, unknown>;
  const known = new Set(['command', 'args', 'extension', 'extensions', 'name']);
  const unknown = Object.keys(e).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    problems.push(`${where}: unknown field ${unknown.map((k) => `"${k}"`).join(', ')}; ignoring the entry.`);
    return undefined;
  }
  if (typeof e.command !== 'string' || e.command.trim() === '') {
    problems.push(`${where}.command must be a non-empty string; ignoring the entry.`);
    return undefined;
  }
  const out: ExecutorOverride = { command: e.command };
  if (e.args !== undefined) {
    if (!Array.isArray(e.args) || !e.args.every((a) => typeof a === 'string')) {
      problems.push(`${where}.args must be a list of strings; ignoring the entry.`);
      return undefined;
    }
    out.args = e.args as string[];
  }
  if (e.extension !== undefined) {
    if (typeof e.extension !== 'string' || !EXTENSION.test(e.extension)) {
      problems.push(`${where}.extension must look like ".py"; ignoring the entry.`);
      return undefined;
    }
    out.extension = e.extension;
  }
  if (e.extensions !== undefined) {
    if (!Array.isArray(e.extensions) || !e.extensions.every((x) => typeof x === 'string' && EXTENSION.test(x))) {
      problems.push(`${where}.extensions must be a list like [".py"]; ignoring the entry.`);
      return undefined;
    }
    out.extensions = e.extensions as string[];
  }
  if (e.name !== undefined) {
    if (typeof e.name !== 'string') {
      problems.push(`${where}.name must be a string; ignoring the entry.`);
      return undefined;
    }
    out.name = e.name;
  }
  return out;
}
