/**
 * CodeLenses for the server's `textDocument/codeLens`: one "▶ Run in Sandbox" (or "▶ Run Test in Sandbox") above
 * every unit server/discovery.ts finds, invoking the client's `sandbox.runUnit` command with a RunUnitArgs.
 */
import type { CodeLens } from 'vscode-languageserver';
import { discoverUnits, type DiscoveredUnit } from './discovery';
import { RUN_UNIT_COMMAND, type RunUnitArgs } from './protocol';

export const RUN_TITLE = '▶ Run in Sandbox';
export const RUN_TEST_TITLE = '▶ Run Test in Sandbox';

/** The parts of a document lenses depend on (an LSP TextDocument has them). */
export interface LensSource {
  uri: string;
  languageId: string;
  getText(): string;
}

/** The RunUnitArgs a lens on `unit` of document (`uri`, `languageId`) carries. */
export function runUnitArgs(uri: string, languageId: string, unit: DiscoveredUnit): RunUnitArgs {
  const args: RunUnitArgs = { uri, languageId, language: unit.language, kind: unit.kind, range: unit.range };
  if (unit.name !== undefined) args.name = unit.name;
  if (unit.code !== undefined) args.code = unit.code;
  return args;
}

/** One lens per runnable unit of the document, in document order. */
export function codeLensesFor(doc: LensSource): CodeLens[] {
  return discoverUnits(doc.languageId, doc.getText()).map((unit) => ({
    range: unit.range,
    command: {
      title: unit.kind === 'test' ? RUN_TEST_TITLE : RUN_TITLE,
      command: RUN_UNIT_COMMAND,
      arguments: [runUnitArgs(doc.uri, doc.languageId, unit)],
    },
  }));
}
