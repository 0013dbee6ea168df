/**
 * Hostile case 5: network. A run has its own network namespace (only a down loopback): connecting to the host's
 * 127.0.0.1 listeners (TCP, UDP, an abstract unix socket) fails, DNS fails, and the host listeners see nothing.
 * Only loopback listeners of this test are ever aimed at.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';

const TIMEOUT_MS = 5000;
const LIMITS = { timeoutMs: TIMEOUT_MS };

void describe('hostile 05: network', { timeout: 90_000 }, () => {
  let h: HostileServer;
  let tcp: net.Server;
  let unix: net.Server;
  let udp: dgram.Socket;
  let port = 0;
  let udpPort = 0;
  const abstractName = `sbx-hostile-${randomUUID().slice(0, 8)}`;
  const seen: string[] = [];

  before(async () => {
    h = await hostileServer();
    tcp = net.createServer((s) => {
      seen.push(`tcp from ${s.remoteAddress}`);
      s.destroy();
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    port = (tcp.address() as net.AddressInfo).port;
    unix = net.createServer((s) => {
      seen.push('abstract unix socket');
      s.destroy();
    });
    await new Promise<void>((resolve) => unix.listen(`\0${abstractName}`, resolve));
    udp = dgram.createSocket('udp4');
    udp.on('message', (_m, from) => seen.push(`udp from ${from.address}`));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    udpPort = udp.address().port;
  });
  after(async () => {
    tcp?.close();
    unix?.close();
    udp?.close();
    await h?.close();
  });

  /** The listeners work from the host: a check that they see nothing means something. */
  void test('the host listeners do see a connection from the host', async () => {
    await new Promise<void>((resolve, reject) => net.connect(port, '127.0.0.1', resolve).on('error', reject).unref());
    await new Promise<void>((resolve, reject) => net.connect(`\0${abstractName}`, resolve).on('error', reject).unref());
    const deadline = Date.now() + 2000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen.sort(), ['abstract unix socket', 'tcp from 127.0.0.1']);
    seen.length = 0;
  });

  void test('python: TCP to the host loopback, UDP, abstract unix socket and DNS all fail', async () => {
    const code = [
      'import socket',
      'def attempt(name, fn):',
      '    try:',
      '        fn()',
      '        print(name, "CONNECTED")',
      '    except OSError as e:',
      '        print(name, "failed", e.errno)',
      'def tcp():',
      '    s = socket.create_connection(("127.0.0.1", PORT), timeout=1)',
      'def udp():',
      '    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      '    s.sendto(b"x", ("127.0.0.1", UDP))',
      'def unix():',
      '    s = socket.socket(socket.AF_UNIX)',
      '    s.connect("\\0" + NAME)',
      'def dns():',
      '    socket.getaddrinfo("example.com", 80)',
      'attempt("tcp", tcp)',
      'attempt("udp", udp)',
      'attempt("unix", unix)',
      'attempt("dns", dns)',
    ]
      .join('\n')
      .replace('PORT', String(port))
      .replace('UDP', String(udpPort))
      .replace('NAME', JSON.stringify(abstractName));
    const run = await hostileRun(h, { language: 'python', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    // A UDP datagram may well be "sent": to the box's own loopback, where nobody listens. The host sees nothing.
    for (const name of ['tcp', 'unix', 'dns']) assert.match(run.result.stdout, new RegExp(`^${name} failed`, 'm'), run.result.stdout);
    assert.deepEqual(seen, [], 'a host listener saw the sandbox');
  });

  void test('bash /dev/tcp and /dev/udp to the host loopback, getent hosts: fail', async () => {
    const code = [
      `exec 3<>/dev/tcp/127.0.0.1/${port} && echo "tcp CONNECTED" || echo "tcp failed"`,
      `echo x >/dev/udp/127.0.0.1/${udpPort} && echo "udp sent to the box's own loopback" || echo "udp failed"`,
      'getent hosts example.com && echo "dns RESOLVED" || echo "dns failed"',
    ].join('\n');
    const run = await hostileRun(h, { language: 'shell', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^tcp failed$/m);
    assert.match(run.result.stdout, /^dns failed$/m);
    assert.deepEqual(seen, [], 'a host listener saw the sandbox');
  });

  void test('javascript: net.connect, the abstract socket and dns.lookup fail', async () => {
    const code = [
      'const net = require("net");',
      'const dns = require("dns");',
      'const tryConnect = (name, target) => new Promise((resolve) => {',
      '  const s = net.connect(target, () => { console.log(name, "CONNECTED"); s.destroy(); resolve(); });',
      '  s.on("error", (e) => { console.log(name, "failed", e.code); resolve(); });',
      '});',
      '(async () => {',
      `  await tryConnect("tcp", { host: "127.0.0.1", port: ${port} });`,
      `  await tryConnect("unix", { path: ${JSON.stringify(`\0${abstractName}`)} });`,
      '  await new Promise((resolve) => dns.lookup("example.com", (e) => { console.log("dns", e ? "failed" : "RESOLVED"); resolve(); }));',
      '})();',
    ].join('\n');
    const run = await hostileRun(h, { language: 'javascript', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^tcp failed/m);
    assert.match(run.result.stdout, /^unix failed/m);
    assert.match(run.result.stdout, /^dns failed/m);
    assert.deepEqual(seen, [], 'a host listener saw the sandbox');
  });

  void test('C: connect() to the host loopback fails', async () => {
    const code = [
      '#include <arpa/inet.h>',
      '#include <errno.h>',
      '#include <stdio.h>',
      '#include <string.h>',
      '#include <sys/socket.h>',
      'int main(void) {',
      '  int fd = socket(AF_INET, SOCK_STREAM, 0);',
      `  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(${port}) };`,
      '  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);',
      '  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) puts("tcp CONNECTED");',
      '  else printf("tcp failed %s\\n", strerror(errno));',
      '  return 0;',
      '}',
    ].join('\n');
    const run = await hostileRun(h, { language: 'c', code, limits: LIMITS });
    await assertContained(h, run, { status: 'ok', limitMs: TIMEOUT_MS });
    assert.match(run.result.stdout, /^tcp failed/m);
    assert.deepEqual(seen, [], 'a host listener saw the sandbox');
  });
});
