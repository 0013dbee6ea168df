/** `sbx languages`: the runtimes the server found, with their real binaries and versions. */
import { table } from './format';
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
    writeOut(out);
    return 0;
  });
}
