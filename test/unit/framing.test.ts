import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { StreamMessageReader, type Message } from 'vscode-jsonrpc/node';
import {
  FrameGuard,
  guardStream,
  INVALID_REQUEST,
  MAX_BODY_BYTES,
  MAX_HEADER_BYTES,
  PARSE_ERROR,
  type FramingError,
} from '../../server/framing';

// node:test's describe/it return promises the runner itself awaits; `void` tells no-floating-promises so.

/** One LSP base-protocol frame around `body` (a string is UTF-8 encoded). */
function frame(body: string | Buffer, extraHeaders = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(`Content-Length: ${b.length}\r\n${extraHeaders}\r\n`, 'ascii'), b]);
}

const request = (id: number, method = 'sandbox/languages', params?: unknown): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

/** Feeds `chunks` through a FrameGuard; resolves with everything it let through and every error it reported. */
async function run(chunks: (string | Buffer)[]): Promise<{ out: Buffer; errors: FramingError[] }> {
  const errors: FramingError[] = [];
  const guard = new FrameGuard((e) => errors.push(e));
  const parts: Buffer[] = [];
  guard.on('data', (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((resolve, reject) => {
    guard.once('end', resolve);
    guard.once('error', reject);
  });
  for (const c of chunks) guard.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  guard.end();
  await ended;
  return { out: Buffer.concat(parts), errors };
}

/** Splits a buffer into pieces of `size` bytes. */
function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

void describe('FrameGuard: good frames pass byte for byte', () => {
  void it('a single frame, with extra headers and non-ASCII text', async () => {
    const f = frame(request(1, 'sandbox/execute', { language: 'python', code: 'print("héllo ✓ 🎉")' }), 'Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n');
    const { out, errors } = await run([f]);
    assert.deepEqual(errors, []);
    assert.ok(out.equals(f));
  });

  void it('header names in any case, as vscode-jsonrpc accepts them', async () => {
    const body = request(2);
    const f = Buffer.from(`content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const { out, errors } = await run([f]);
    assert.deepEqual(errors, []);
    assert.ok(out.equals(f));
  });

  void it('frames split at every possible byte, and one byte at a time', async () => {
    const all = Buffer.concat([frame(request(1)), frame(request(2, 'x', { s: 'ü'.repeat(50) })), frame('{"jsonrpc":"2.0","method":"n"}')]);
    for (let cut = 1; cut < all.length; cut++) {
      const { out, errors } = await run([all.subarray(0, cut), all.subarray(cut)]);
      assert.deepEqual(errors, [], `cut at ${cut}`);
      assert.ok(out.equals(all), `cut at ${cut}`);
    }
    const { out, errors } = await run(pieces(all, 1));
    assert.deepEqual(errors, []);
    assert.ok(out.equals(all));
  });

  void it('a thousand frames in one chunk', async () => {
    const all = Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(request(i))));
    const { out, errors } = await run([all]);
    assert.deepEqual(errors, []);
    assert.ok(out.equals(all));
  });

  void it('a large body in many chunks', async () => {
    const f = frame(request(7, 'big', { s: 'x'.repeat(1_000_000) }));
    const { out, errors } = await run(pieces(f, 65_536));
    assert.deepEqual(errors, []);
    assert.ok(out.equals(f));
  });

  void it('responses and notifications pass too', async () => {
    const all = Buffer.concat([
      frame('{"jsonrpc":"2.0","id":3,"result":null}'),
      frame('{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}'),
      frame('{"jsonrpc":"2.0","method":"initialized","params":{}}'),
      frame('{"jsonrpc":"2.0","id":"s","method":"m"}'),
    ]);
    const { out, errors } = await run([all]);
    assert.deepEqual(errors, []);
    assert.ok(out.equals(all));
  });
});

/** Each bad input, then a good frame: the bad one is reported as expected and dropped, the good one delivered. */
const BAD: { name: string; bytes: Buffer; code: number; id: number | string | null; message: RegExp }[] = [
  { name: 'no Content-Length', bytes: Buffer.from('Content-Type: x\r\n\r\n'), code: PARSE_ERROR, id: null, message: /no Content-Length/ },
  { name: 'garbage line then a blank line', bytes: Buffer.from('hello\r\n\r\n'), code: PARSE_ERROR, id: null, message: /no Content-Length/ },
  { name: 'an empty header block', bytes: Buffer.from('\r\n\r\n'), code: PARSE_ERROR, id: null, message: /Parse error/ },
  { name: 'a non-numeric Content-Length', bytes: Buffer.from('Content-Length: abc\r\n\r\n'), code: PARSE_ERROR, id: null, message: /not a number/ },
  { name: 'a negative Content-Length', bytes: Buffer.from('Content-Length: -5\r\n\r\n'), code: PARSE_ERROR, id: null, message: /not a number/ },
  { name: 'Content-Length with trailing junk', bytes: Buffer.from('Content-Length: 12abc\r\n\r\n'), code: PARSE_ERROR, id: null, message: /not a number/ },
  {
    name: 'a huge Content-Length',
    bytes: Buffer.from(`Content-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`),
    code: PARSE_ERROR,
    id: null,
    message: /over the limit/,
  },
  { name: 'a body that is not JSON', bytes: frame('{"jsonrpc": "2.0", "id": 1, "method": '), code: PARSE_ERROR, id: null, message: /not valid JSON/ },
  { name: 'an empty body', bytes: frame(''), code: PARSE_ERROR, id: null, message: /not valid JSON/ },
  { name: 'a JSON array', bytes: frame('[]'), code: INVALID_REQUEST, id: null, message: /array/ },
  { name: 'a batch', bytes: frame(`[${request(1)}]`), code: INVALID_REQUEST, id: null, message: /array/ },
  { name: 'a JSON number', bytes: frame('42'), code: INVALID_REQUEST, id: null, message: /number/ },
  { name: 'JSON null', bytes: frame('null'), code: INVALID_REQUEST, id: null, message: /null/ },
  { name: 'an id without a method', bytes: frame('{"jsonrpc":"2.0","id":17}'), code: INVALID_REQUEST, id: 17, message: /no "method"/ },
  { name: 'a string id without a method', bytes: frame('{"jsonrpc":"2.0","id":"a"}'), code: INVALID_REQUEST, id: 'a', message: /no "method"/ },
  { name: 'a method that is not a string', bytes: frame('{"jsonrpc":"2.0","id":4,"method":5}'), code: INVALID_REQUEST, id: 4, message: /"method" must be a string/ },
  { name: 'an id that is an object', bytes: frame('{"jsonrpc":"2.0","id":{},"method":"m"}'), code: INVALID_REQUEST, id: null, message: /"id"/ },
  { name: 'a null id with a method', bytes: frame('{"jsonrpc":"2.0","id":null,"method":"m"}'), code: INVALID_REQUEST, id: null, message: /"id"/ },
];

void describe('FrameGuard: bad input is reported, dropped, and does not stall what follows', () => {
  for (const bad of BAD) {
    void it(bad.name, async () => {
      const good = frame(request(99));
      const { out, errors } = await run([bad.bytes, good]);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0]?.code, bad.code);
      assert.equal(errors[0]?.id, bad.id);
      assert.match(errors[0]?.message ?? '', bad.message);
      assert.ok(out.equals(good), `only the good frame comes out, got ${JSON.stringify(out.toString())}`);
      // the same, all in one chunk and byte by byte
      const one = await run([Buffer.concat([bad.bytes, good])]);
      assert.equal(one.errors.length, 1);
      assert.ok(one.out.equals(good));
      const split = await run(pieces(Buffer.concat([bad.bytes, good]), 1));
      assert.equal(split.errors.length, 1);
      assert.ok(split.out.equals(good));
    });
  }

  void it('garbage glued to the front of a header: one error, the frame still passes', async () => {
    const good = frame(request(5));
    const { out, errors } = await run([Buffer.concat([Buffer.from('hello'), good])]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, PARSE_ERROR);
    assert.ok(out.equals(good));
  });

  void it('a header line without a colon after a good Content-Length: header and body dropped', async () => {
    const body = request(6);
    const bad = Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\nnocolon\r\n\r\n${body}`);
    const good = frame(request(7));
    const { out, errors } = await run([bad, good]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /has no ':'/);
    assert.ok(out.equals(good));
  });

  void it('several bad frames in a row: one error each', async () => {
    const good = frame(request(8));
    const { out, errors } = await run([frame('nope'), frame('[]'), Buffer.from('Content-Length: x\r\n\r\n'), frame('{"id":2}'), good]);
    assert.deepEqual(
      errors.map((e) => [e.code, e.id]),
      [
        [PARSE_ERROR, null],
        [INVALID_REQUEST, null],
        [PARSE_ERROR, null],
        [INVALID_REQUEST, 2],
      ],
    );
    assert.ok(out.equals(good));
  });

  void it('a header that never ends: memory stays bounded, one error, and a later frame passes', async () => {
    const errors: FramingError[] = [];
    const guard = new FrameGuard((e) => errors.push(e));
    const parts: Buffer[] = [];
    guard.on('data', (d: Buffer) => parts.push(d));
    const junk = Buffer.alloc(64 * 1024, 'a');
    let most = 0;
    for (let i = 0; i < 200; i++) {
      guard.write(junk); // 12.5 MiB of a header with no end
      most = Math.max(most, guard.writableLength + (guard as unknown as { size: number }).size);
    }
    assert.ok(most <= MAX_HEADER_BYTES + junk.length, `held at most ${most} bytes`);
    assert.equal(errors.length, 1, 'one error for the whole run of garbage');
    assert.match(errors[0]?.message ?? '', /over 8192 bytes/);
    const good = frame(request(9));
    const ended = new Promise((resolve) => guard.once('end', resolve));
    guard.end(Buffer.concat([Buffer.from('\r\n\r\n'), good]));
    await ended;
    assert.ok(Buffer.concat(parts).equals(good));
  });

  void it('a header just within the bound passes; one byte more does not', async () => {
    const body = request(10);
    const base = `Content-Length: ${Buffer.byteLength(body)}\r\nX-Pad: \r\n\r\n`.length;
    const pad = 'p'.repeat(MAX_HEADER_BYTES - base);
    const fits = frame(body, `X-Pad: ${pad}\r\n`);
    const ok = await run([fits]);
    assert.deepEqual(ok.errors, []);
    assert.ok(ok.out.equals(fits));
    const over = frame(body, `X-Pad: ${pad}p\r\n`);
    const good = frame(request(11));
    const bad = await run([over, good]);
    assert.ok(bad.errors.length >= 1);
    assert.ok(bad.out.equals(good), `only the frame after the oversized one passes: ${bad.out.toString().slice(0, 80)}`);
  });

  void it('a frame cut short by the end of input is dropped silently', async () => {
    const good = frame(request(12));
    const { out, errors } = await run([good, frame(request(13)).subarray(0, 30)]);
    assert.deepEqual(errors, []);
    assert.ok(out.equals(good));
  });
});

void describe('guardStream in front of vscode-jsonrpc', () => {
  void it('the reader gets every good message, in order, and the errors are reported in between', async () => {
    const input = new PassThrough();
    const errors: FramingError[] = [];
    const seen: unknown[] = [];
    const reader = new StreamMessageReader(
      guardStream(input, (e) => errors.push(e), (m) => seen.push(m.method)),
    );
    const got: Message[] = [];
    reader.listen((m) => got.push(m));
    input.write(Buffer.from('Content-Length: oops\r\n\r\n'));
    input.write(frame(request(1)));
    input.write(Buffer.from('hello\r\n\r\n'));
    input.write(frame('{not json'));
    input.write(Buffer.concat([frame(request(2)), frame('42'), frame(request(3, 'shutdown'))]));
    const closed = new Promise<void>((resolve) => reader.onClose(() => resolve()));
    input.end();
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      got.map((m) => (m as { id?: number }).id),
      [1, 2, 3],
    );
    assert.deepEqual(seen, ['sandbox/languages', 'sandbox/languages', 'shutdown']);
    assert.deepEqual(
      errors.map((e) => e.code),
      [PARSE_ERROR, PARSE_ERROR, PARSE_ERROR, INVALID_REQUEST],
    );
  });

  void it('an error of the input ends the guarded stream', async () => {
    const input = new PassThrough();
    const guarded = guardStream(input, () => undefined);
    const closed = new Promise<void>((resolve) => guarded.once('close', resolve));
    guarded.on('error', () => undefined);
    input.destroy(new Error('EPIPE'));
    await closed;
  });
});
