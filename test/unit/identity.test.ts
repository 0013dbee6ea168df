/**
 * Who sandboxed programs are on the host (server/identity.ts), decided from made-up host files: never root, never
 * the server's own uid where the host offers ids that own nothing, and a plain reason when it does not.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_ROOT_RANGE, IdAllocator, decideIdentity, describeIdentity, parseIds, parseSubordinate, type HostFiles } from '../../server/identity';

const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n';
const group = 'root:x:0:\nnogroup:x:65534:\nalice:x:1000:\n';
const files = (over: Partial<HostFiles> = {}): HostFiles => ({ passwd, group, subuid: '', subgid: '', ...over });
const helpers = { newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap' };
const root = { uid: 0, gid: 0, name: 'root' };
const alice = { uid: 1000, gid: 1000, name: 'alice' };

describe('parsing the host files', () => {
  it('reads subordinate ranges by name or uid, skipping comments and junk', () => {
    assert.deepEqual(parseSubordinate('alice:100000:65536\n# comment\n1001:165536:65536\nbroken\nbob:1:0\n'), [
      { owner: 'alice', first: 100000, count: 65536 },
      { owner: '1001', first: 165536, count: 65536 },
    ]);
  });
  it('reads the ids /etc/passwd and /etc/group name', () => {
    assert.deepEqual([...parseIds(passwd)].sort((a, b) => a - b), [0, 1000, 65534]);
  });
});

describe('decideIdentity', () => {
  it('root without subordinate ids: a range of their own that nothing on the machine names', () => {
    const id = decideIdentity(root, files(), helpers, 4);
    assert.equal(id.mode, 'dedicated');
    assert.ok(id.mode === 'dedicated');
    assert.deepEqual(id.uids, DEFAULT_ROOT_RANGE);
    assert.deepEqual(id.gids, DEFAULT_ROOT_RANGE);
    assert.equal(id.mapHelpers, undefined, 'root writes the maps itself');
    assert.ok(id.uids.first > 65534 && id.uids.first + id.uids.count < 2 ** 31);
  });

  it("root with a subordinate range (a podman host, say) uses root's own", () => {
    const id = decideIdentity(root, files({ subuid: 'root:200000:65536\n', subgid: 'root:300000:65536\n' }), helpers, 4);
    assert.ok(id.mode === 'dedicated');
    assert.deepEqual(id.uids, { first: 200000, count: 65536 });
    assert.deepEqual(id.gids, { first: 300000, count: 65536 });
  });

  it('root refuses a range that some user or group owns, or another user\'s subordinate ids cover', () => {
    const taken = `${passwd}x:x:${DEFAULT_ROOT_RANGE.first + 5}:0::/:/bin/false\n`;
    assert.throws(() => decideIdentity(root, files({ passwd: taken }), helpers, 4), /named in \/etc\/passwd/);
    const sub = `bob:${DEFAULT_ROOT_RANGE.first - 10}:100\n`;
    assert.throws(() => decideIdentity(root, files({ subuid: sub }), helpers, 4), /overlaps the subordinate ids of bob/);
  });

  it("an ordinary user with subordinate ids and uidmap: that user's range, mapped by the helpers", () => {
    const id = decideIdentity(alice, files({ subuid: 'alice:100000:65536\n', subgid: '1000:100000:65536\n' }), helpers, 4);
    assert.ok(id.mode === 'dedicated');
    assert.deepEqual(id.uids, { first: 100000, count: 65536 });
    assert.deepEqual(id.mapHelpers, helpers);
    assert.match(id.reason, /subordinate ids of alice/);
  });

  it("an ordinary user without them: the server's own uid, and the reason says what is missing and how to fix it", () => {
    const none = decideIdentity(alice, files(), helpers, 4);
    assert.equal(none.mode, 'server');
    assert.match(none.reason, /no range for alice in \/etc\/subuid; no range for alice in \/etc\/subgid/);
    assert.match(none.reason, /usermod --add-subuids/);
    const noHelpers = decideIdentity(alice, files({ subuid: 'alice:100000:65536\n', subgid: 'alice:100000:65536\n' }), { newuidmap: null, newgidmap: null }, 4);
    assert.equal(noHelpers.mode, 'server');
    assert.match(noHelpers.reason, /newuidmap is not installed; newgidmap is not installed/);
    const small = decideIdentity(alice, files({ subuid: 'alice:100000:2\n', subgid: 'alice:100000:2\n' }), helpers, 4);
    assert.equal(small.mode, 'server');
    assert.match(small.reason, /smaller than the pool/);
    assert.match(describeIdentity(none), /^the server's own uid/);
  });
});

describe('IdAllocator', () => {
  it('gives each worker its own ids, in the order workers are first used, and keeps them', () => {
    const ids = new IdAllocator({ mode: 'dedicated', uids: { first: 500, count: 3 }, gids: { first: 900, count: 3 }, reason: '' });
    assert.deepEqual(ids.idsFor('w2'), { uid: 500, gid: 900 });
    assert.deepEqual(ids.idsFor('w1'), { uid: 501, gid: 901 });
    assert.deepEqual(ids.idsFor('w2'), { uid: 500, gid: 900 });
    assert.deepEqual(ids.idsFor('w7'), { uid: 502, gid: 902 });
    assert.throws(() => ids.idsFor('w8'), /no sandbox ids left for worker w8/);
  });
});
