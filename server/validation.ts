/**
 * Schemas for every message the server accepts. Anything that doesn't fit is refused with one readable sentence
 * (and never reaches the engine), so a malformed request can't crash the server or run with a surprise default.
 */
import { z } from 'zod';
import type { DiscoverTestsParams, ExecuteBatchParams, ExecuteParams, RunTestsParams, ServerConfig } from './protocol';

/** Size bounds checked before anything is spawned (hostile case 15: huge code, args, stdin). */
export const MAX_CODE_BYTES = 2 * 1024 * 1024;
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;
export const MAX_ARGS = 1000;
export const MAX_ARGS_BYTES = 128 * 1024;
export const MAX_BATCH_ITEMS = 10_000;

const positiveInt = (what: string, max: number) =>
  z
    .number({ error: `${what} must be a number` })
    .int({ error: `${what} must be a whole number` })
    .positive({ error: `${what} must be positive` })
    .max(max, { error: `${what} must be at most ${max}` });

export const limitsSchema = z
  .object({
    timeoutMs: positiveInt('limits.timeoutMs', 24 * 3600 * 1000),
    memoryMb: positiveInt('limits.memoryMb', 1024 * 1024).min(8, { error: 'limits.memoryMb must be at least 8' }),
    outputBytes: positiveInt('limits.outputBytes', 1024 * 1024 * 1024),
    cpuMs: positiveInt('limits.cpuMs', 24 * 3600 * 1000),
    processes: positiveInt('limits.processes', 1_000_000).min(2, { error: 'limits.processes must be at least 2' }),
    fileSizeMb: positiveInt('limits.fileSizeMb', 1024 * 1024),
    openFiles: positiveInt('limits.openFiles', 1_048_576).min(8, { error: 'limits.openFiles must be at least 8' }),
    diskMb: positiveInt('limits.diskMb', 1024 * 1024),
  })
  .partial()
  .strict();

export const executeSchema = z
  .object({
    language: z.string().min(1, { error: 'language must not be empty' }).max(64),
    code: z.string().optional(),
    file: z.string().min(1).max(4096).optional(),
    stdin: z.string().optional(),
    // Their size (in bytes, all of them together: MAX_ARGS_BYTES) is checked by the engine, like the size of code
    // and stdin: a run over it is `rejected` and audited, not a protocol error.
    args: z.array(z.string()).max(MAX_ARGS, { error: `at most ${MAX_ARGS} args` }).optional(),
    limits: limitsSchema.optional(),
    cache: z.boolean().optional(),
    runId: z
      .string()
      .regex(/^[\w.:-]{1,128}$/, { error: 'runId must be 1-128 letters, digits, or . _ : -' })
      .optional(),
    // Checked further (absolute, an existing directory) by the engine, which can look at the disk.
    workspace: z.string().min(1, { error: 'workspace must not be empty' }).max(4096).optional(),
  })
  .strict()
  .refine((p) => (p.code === undefined) !== (p.file === undefined), {
    error: 'give exactly one of code and file',
  });

export const executeBatchSchema = z
  .object({
    // Items are checked one by one later, so that one bad item is that item's `rejected`, not the batch's error.
    items: z.array(z.unknown()).max(MAX_BATCH_ITEMS, { error: `a batch holds at most ${MAX_BATCH_ITEMS} items` }),
    concurrency: positiveInt('concurrency', 4096).optional(),
  })
  .strict();

export const discoverTestsSchema = z
  .object({
    uri: z.string().max(8192),
    languageId: z.string().max(64),
    text: z.string().max(MAX_CODE_BYTES, { error: `text must be at most ${MAX_CODE_BYTES} characters` }),
  })
  .strict();

export const runTestsSchema = z
  .object({
    items: z
      .array(
        z
          .object({
            uri: z.string().max(8192),
            file: z.string().min(1, { error: 'file must not be empty' }).max(4096),
            languageId: z.string().min(1).max(64),
            testId: z.string().min(1, { error: 'testId must not be empty' }).max(4096),
            workspace: z.string().min(1).max(4096).optional(),
          })
          .strict(),
      )
      .max(MAX_BATCH_ITEMS, { error: `at most ${MAX_BATCH_ITEMS} tests at once` }),
    concurrency: positiveInt('concurrency', 4096).optional(),
    limits: limitsSchema.optional(),
  })
  .strict();

const overrideSchema = z
  .object({
    command: z.string().min(1),
    args: z.array(z.string()).optional(),
    extension: z.string().regex(/^\.[\w+.-]+$/, { error: 'extension must look like ".py"' }).optional(),
    extensions: z.array(z.string().regex(/^\.[\w+.-]+$/)).optional(),
    name: z.string().optional(),
  })
  .strict();

export const configSchema = z
  .object({
    poolSize: positiveInt('poolSize', 1024).optional(),
    queueLimit: z.number().int().min(0).max(1_000_000).optional(),
    cache: z
      .object({
        enabled: z.boolean().optional(),
        ttlMs: positiveInt('cache.ttlMs', 365 * 24 * 3600 * 1000).optional(),
        maxEntries: positiveInt('cache.maxEntries', 10_000_000).optional(),
        maxBytes: positiveInt('cache.maxBytes', 64 * 1024 * 1024 * 1024).optional(),
      })
      .strict()
      .optional(),
    limits: limitsSchema.optional(),
    executorMap: z.record(z.string().regex(/^[\w+.-]{1,64}$/), overrideSchema).optional(),
    codeLens: z.boolean({ error: 'codeLens must be true or false' }).optional(),
    isolation: z.enum(['auto', 'bwrap', 'process'], { error: 'isolation must be "auto", "bwrap" or "process"' }).optional(),
    maxLimits: limitsSchema.optional(),
    scanPolicy: z.enum(['off', 'warn', 'block'], { error: 'scanPolicy must be "off", "warn" or "block"' }).optional(),
    audit: z
      .object({
        enabled: z.boolean().optional(),
        path: z.string().min(1).max(4096).optional(),
        maxBytes: positiveInt('audit.maxBytes', 1024 * 1024 * 1024 * 1024).optional(),
        maxFiles: z.number().int().min(0).max(1000).optional(),
        includeCode: z.boolean().optional(),
      })
      .strict()
      .optional(),
    rateLimit: z
      .object({
        perSecond: z.number().min(0).max(1_000_000).optional(),
        burst: positiveInt('rateLimit.burst', 10_000_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** One sentence naming every problem, e.g. `limits.timeoutMs: must be positive; language: required`. */
export function describeError(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.join('.');
      if (i.code === 'unrecognized_keys') {
        return `unknown field ${i.keys.map((k) => `"${where ? `${where}.` : ''}${k}"`).join(', ')}`;
      }
      return where && !i.message.startsWith(where) ? `${where}: ${i.message}` : i.message;
    })
    .join('; ');
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function parse<T>(schema: z.ZodType, value: unknown): Parsed<T> {
  const r = schema.safeParse(value);
  return r.success ? { ok: true, value: r.data as T } : { ok: false, message: describeError(r.error) };
}

export const parseExecute = (v: unknown): Parsed<ExecuteParams> => parse(executeSchema, v);
export const parseExecuteBatch = (v: unknown): Parsed<ExecuteBatchParams & { items: unknown[] }> =>
  parse(executeBatchSchema, v);
export const parseDiscoverTests = (v: unknown): Parsed<DiscoverTestsParams> => parse(discoverTestsSchema, v);
export const parseRunTests = (v: unknown): Parsed<RunTestsParams> => parse(runTestsSchema, v);
export const parseConfig = (v: unknown): Parsed<ServerConfig> => parse(configSchema, v ?? {});
