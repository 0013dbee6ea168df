/**
 * The `sandbox.*` settings → the ServerConfig the server takes (`initializationOptions`, `sandbox/configure`). Pure:
 * it takes the settings as a plain object keyed by setting name without the `sandbox.` prefix (`limits.timeoutMs`),
 * so it is unit-tested without VS Code. The server refuses a whole config with one bad field, so a bad value is
 * dropped here (the server keeps its default) and named in `problems`, never sent.
 */
import { homedir } from 'node:os';
import path from 'node:path';
import type { ExecutorOverride, Limits, ServerConfig } from '../server/protocol';

/** Every setting the builder reads, by its name under `sandbox.`. */
export const SERVER_SETTING_KEYS = [
  'poolSize',
  'limits.timeoutMs',
  'limits.memoryMb',
  'limits.outputBytes',
  'limits.cpuMs',
  'limits.processes',
  'limits.fileSizeMb',
  'limits.openFiles',
  'limits.diskMb',
  'cache.enabled',
  'cache.ttlMs',
  'cache.maxEntries',
  'cache.maxBytes',
  'executorMap',
  'codeLens.enabled',
  'isolation',
  'maxLimits',
  'scanPolicy',
  'audit.enabled',
  'audit.path',
  'audit.includeCode',
  'rateLimit.perSecond',
  'rateLimit.burst',
] as const;
export type ServerSettingKey = (typeof SERVER_SETTING_KEYS)[number];

/**
 * Settings the server reads at start only: changing one needs a restart (the client offers it) instead of a
 * `sandbox/configure`.
 */
export const RESTART_SETTING_KEYS: readonly ServerSettingKey[] = ['isolation'];

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
  /** The home directory a leading `~` of `sandbox.audit.path` stands for (default: os.homedir()). */
  homeDir?: string;
}

/** The bounds of each limit, as server/validation.ts's limitsSchema has them (for `limits.*` and `maxLimits.*`). */
export const LIMIT_BOUNDS: Readonly<Record<keyof Limits, readonly [number, number]>> = {
  timeoutMs: [1, 24 * 3600 * 1000],
  cpuMs: [1, 24 * 3600 * 1000],
  memoryMb: [8, 1024 * 1024],
  outputBytes: [1, 1024 * 1024 * 1024],
  processes: [2, 1_000_000],
  fileSizeMb: [1, 1024 * 1024],
  openFiles: [8, 1_048_576],
  diskMb: [1, 1024 * 1024],
};
const LIMIT_NAMES = Object.keys(LIMIT_BOUNDS) as (keyof Limits)[];

const INTEGER_BOUNDS: Readonly<Partial<Record<ServerSettingKey, readonly [number, number]>>> = {
  poolSize: [1, 1024],
  ...Object.fromEntries(LIMIT_NAMES.map((name) => [`limits.${name}`, LIMIT_BOUNDS[name]])),
  'rateLimit.burst': [1, 10_000_000],
  'cache.ttlMs': [1, 365 * 24 * 3600 * 1000],
  'cache.maxEntries': [1, 10_000_000],
  'cache.maxBytes': [1, 64 * 1024 * 1024 * 1024],
};

const MAX_RATE_PER_SECOND = 1_000_000;
const MAX_PATH_LENGTH = 4096;
const ISOLATION_VALUES = ['auto', 'bwrap', 'process'] as const;
const SCAN_POLICY_VALUES = ['off', 'warn', 'block'] as const;

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

  const boolean = (key: ServerSettingKey): boolean | undefined => {
    const value = settings[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      problems.push(`sandbox.${key} must be true or false; ignoring ${JSON.stringify(value)}.`);
      return undefined;
    }
    return value;
  };

  const oneOf = <T extends string>(key: ServerSettingKey, values: readonly T[]): T | undefined => {
    const value = settings[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
      problems.push(`sandbox.${key} must be one of ${values.map((v) => `"${v}"`).join(', ')}; ignoring ${JSON.stringify(value)}.`);
      return undefined;
    }
    return value as T;
  };

  /** An absolute path (a leading `~/` is the home directory); empty means the server's default. */
  const filePath = (key: ServerSettingKey, home: string): string | undefined => {
    const value = settings[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      problems.push(`sandbox.${key} must be a path; ignoring ${JSON.stringify(value)}.`);
      return undefined;
    }
    const trimmed = value.trim();
    if (trimmed === '') return undefined;
    const expanded = trimmed === '~' ? home : trimmed.startsWith('~/') ? path.join(home, trimmed.slice(2)) : trimmed;
    if (!path.isAbsolute(expanded) || expanded.length > MAX_PATH_LENGTH || expanded.includes('\0')) {
      problems.push(`sandbox.${key} must be an absolute path (or start with ~/); ignoring ${JSON.stringify(value)}.`);
      return undefined;
    }
    return expanded;
  };

  const config: ServerConfig = {};
  const poolSize = integer('poolSize') ?? options.defaultPoolSize;
  if (poolSize !== undefined) config.poolSize = poolSize;

  const limits: NonNullable<ServerConfig['limits']> = {};
  for (const name of LIMIT_NAMES) {
    const value = integer(`limits.${name}`);
    if (value !== undefined) limits[name] = value;
  }
  if (Object.keys(limits).length > 0) config.limits = limits;

  const maxLimits = settings.maxLimits;
  if (maxLimits !== undefined && maxLimits !== null) {
    if (typeof maxLimits !== 'object' || Array.isArray(maxLimits)) {
      problems.push(`sandbox.maxLimits must be an object of limit name → number (${LIMIT_NAMES.join(', ')}); ignoring it.`);
    } else {
      // Always sent, even empty: the server rebuilds its maxima from the built-in ones, so a removed entry goes away.
      config.maxLimits = {};
      for (const [name, value] of Object.entries(maxLimits as Record<string, unknown>)) {
        if (!(LIMIT_NAMES as string[]).includes(name)) {
          problems.push(`sandbox.maxLimits.${name} is not a limit (${LIMIT_NAMES.join(', ')}); ignoring it.`);
          continue;
        }
        const [min, max] = LIMIT_BOUNDS[name as keyof Limits];
        if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
          problems.push(`sandbox.maxLimits.${name} must be a whole number from ${min} to ${max}; ignoring ${JSON.stringify(value)}.`);
          continue;
        }
        config.maxLimits[name as keyof Limits] = value;
      }
    }
  }

  const cache: NonNullable<ServerConfig['cache']> = {};
  const enabled = boolean('cache.enabled');
  if (enabled !== undefined) cache.enabled = enabled;
  const ttlMs = integer('cache.ttlMs');
  if (ttlMs !== undefined) cache.ttlMs = ttlMs;
  const maxEntries = integer('cache.maxEntries');
  if (maxEntries !== undefined) cache.maxEntries = maxEntries;
  const maxBytes = integer('cache.maxBytes');
  if (maxBytes !== undefined) cache.maxBytes = maxBytes;
  if (Object.keys(cache).length > 0) config.cache = cache;

  const codeLens = boolean('codeLens.enabled');
  if (codeLens !== undefined) config.codeLens = codeLens;

  const isolation = oneOf('isolation', ISOLATION_VALUES);
  if (isolation !== undefined) config.isolation = isolation;
  const scanPolicy = oneOf('scanPolicy', SCAN_POLICY_VALUES);
  if (scanPolicy !== undefined) config.scanPolicy = scanPolicy;

  const audit: NonNullable<ServerConfig['audit']> = {};
  const auditEnabled = boolean('audit.enabled');
  if (auditEnabled !== undefined) audit.enabled = auditEnabled;
  const auditPath = filePath('audit.path', options.homeDir ?? homedir());
  if (auditPath !== undefined) audit.path = auditPath;
  const includeCode = boolean('audit.includeCode');
  if (includeCode !== undefined) audit.includeCode = includeCode;
  if (Object.keys(audit).length > 0) config.audit = audit;

  const rateLimit: NonNullable<ServerConfig['rateLimit']> = {};
  const perSecond = settings['rateLimit.perSecond'];
  if (perSecond !== undefined && perSecond !== null) {
    if (typeof perSecond !== 'number' || !Number.isFinite(perSecond) || perSecond < 0 || perSecond > MAX_RATE_PER_SECOND) {
      problems.push(`sandbox.rateLimit.perSecond must be a number from 0 (off) to ${MAX_RATE_PER_SECOND}; ignoring ${JSON.stringify(perSecond)}.`);
    } else {
      rateLimit.perSecond = perSecond;
    }
  }
  const burst = integer('rateLimit.burst');
  if (burst !== undefined) rateLimit.burst = burst;
  if (Object.keys(rateLimit).length > 0) config.rateLimit = rateLimit;

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

/**
 * The settings whose new value `sandbox/configure` cannot bring to a running server that holds `running`: a
 * changed `sandbox.isolation` (read at start only) and a cleared `sandbox.limits.*` (the server merges limits, so
 * an omitted one keeps its old value). Names as the user sees them (`sandbox.isolation`); empty when none.
 */
export function settingsNeedingRestart(running: Pick<ServerConfig, 'isolation' | 'limits'>, next: ServerConfig): string[] {
  const names: string[] = [];
  if ((running.isolation ?? 'auto') !== (next.isolation ?? 'auto')) names.push('sandbox.isolation');
  for (const name of LIMIT_NAMES) {
    if (running.limits?.[name] !== undefined && next.limits?.[name] === undefined) names.push(`sandbox.limits.${name}`);
  }
  return names;
}

/** What a server that held `running` holds after `sandbox/configure` of `sent` (the part settingsNeedingRestart needs). */
export function afterConfigure(running: Pick<ServerConfig, 'isolation' | 'limits'>, sent: ServerConfig): Pick<ServerConfig, 'isolation' | 'limits'> {
  return { isolation: running.isolation, limits: { ...running.limits, ...sent.limits } };
}
