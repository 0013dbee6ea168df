import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  extensionOf,
  RUNNABLE_VSCODE_LANGUAGES,
  SERVED_VSCODE_LANGUAGES,
  serverLanguageFor,
  serverLanguageForVscodeId,
} from '../../client/languages';

const serverLanguages = [
  { id: 'python', extensions: ['.py'] },
  { id: 'shell', extensions: ['.sh', '.bash'] },
  { id: 'cpp', extensions: ['.cpp', '.cc'] },
  { id: 'pypy', extensions: ['.pypy'] },
];

describe('VS Code languageId → server language', () => {
  it('maps every built-in language, shellscript to shell', () => {
    assert.deepEqual(
      Object.fromEntries(RUNNABLE_VSCODE_LANGUAGES.map((id) => [id, serverLanguageForVscodeId(id)])),
      { python: 'python', javascript: 'javascript', typescript: 'typescript', shellscript: 'shell', c: 'c', cpp: 'cpp' },
    );
  });

  it('knows nothing of other languages, nor of Object.prototype names', () => {
    assert.equal(serverLanguageForVscodeId('markdown'), undefined);
    assert.equal(serverLanguageForVscodeId('rust'), undefined);
    assert.equal(serverLanguageForVscodeId('toString'), undefined);
    assert.equal(serverLanguageForVscodeId('constructor'), undefined);
  });

  it('serves Markdown (fenced blocks) but does not run it whole', () => {
    assert.ok(SERVED_VSCODE_LANGUAGES.includes('markdown'));
    assert.ok(!RUNNABLE_VSCODE_LANGUAGES.includes('markdown'));
  });
});

describe('serverLanguageFor', () => {
  it('prefers the languageId (untitled buffers have no extension)', () => {
    assert.equal(serverLanguageFor('python', undefined), 'python');
    assert.equal(serverLanguageFor('shellscript', '/w/script.txt', serverLanguages), 'shell');
  });

  it('falls back to the extensions the server reported, executorMap ones included', () => {
    assert.equal(serverLanguageFor('plaintext', '/w/prog.pypy', serverLanguages), 'pypy');
    assert.equal(serverLanguageFor(undefined, '/w/A.CC', serverLanguages), 'cpp');
    assert.equal(serverLanguageFor(undefined, 'C:\\w\\run.bash', serverLanguages), 'shell');
  });

  it('lets a later (executorMap) entry claiming an extension win', () => {
    assert.equal(serverLanguageFor(undefined, '/w/x.py', [...serverLanguages, { id: 'py312', extensions: ['.py'] }]), 'py312');
  });

  it('returns undefined for what nobody runs', () => {
    assert.equal(serverLanguageFor('plaintext', '/w/notes.txt', serverLanguages), undefined);
    assert.equal(serverLanguageFor(undefined, '/w/Makefile', serverLanguages), undefined);
    assert.equal(serverLanguageFor(undefined, undefined, serverLanguages), undefined);
  });
});

describe('extensionOf', () => {
  it('takes the last extension of the base name, lower-cased', () => {
    assert.equal(extensionOf('/a.b/c.test.TS'), '.ts');
    assert.equal(extensionOf('/a.b/.bashrc'), '');
    assert.equal(extensionOf('/a.b/README'), '');
  });
});
