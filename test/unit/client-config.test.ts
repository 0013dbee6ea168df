import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { serverConfigFromSettings } from '../../client/config';
import { parseConfig } from '../../server/validation';

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
    });
    assert.ok(parseConfig(config).ok);
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
