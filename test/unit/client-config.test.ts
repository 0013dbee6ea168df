import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  afterConfigure,
  LIMIT_BOUNDS,
  RESTART_SETTING_KEYS,
  serverConfigFromSettings,
  settingsNeedingRestart,
  SERVER_SETTING_KEYS,
} from '../../client/config';
import type { Limits } from '../../server/protocol';
import { parseConfig } from '../../server/validation';

interface SettingSchema {
  scope?: string;
  type: string | string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  enum?: string[];
  enumDescriptions?: string[];
  markdownDescription?: string;
  properties?: Record<string, { minimum?: number }>;
}
const packageJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
  contributes: { configuration: { properties: Record<string, SettingSchema> } };
};
const schema = packageJson.contributes.configuration.properties;
const LIMIT_NAMES = Object.keys(LIMIT_BOUNDS) as (keyof Limits)[];

/** The settings as VS Code reports them with nothing changed: the `default`s of package.json. */
const defaults = {
  poolSize: null,
  'limits.timeoutMs': 10000,
  'limits.memoryMb': 512,
  'limits.outputBytes': 1048576,
  'cache.enabled': true,
  'cache.ttlMs': 600000,
  'cache.maxEntries': 500,
  'cache.maxBytes': 67108864,
  executorMap: {},
  'codeLens.enabled': true,
  'limits.cpuMs': null,
  'limits.processes': null,
  'limits.fileSizeMb': null,
  'limits.openFiles': null,
  'limits.diskMb': null,
  isolation: 'auto',
  maxLimits: {},
  scanPolicy: 'warn',
  'audit.enabled': true,
  'audit.path': '',
  'audit.includeCode': false,
  'rateLimit.perSecond': 100,
  'rateLimit.burst': 1000,
};

describe('serverConfigFromSettings', () => {
  it('turns the default settings into a config the server accepts', () => {
    const { config, problems } = serverConfigFromSettings(defaults);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, {
      limits: { timeoutMs: 10000, memoryMb: 512, outputBytes: 1048576 },
      cache: { enabled: true, ttlMs: 600000, maxEntries: 500, maxBytes: 67108864 },
      executorMap: {},
      codeLens: true,
      isolation: 'auto',
      maxLimits: {},
      scanPolicy: 'warn',
      audit: { enabled: true, includeCode: false },
      rateLimit: { perSecond: 100, burst: 1000 },
    });
    assert.ok(parseConfig(config).ok);
  });

  it('reads every setting it builds from, and package.json declares each with the defaults above', () => {
    assert.deepEqual(new Set(SERVER_SETTING_KEYS), new Set(Object.keys(defaults)));
    for (const key of SERVER_SETTING_KEYS) {
      const s = schema[`sandbox.${key}`];
      assert.ok(s, `package.json lacks sandbox.${key}`);
      assert.deepEqual(s.default ?? null, defaults[key], `default of sandbox.${key}`);
      assert.ok(s.scope, `sandbox.${key} has no scope`);
      assert.ok(s.markdownDescription && s.markdownDescription.length > 20, `sandbox.${key} has no markdownDescription`);
    }
  });

  it('declares the limits with the bounds the server validates, and the builder and server agree on them', () => {
    for (const name of LIMIT_NAMES) {
      const [min, max] = LIMIT_BOUNDS[name];
      const s = schema[`sandbox.limits.${name}`]!;
      assert.equal(s.minimum, min, `minimum of sandbox.limits.${name}`);
      assert.equal(s.maximum, max, `maximum of sandbox.limits.${name}`);
      assert.equal(schema['sandbox.maxLimits']!.properties?.[name]?.minimum, min, `minimum of sandbox.maxLimits.${name}`);
      for (const value of [min, max]) {
        const built = serverConfigFromSettings({ [`limits.${name}`]: value, maxLimits: { [name]: value } });
        assert.deepEqual(built.problems, [], `${name} = ${value}`);
        assert.deepEqual(built.config.limits, { [name]: value });
        assert.deepEqual(built.config.maxLimits, { [name]: value });
        assert.ok(parseConfig(built.config).ok, `the server refuses ${name} = ${value}`);
      }
      for (const value of [min - 1, max + 1]) {
        // The server refuses it too: that is why the builder must drop it.
        assert.equal(parseConfig({ limits: { [name]: value } }).ok, false, `the server accepts ${name} = ${value}`);
        const built = serverConfigFromSettings({ [`limits.${name}`]: value, maxLimits: { [name]: value } });
        assert.equal(built.config.limits, undefined);
        assert.deepEqual(built.config.maxLimits, {});
        assert.equal(built.problems.length, 2, built.problems.join('\n'));
        assert.match(built.problems[0]!, new RegExp(`^sandbox\\.limits\\.${name} must be a whole number from ${min} to ${max}; ignoring ${value}\\.$`));
        assert.match(built.problems[1]!, new RegExp(`^sandbox\\.maxLimits\\.${name} must be a whole number from ${min} to ${max}`));
      }
    }
  });

  it('keeps the settings that decide whether and how code is sandboxed out of a workspace\'s reach', () => {
    for (const key of ['isolation', 'maxLimits', 'scanPolicy', 'audit.enabled', 'audit.path', 'audit.includeCode']) {
      assert.ok(['machine', 'application'].includes(schema[`sandbox.${key}`]!.scope!), `sandbox.${key} is scope ${schema[`sandbox.${key}`]!.scope}`);
    }
    const isolation = schema['sandbox.isolation']!;
    assert.deepEqual(isolation.enum, ['auto', 'bwrap', 'process']);
    assert.equal(isolation.enumDescriptions?.length, 3);
    assert.match(isolation.markdownDescription!, /workspace/);
    assert.deepEqual(schema['sandbox.scanPolicy']!.enum, ['off', 'warn', 'block']);
    assert.match(schema['sandbox.audit.path']!.markdownDescription!, /~\/\.local\/state\/sandbox-runner\/audit\.jsonl/);
  });

  it('leaves an unset pool size to the server, unless a default is given (for sandbox/configure)', () => {
    assert.equal(serverConfigFromSettings(defaults).config.poolSize, undefined);
    assert.equal(serverConfigFromSettings(defaults, { defaultPoolSize: 6 }).config.poolSize, 6);
    assert.equal(serverConfigFromSettings({ ...defaults, poolSize: 3 }, { defaultPoolSize: 6 }).config.poolSize, 3);
  });

  it('drops a bad value with a sentence naming it, and still sends the rest', () => {
    const { config, problems } = serverConfigFromSettings({
      ...defaults,
      poolSize: 0,
      'limits.timeoutMs': 2.5,
      'limits.memoryMb': 4,
      'cache.enabled': 'yes',
    });
    assert.equal(config.poolSize, undefined);
    assert.deepEqual(config.limits, { outputBytes: 1048576 });
    assert.equal(config.cache?.enabled, undefined);
    assert.equal(problems.length, 4);
    assert.match(problems[0]!, /^sandbox\.poolSize must be a whole number from 1 to 1024; ignoring 0\.$/);
    assert.match(problems.join('\n'), /sandbox\.limits\.memoryMb .* 8 to/);
    assert.match(problems.join('\n'), /sandbox\.cache\.enabled must be true or false/);
    assert.ok(parseConfig(config).ok);
  });

  it('passes sandbox.codeLens.enabled as codeLens, and drops a non-boolean', () => {
    assert.equal(serverConfigFromSettings({ 'codeLens.enabled': false }).config.codeLens, false);
    const { config, problems } = serverConfigFromSettings({ 'codeLens.enabled': 'off' });
    assert.equal(config.codeLens, undefined);
    assert.match(problems[0]!, /sandbox\.codeLens\.enabled must be true or false/);
  });

  it('passes the new limits, and leaves unset ones (null) to the server\'s per-language defaults', () => {
    const { config, problems } = serverConfigFromSettings({
      ...defaults,
      'limits.cpuMs': 2000,
      'limits.processes': 32,
      'limits.fileSizeMb': 16,
      'limits.openFiles': 64,
      'limits.diskMb': 128,
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(config.limits, {
      timeoutMs: 10000,
      memoryMb: 512,
      outputBytes: 1048576,
      cpuMs: 2000,
      processes: 32,
      fileSizeMb: 16,
      openFiles: 64,
      diskMb: 128,
    });
    assert.ok(parseConfig(config).ok);
    assert.equal(serverConfigFromSettings(defaults).config.limits?.processes, undefined);
  });

  it('drops bad new limits with a sentence each', () => {
    const { config, problems } = serverConfigFromSettings({
      'limits.cpuMs': 0,
      'limits.processes': 1,
      'limits.fileSizeMb': '16',
      'limits.openFiles': 4,
      'limits.diskMb': 1.5,
    });
    assert.equal(config.limits, undefined);
    assert.equal(problems.length, 5);
    assert.match(problems[0]!, /^sandbox\.limits\.cpuMs must be a whole number from 1 to 86400000; ignoring 0\.$/);
    assert.match(problems[1]!, /^sandbox\.limits\.processes must be a whole number from 2 to 1000000; ignoring 1\.$/);
    assert.match(problems[2]!, /^sandbox\.limits\.fileSizeMb .*ignoring "16"\.$/);
    assert.match(problems[3]!, /^sandbox\.limits\.openFiles must be a whole number from 8 /);
    assert.match(problems[4]!, /^sandbox\.limits\.diskMb .*ignoring 1\.5\.$/);
  });

  it('passes isolation and scanPolicy, and drops a value outside their enums', () => {
    for (const isolation of ['auto', 'bwrap', 'process'] as const) {
      assert.equal(serverConfigFromSettings({ isolation }).config.isolation, isolation);
    }
    for (const scanPolicy of ['off', 'warn', 'block'] as const) {
      assert.equal(serverConfigFromSettings({ scanPolicy }).config.scanPolicy, scanPolicy);
    }
    const { config, problems } = serverConfigFromSettings({ ...defaults, isolation: 'none', scanPolicy: true });
    assert.equal(config.isolation, undefined);
    assert.equal(config.scanPolicy, undefined);
    assert.deepEqual(problems, [
      'sandbox.isolation must be one of "auto", "bwrap", "process"; ignoring "none".',
      'sandbox.scanPolicy must be one of "off", "warn", "block"; ignoring true.',
    ]);
    assert.ok(parseConfig(config).ok);
  });

  it('passes the audit settings; an empty path is the server\'s default and ~/ is the home directory', () => {
    const on = serverConfigFromSettings({ 'audit.enabled': false, 'audit.path': '/var/log/sbx/audit.jsonl', 'audit.includeCode': true });
    assert.deepEqual(on, { config: { audit: { enabled: false, path: '/var/log/sbx/audit.jsonl', includeCode: true } }, problems: [] });
    assert.ok(parseConfig(on.config).ok);
    assert.equal(serverConfigFromSettings({ 'audit.path': '   ' }).config.audit, undefined);
    assert.deepEqual(serverConfigFromSettings({ 'audit.path': '~/logs/a.jsonl' }, { homeDir: '/home/u' }).config.audit, {
      path: '/home/u/logs/a.jsonl',
    });
  });

  it('drops bad audit settings', () => {
    const { config, problems } = serverConfigFromSettings({ 'audit.enabled': 'no', 'audit.path': 'logs/audit.jsonl', 'audit.includeCode': 1 });
    assert.equal(config.audit, undefined);
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /^sandbox\.audit\.enabled must be true or false; ignoring "no"\.$/);
    assert.match(problems[1]!, /^sandbox\.audit\.path must be an absolute path .*ignoring "logs\/audit\.jsonl"\.$/);
    assert.match(problems[2]!, /^sandbox\.audit\.includeCode must be true or false/);
    assert.match(serverConfigFromSettings({ 'audit.path': 42 }).problems[0]!, /^sandbox\.audit\.path must be a path/);
  });

  it('passes the rate limit (perSecond 0 = off, fractions allowed) and drops bad values', () => {
    assert.deepEqual(serverConfigFromSettings({ 'rateLimit.perSecond': 0, 'rateLimit.burst': 1 }).config, { rateLimit: { perSecond: 0, burst: 1 } });
    assert.equal(serverConfigFromSettings({ 'rateLimit.perSecond': 0.5 }).config.rateLimit?.perSecond, 0.5);
    const { config, problems } = serverConfigFromSettings({ 'rateLimit.perSecond': -1, 'rateLimit.burst': 0 });
    assert.equal(config.rateLimit, undefined);
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /^sandbox\.rateLimit\.perSecond must be a number from 0 \(off\) to 1000000; ignoring -1\.$/);
    assert.match(problems[1]!, /^sandbox\.rateLimit\.burst must be a whole number from 1 to 10000000; ignoring 0\.$/);
    assert.equal(serverConfigFromSettings({ 'rateLimit.perSecond': 2_000_000 }).problems.length, 1);
    assert.equal(parseConfig({ rateLimit: { perSecond: 2_000_000 } }).ok, false);
  });

  it('passes maxLimits, always (an empty object brings back the built-in maxima), and drops unknown or bad entries', () => {
    const { config, problems } = serverConfigFromSettings({ maxLimits: { memoryMb: 2048, timeoutMs: 60000, memory: 1, diskMb: -5 } });
    assert.deepEqual(config.maxLimits, { memoryMb: 2048, timeoutMs: 60000 });
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /^sandbox\.maxLimits\.memory is not a limit/);
    assert.match(problems[1]!, /^sandbox\.maxLimits\.diskMb must be a whole number/);
    assert.ok(parseConfig(config).ok);
    const notObject = serverConfigFromSettings({ maxLimits: [1] });
    assert.equal(notObject.config.maxLimits, undefined);
    assert.match(notObject.problems[0]!, /^sandbox\.maxLimits must be an object/);
  });

  it('omits what is not set at all', () => {
    assert.deepEqual(serverConfigFromSettings({}), { config: {}, problems: [] });
  });

  it('passes executorMap entries, a bare string meaning the command', () => {
    const { config, problems } = serverConfigFromSettings({
      executorMap: {
        python: 'python3.12',
        pypy: { command: 'pypy3', args: ['-B', '$file'], extension: '.py', extensions: ['.pypy'], name: 'PyPy' },
      },
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(config.executorMap, {
      python: { command: 'python3.12' },
      pypy: { command: 'pypy3', args: ['-B', '$file'], extension: '.py', extensions: ['.pypy'], name: 'PyPy' },
    });
    assert.ok(parseConfig(config).ok);
  });

  it('drops a malformed executorMap entry and keeps the good ones', () => {
    const { config, problems } = serverConfigFromSettings({
      executorMap: {
        'bad id': { command: 'x' },
        nocommand: { args: [] },
        typo: { command: 'ruby', extention: '.rb' },
        badext: { command: 'ruby', extension: 'rb' },
        ruby: { command: 'ruby', extensions: ['.rb'] },
      },
    });
    assert.deepEqual(Object.keys(config.executorMap ?? {}), ['ruby']);
    assert.equal(problems.length, 4);
    assert.match(problems.join('\n'), /unknown field "extention"/);
    assert.ok(parseConfig(config).ok);
  });

  it('refuses an executorMap that is not an object', () => {
    const { config, problems } = serverConfigFromSettings({ executorMap: ['python3'] });
    assert.equal(config.executorMap, undefined);
    assert.equal(problems.length, 1);
  });
});

describe('settingsNeedingRestart', () => {
  it('names sandbox.isolation when it changes, since the server reads it at start only', () => {
    assert.deepEqual(RESTART_SETTING_KEYS, ['isolation']);
    assert.deepEqual(settingsNeedingRestart({ isolation: 'auto' }, { isolation: 'process' }), ['sandbox.isolation']);
    assert.deepEqual(settingsNeedingRestart({ isolation: 'auto' }, { isolation: 'auto' }), []);
    // Unset and a dropped bad value both mean auto.
    assert.deepEqual(settingsNeedingRestart({}, { isolation: 'auto' }), []);
    assert.deepEqual(settingsNeedingRestart({ isolation: 'bwrap' }, {}), ['sandbox.isolation']);
  });

  it('names a cleared limit (the server merges limits, so an omitted one would stay) but not a changed one', () => {
    const running = { isolation: 'auto' as const, limits: { timeoutMs: 5000, processes: 32 } };
    assert.deepEqual(settingsNeedingRestart(running, { isolation: 'auto', limits: { timeoutMs: 7000, processes: 16 } }), []);
    assert.deepEqual(settingsNeedingRestart(running, { isolation: 'auto', limits: { timeoutMs: 7000 } }), ['sandbox.limits.processes']);
    assert.deepEqual(settingsNeedingRestart(running, { isolation: 'process' }), [
      'sandbox.isolation',
      'sandbox.limits.timeoutMs',
      'sandbox.limits.processes',
    ]);
  });

  it('tracks what the server holds after sandbox/configure: isolation from the start, limits merged', () => {
    const running = afterConfigure({ isolation: 'auto', limits: { timeoutMs: 5000 } }, { isolation: 'process', limits: { diskMb: 10 } });
    assert.deepEqual(running, { isolation: 'auto', limits: { timeoutMs: 5000, diskMb: 10 } });
    assert.deepEqual(settingsNeedingRestart(running, { isolation: 'process', limits: { timeoutMs: 5000 } }), [
      'sandbox.isolation',
      'sandbox.limits.diskMb',
    ]);
  });
});
