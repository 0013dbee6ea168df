/**
 * The server spoken to byte by byte, for protocol abuse (hostile case 22): raw bytes go straight to the bundled
 * server's stdin and its stdout is parsed here, so nothing in between can hide a stall, a malformed answer or a
 * missing one. Used by test/integration/protocol-abuse.test.ts and test/hostile/22-protocol-abuse.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SERVER, testAuditPath } from './server';
import type { ExecuteParams, LanguagesResult, ServerConfig } from '../../server/protocol';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;

export interface RpcError {
  code: number;
  message: string;
}

export interface Response {
  id: number | string | null;
  result?: unknown;
  error?: RpcError;
  /** When it arrived (performance.now()). */
  receivedAt?: number;
}

/** One LSP base-protocol frame around `body`. */
export function frame(body: string | object): Buffer {
  const b = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${b.length}\r\n\r\n`, 'ascii'), b]);
}

/** The server, spoken to byte by byte: every response it writes is kept, by id (id-less errors in a list). */
export class RawClient {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every response, in the order it came. */
  readonly responses: Response[] = [];
  private readonly waiting = new Map<number | string, (r: Response) => void>();
  private buf = Buffer.alloc(0);
  private nextId = 1_000_000;
  stderr = '';

  constructor() {
    if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: run npm run build first`);
    this.proc = spawn(process.execPath, [SERVER, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.stdout.on('data', (d: Buffer) => this.onData(d));
    this.proc.stdin.on('error', () => undefined); // EPIPE once the server is gone
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const m = /Content-Length: *(\d+)/i.exec(this.buf.subarray(0, end).toString('ascii'));
      if (!m) throw new Error(`the server wrote a frame without Content-Length: ${this.buf.subarray(0, end).toString()}`);
      const length = Number(m[1]);
      if (this.buf.length < end + 4 + length) return;
      const msg = JSON.parse(this.buf.subarray(end + 4, end + 4 + length).toString('utf8')) as {
        id?: number | string | null;
        method?: string;
        result?: unknown;
        error?: RpcError;
      };
      this.buf = this.buf.subarray(end + 4 + length);
      if (msg.method !== undefined) {
        // A request from the server (none expected of a client without capabilities): answer it, it must not hang.
        if (msg.id !== undefined) this.send({ jsonrpc: '2.0', id: msg.id, result: null });
        continue;
      }
      const r: Response = { id: msg.id ?? null, result: msg.result, error: msg.error, receivedAt: performance.now() };
      this.responses.push(r);
      if (r.id !== null) {
        const resolve = this.waiting.get(r.id);
        this.waiting.delete(r.id);
        resolve?.(r);
      }
    }
  }

  raw(bytes: Buffer | string): void {
    this.proc.stdin.write(bytes);
  }

  send(msg: object): void {
    this.raw(frame(msg));
  }

  /** The response to `id` (sent by the caller), whenever it comes. */
  answer(id: number | string): Promise<Response> {
    const got = this.responses.find((r) => r.id === id);
    if (got) return Promise.resolve(got);
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  request(method: string, params?: unknown): Promise<Response> {
    const id = this.nextId++;
    const answered = this.answer(id);
    this.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    return answered;
  }

  /** A request that must succeed: its result. */
  async call<T>(method: string, params?: unknown): Promise<T> {
    const r = await this.request(method, params);
    assert.equal(r.error, undefined, `${method} failed: ${JSON.stringify(r.error)}`);
    return r.result as T;
  }

  /** `initialize` + `initialized`. The audit log is the test process's own unless `config.audit` names one. */
  async initialize(config: ServerConfig = {}): Promise<void> {
    const initializationOptions = { ...config, audit: { path: testAuditPath(), ...config.audit } };
    await this.call('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions });
    this.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
  }

  /** Errors that answer no request (id null), as the server sends for unparseable input. */
  idlessErrors(): RpcError[] {
    return this.responses.filter((r) => r.id === null && r.error).map((r) => r.error as RpcError);
  }

  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      try {
        await Promise.race([this.request('shutdown'), this.exited]);
        this.send({ jsonrpc: '2.0', method: 'exit' });
      } catch {
        // gone already
      }
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** Fires `n` sandbox/execute requests of `params` in one write, ids `idBase`…; resolves with every response, by
 *  request index. */
export async function flood(c: RawClient, n: number, idBase: number, params: ExecuteParams = { language: 'python', code: 'print(1)', cache: false }): Promise<Response[]> {
  const frames: Buffer[] = [];
  const answers: Promise<Response>[] = [];
  for (let i = 0; i < n; i++) {
    const id = idBase + i;
    answers.push(c.answer(id));
    frames.push(frame({ jsonrpc: '2.0', id, method: 'sandbox/execute', params }));
  }
  c.raw(Buffer.concat(frames));
  return Promise.all(answers);
}

/** The server still answers, and answers right. */
export async function assertAlive(c: RawClient): Promise<void> {
  const langs = await c.call<LanguagesResult>('sandbox/languages');
  assert.ok(langs.languages.some((l) => l.id === 'python'), 'sandbox/languages answers after the abuse');
  assert.equal(c.proc.exitCode, null, 'the server is still running');
}
