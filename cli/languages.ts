/**
 * `sbx languages`: the runtimes the server found, with their real binaries and versions, then how runs are
 * sandboxed here (SandboxInfo): the isolation mode and why, cgroups, what enforces each limit, the maxima.
 */
import { sandboxLines, table } from './format';
import { openSession, writeOut, type GlobalOptions } from './session';

export async function languagesCommand(options: { json?: boolean }, globals: GlobalOptions): Promise<number> {
  return openSession(globals, async (session) => {
    const result = await session.languages();
    if (options.json) {
      writeOut(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    }
    const rows = result.languages.map((l) => [
      l.id,
      l.available ? 'yes' : 'no',
      l.version ?? '-',
      l.binary ?? '-',
      l.extensions.join(' '),
    ]);
    let out = table(['id', 'available', 'version', 'binary', 'extensions'], rows);
    for (const l of result.languages) {
      if (!l.available && l.message !== undefined) out += `${l.id}: ${l.message}\n`;
    }
    out += `isolation: ${result.isolation}\n`;
    // `if`: a server from before SandboxInfo sends none.
    if (result.sandbox) out += sandboxLines(result.sandbox).map((l) => `${l}\n`).join('');
    writeOut(out);
    return 0;
  });
}
