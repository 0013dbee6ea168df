/**
 * A guard in front of vscode-jsonrpc's reader. The server reads LSP base-protocol frames from stdin
 * (`Content-Length: N\r\n`, optional other headers, `\r\n`, then N bytes of JSON), and vscode-jsonrpc's
 * StreamMessageReader trusts them: a header block without a numeric `Content-Length` stalls it for good (no later
 * request is ever answered), and a body that is not JSON, or JSON that is no JSON-RPC message, is only logged,
 * never answered. So the frames are checked here first: every good frame passes through byte for byte, and every
 * bad one is dropped and reported (`onError`), which the server answers with a JSON-RPC error response:
 *
 * - a header block with no, a non-numeric or a too large (> 256 MiB) Content-Length, or a header line without
 *   `:`, or a header over 8 KiB, or garbage bytes before a header: -32700 (parse error), id null;
 * - a body that is not JSON: -32700, id null;
 * - JSON that is not a request, notification or response (`[]`, `42`, `{"id": 1}`…): -32600 (invalid request),
 *   with the message's id when it had a usable one.
 *
 * After garbage the guard looks for the next `Content-Length` and carries on from there, so the next good frame
 * is delivered. Memory stays bounded: a header may not grow past 8 KiB, a body past 256 MiB.
 */
import { Console } from 'node:console';
import { pipeline, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { format } from 'node:util';
import {
  createConnection,
  ProposedFeatures,
  StreamMessageReader,
  StreamMessageWriter,
  type ResponseMessage,
} from 'vscode-languageserver/node';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
/** The largest header block (every header line and the blank line after them). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** The largest body a frame may announce. */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

export interface FramingError {
  message: string;
  /** The id of the message that was refused, when it had one; else null (as JSON-RPC says for parse errors). */
  id: number | string | null;
  code: number;
}

/** A frame that passed, with its parsed body (for observers; what goes downstream is the original bytes). */
export interface PassedMessage {
  method?: unknown;
  id?: unknown;
}

const HEADER_END = Buffer.from('\r\n\r\n', 'ascii');
const CONTENT_LENGTH = 'content-length';
/** Bytes kept from garbage being dropped, so a `Content-Length` split across two chunks is still found. */
const KEEP = CONTENT_LENGTH.length - 1;

type HeaderCheck =
  | { ok: true; length: number }
  /** `length`: the body length when the Content-Length itself was good (so the body can be skipped too). */
  | { ok: false; reason: string; length?: number };

/** Checks a header block (without the blank line) the way vscode-jsonrpc reads it, but strictly. */
function checkHeader(block: string): HeaderCheck {
  let value: string | undefined;
  let badLine: string | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) {
      badLine ??= line;
      continue;
    }
    // vscode-jsonrpc neither trims the key nor minds a repeated header (the last one wins); nor does this.
    if (line.slice(0, colon).toLowerCase() === CONTENT_LENGTH) value = line.slice(colon + 1).trim();
  }
  if (value === undefined) return { ok: false, reason: 'the header block has no Content-Length' };
  if (!/^\d{1,15}$/.test(value)) return { ok: false, reason: `Content-Length ${JSON.stringify(value.slice(0, 40))} is not a number` };
  const length = Number(value);
  if (length > MAX_BODY_BYTES) return { ok: false, reason: `Content-Length ${length} is over the limit of ${MAX_BODY_BYTES} bytes` };
  if (badLine !== undefined) {
    return { ok: false, reason: `header line ${JSON.stringify(badLine.slice(0, 40))} has no ':'`, length };
  }
  return { ok: true, length };
}

const isId = (v: unknown): v is number | string => typeof v === 'number' || typeof v === 'string';

/** Checks a body as vscode-jsonrpc's connection classifies messages; returns the error to report, if any. */
function checkBody(body: Buffer): { error: FramingError } | { message: PassedMessage } {
  let msg: unknown;
  try {
    msg = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return { error: { code: PARSE_ERROR, id: null, message: `Parse error: the message body is not valid JSON (${(e as Error).message})` } };
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    const what = Array.isArray(msg) ? 'an array (batches are not supported)' : msg === null ? 'null' : `a ${typeof msg}`;
    return { error: { code: INVALID_REQUEST, id: null, message: `Invalid request: the message is ${what}, not a JSON-RPC object` } };
  }
  const m = msg as { method?: unknown; id?: unknown; result?: unknown; error?: unknown };
  const request = typeof m.method === 'string' && isId(m.id);
  const notification = typeof m.method === 'string' && m.id === undefined;
  const response = (m.result !== undefined || Boolean(m.error)) && (isId(m.id) || m.id === null);
  if (request || notification || response) return { message: m };
  let why: string;
  if (m.method !== undefined && typeof m.method !== 'string') why = '"method" must be a string';
  else if (m.method !== undefined) why = '"id" must be a number or a string';
  else why = 'it has no "method" (and is no response either)';
  return { error: { code: INVALID_REQUEST, id: isId(m.id) ? m.id : null, message: `Invalid request: ${why}` } };
}

/** Index of the last `content-length` (any case) in `buf`, or -1. */
function lastContentLength(buf: Buffer): number {
  return buf.toString('latin1').toLowerCase().lastIndexOf(CONTENT_LENGTH);
}

/** The guard itself, as a Transform: bytes in, the good frames' bytes out. */
export class FrameGuard extends Transform {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Length of the body being waited for, once its header has passed; -1 while reading a header. */
  private bodyLength = -1;
  /** The header bytes of that body (passed on together with it). */
  private header: Buffer | undefined;
  /** Body bytes still to throw away (a frame whose header was bad but whose length was good). */
  private skip = 0;
  /** Inside a run of garbage already reported: not reported again until the end of the next header block. */
  private discarding = false;

  constructor(
    private readonly onError: (err: FramingError) => void,
    private readonly onMessage?: (msg: PassedMessage) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.chunks.push(buf);
    this.size += buf.length;
    try {
      this.drain();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    // A frame cut short by the end of input cannot be answered: the connection is gone with it.
    this.chunks = [];
    this.size = 0;
    cb();
  }

  private report(err: FramingError): void {
    try {
      this.onError(err);
    } catch {
      // the reporter's failure must not stop the stream
    }
  }

  /** The buffered bytes as one Buffer (concatenated only when needed). */
  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private consume(n: number): Buffer {
    const all = this.joined();
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return head;
  }

  private drain(): void {
    for (;;) {
      if (this.skip > 0) {
        if (this.size === 0) return;
        const n = Math.min(this.skip, this.size);
        this.consume(n);
        this.skip -= n;
        continue;
      }
      if (this.bodyLength >= 0) {
        if (this.size < this.bodyLength) return; // wait for the rest, without concatenating every chunk
        const body = this.consume(this.bodyLength);
        const header = this.header ?? Buffer.alloc(0);
        this.bodyLength = -1;
        this.header = undefined;
        const checked = checkBody(body);
        if ('error' in checked) {
          this.report(checked.error);
          continue;
        }
        this.push(Buffer.concat([header, body], header.length + body.length));
        this.onMessage?.(checked.message);
        continue;
      }
      if (this.size === 0) return;
      if (!this.readHeader()) return;
    }
  }

  /** Handles the header at the front of the buffer; false when more bytes are needed. */
  private readHeader(): boolean {
    const buf = this.joined();
    // Only the first MAX_HEADER_BYTES are ever searched: work per step is bounded, whatever arrives.
    const window = buf.subarray(0, MAX_HEADER_BYTES);
    const end = window.indexOf(HEADER_END);
    if (end === -1) {
      if (buf.length < MAX_HEADER_BYTES) return false; // may still become a header
      // No header is this long. Carry on at the last Content-Length in it (the only one that could still end
      // within the bound), else drop all but a tail that may hold the start of one.
      const next = lastContentLength(window);
      this.garbage(`a header block is over ${MAX_HEADER_BYTES} bytes`, true);
      this.consume(next > 0 ? next : window.length - KEEP);
      return true;
    }
    const block = window.subarray(0, end).toString('latin1');
    const checked = checkHeader(block);
    if (checked.ok) {
      this.discarding = false;
      this.header = this.consume(end + HEADER_END.length);
      this.bodyLength = checked.length;
      return true;
    }
    // Garbage before a real header (`hello` + `Content-Length: …`, or a bad line first): resync at the header.
    const next = block.toLowerCase().indexOf(CONTENT_LENGTH, 1);
    if (next > 0) {
      this.garbage(`unexpected bytes before a header (${checked.reason})`, true);
      this.consume(next);
      return true;
    }
    this.garbage(checked.reason, false);
    this.consume(end + HEADER_END.length);
    if (checked.length !== undefined) this.skip = checked.length; // its body goes too, not read as a header
    return true;
  }

  /**
   * Reports a parse error, once per run of garbage: `more` says the run goes on (bytes were dropped up to a point
   * inside it), so what follows up to the end of the next header block is not reported again.
   */
  private garbage(reason: string, more: boolean): void {
    if (!this.discarding) this.report({ code: PARSE_ERROR, id: null, message: `Parse error: ${reason}` });
    this.discarding = more;
  }
}

/**
 * `input` through a FrameGuard: what comes out is only well-formed frames, byte for byte as they came in. An error
 * of `input` ends the guarded stream too (with that error).
 */
export function guardStream(
  input: Readable,
  onError: (err: FramingError) => void,
  onMessage?: (msg: PassedMessage) => void,
): Readable {
  const guard = new FrameGuard(onError, onMessage);
  pipeline(input, guard, () => undefined);
  return guard;
}

type Logger = { log(m: string): void; info(m: string): void; warn(m: string): void; error(m: string): void };

/**
 * `console.*` into the connection's log, as vscode-languageserver does by itself for `--stdio` (stdout is the
 * protocol: a stray console.log from a dependency would corrupt it).
 */
function redirectConsole(logger: Logger): void {
  const sink = (send: (m: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        send(String(chunk).replace(/\n$/, ''));
        cb();
      },
    });
  const c = new Console({ stdout: sink((m) => logger.log(m)), stderr: sink((m) => logger.error(m)) });
  const target = globalThis.console as unknown as Record<string, unknown>; // replaced in place, as vscode-languageserver does
  for (const [key, value] of Object.entries(c)) if (typeof value === 'function') target[key] = value;
  target.info = (...args: unknown[]) => logger.info(format(...args));
  target.warn = (...args: unknown[]) => logger.warn(format(...args));
}

/**
 * The server's connection over stdio, behind the frame guard: `createConnection(ProposedFeatures.all)` with
 * `--stdio`, except that malformed input is answered with an error response instead of stalling the reader.
 * Keeps what vscode-languageserver does for `--stdio` by itself: the process exits when stdin ends (0 after a
 * `shutdown` request, 1 without), and console output goes to the connection's log.
 */
export function createGuardedStdioConnection() {
  const writer = new StreamMessageWriter(process.stdout);
  let shutdownReceived = false;
  const input = guardStream(
    process.stdin,
    ({ id, code, message }) => {
      const response: ResponseMessage = { jsonrpc: '2.0', id, error: { code, message } };
      writer.write(response).catch(() => undefined);
    },
    (msg) => {
      if (msg.method === 'shutdown' && msg.id !== undefined) shutdownReceived = true;
    },
  );
  const exit = (): never => process.exit(shutdownReceived ? 0 : 1);
  input.once('end', exit);
  input.once('close', exit);
  const connection = createConnection(ProposedFeatures.all, new StreamMessageReader(input), writer);
  redirectConsole(connection.console);
  return connection;
}
