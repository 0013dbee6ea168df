// Bundles every target of the project. One typed options object per target; `--watch` rebuilds on change.
// The sandbox launcher is a few files of C compiled with the system compiler (server/launcher/): it must call
// wait4() for the kernel's own accounting of a run, make user namespaces and load a seccomp filter.
import * as esbuild from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';

const watch = process.argv.includes('--watch');

/** @type {esbuild.BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  minify: false,
  logLevel: 'warning',
  // esbuild ships a native binary per platform: it cannot be bundled, so the server loads it at run time.
  external: ['esbuild'],
};

/** @type {esbuild.BuildOptions} */
const server = { ...common, entryPoints: ['server/main.ts'], outfile: 'dist/server.js' };

/** @type {esbuild.BuildOptions} */
const cli = {
  ...common,
  entryPoints: ['cli/sbx.ts'],
  outfile: 'dist/cli.js',
  banner: { js: '#!/usr/bin/env node' },
};

function buildLauncher() {
  mkdirSync('dist', { recursive: true });
  // The project is ESM (execa is ESM-only); the bundles are CommonJS, as VS Code's extension host wants.
  writeFileSync('dist/package.json', '{ "type": "commonjs" }\n');
  if (!existsSync('/usr/include/seccomp.h')) {
    // The launcher builds the sandbox's seccomp filter with libseccomp: a sandbox without it must not be built.
    throw new Error('libseccomp is missing: install Debian\'s libseccomp-dev (apt-get install libseccomp-dev)');
  }
  const sources = readdirSync('server/launcher')
    .filter((f) => f.endsWith('.c'))
    .map((f) => `server/launcher/${f}`);
  // Built beside and renamed into place: a server running from dist/ never sees the launcher missing.
  // Static: no dynamic loader on every run (~0.2 ms each), libseccomp included, nothing to bind into a sandbox.
  const flags = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/sbx-launch.tmp', ...sources, '-lseccomp'];
  try {
    execFileSync('cc', ['-static', ...flags], { stdio: ['ignore', 'inherit', 'pipe'] });
  } catch {
    execFileSync('cc', flags, { stdio: 'inherit' });
  }
  renameSync('dist/sbx-launch.tmp', 'dist/sbx-launch');
}

/** @type {esbuild.BuildOptions} */
const extension = {
  ...common,
  entryPoints: ['client/extension.ts'],
  outfile: 'dist/extension.js',
  // `vscode` is provided by the extension host at run time; it is not a package that can be bundled.
  external: ['vscode', 'esbuild'],
};

const targets = [server, cli, extension];
buildLauncher();
if (watch) {
  for (const t of targets) {
    const ctx = await esbuild.context(t);
    await ctx.watch();
  }
  console.log('esbuild: watching for changes');
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
}
