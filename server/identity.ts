/**
 * Who a sandboxed program is on the host. Never root and never the server's own uid: each pool worker gets a host
 * uid and gid of its own that own nothing here (the way isolate gives each box its own uid), and the worker's
 * zygote maps the sandbox user (65534 inside) onto them (server/launcher/identity.c).
 *
 * - A root server takes them from root's range in /etc/subuid and /etc/subgid when there is one (the host's way of
 *   handing out ids that own nothing), else from DEFAULT_ROOT_RANGE: 1,900,000,000 up, in the span systemd
 *   documents as unused (above its container range, below its "foreign" range and 2^31) and far above what
 *   useradd hands out as subordinate ids. Ids named in /etc/passwd or /etc/group, or inside another user's
 *   subordinate range, are refused.
 * - An ordinary user's server takes them from that user's subordinate ids (/etc/subuid, /etc/subgid), mapped by
 *   newuidmap/newgidmap (Debian's uidmap, setuid root, which allow exactly those ranges).
 * - An ordinary user without subordinate ids (or without uidmap) gets bubblewrap's default: the sandbox user is the
 *   server's own uid. That still holds the sandbox (namespaces, seccomp, no capability), but a run is then the same
 *   host user as the editor: `SandboxIdentity.mode` is `server` and the reason says how to fix it.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import which from 'which';

export interface IdRange {
  first: number;
  count: number;
}

export type SandboxIdentity =
  | {
      mode: 'dedicated';
      uids: IdRange;
      gids: IdRange;
      /** newuidmap/newgidmap, for a server that is not root (root writes the maps itself). */
      mapHelpers?: { newuidmap: string; newgidmap: string };
      reason: string;
    }
  | { mode: 'server'; reason: string };

/** A worker's host ids. */
export interface HostIds {
  uid: number;
  gid: number;
}

export const DEFAULT_ROOT_RANGE: IdRange = { first: 1_900_000_000, count: 65_536 };

/** One entry of /etc/subuid or /etc/subgid: `name-or-id:first:count`. */
export interface SubordinateRange extends IdRange {
  owner: string;
}

export function parseSubordinate(text: string): SubordinateRange[] {
  const out: SubordinateRange[] = [];
  for (const line of text.split('\n')) {
    const m = /^([^:#\s][^:]*):(\d+):(\d+)\s*$/.exec(line.trim());
    if (!m) continue;
    const first = Number(m[2]);
    const count = Number(m[3]);
    if (count > 0 && Number.isSafeInteger(first + count)) out.push({ owner: m[1]!, first, count });
  }
  return out;
}

/** The ids named in /etc/passwd or /etc/group (third field). */
export function parseIds(text: string): Set<number> {
  const ids = new Set<number>();
  for (const line of text.split('\n')) {
    const id = Number(line.split(':')[2]);
    if (line && Number.isInteger(id)) ids.add(id);
  }
  return ids;
}

/** The first range of `ranges` that belongs to the user (by name or by uid). */
function rangeOf(ranges: SubordinateRange[], name: string, id: number): IdRange | undefined {
  const r = ranges.find((x) => x.owner === name || x.owner === String(id));
  return r && { first: r.first, count: r.count };
}

const overlaps = (a: IdRange, b: IdRange): boolean => a.first < b.first + b.count && b.first < a.first + a.count;

export interface HostFiles {
  passwd: string;
  group: string;
  subuid: string;
  subgid: string;
}

export interface Who {
  uid: number;
  gid: number;
  name: string;
}

/** What is needed to map ids for an ordinary user, or why it is not there. */
export interface MapHelpers {
  newuidmap: string | null;
  newgidmap: string | null;
}

/** Decides the sandbox's host ids from the host's files (pure: tested with made-up files). Throws when a root
 *  server would otherwise run sandboxes as an id that owns something. */
export function decideIdentity(who: Who, files: HostFiles, helpers: MapHelpers, poolSize: number): SandboxIdentity {
  const subuid = parseSubordinate(files.subuid);
  const subgid = parseSubordinate(files.subgid);
  if (who.uid === 0) {
    const own = { uids: rangeOf(subuid, who.name, 0), gids: rangeOf(subgid, who.name, 0) };
    if (own.uids && own.gids) {
      return { mode: 'dedicated', uids: own.uids, gids: own.gids, reason: `root's subordinate ids (/etc/subuid ${own.uids.first}+, /etc/subgid ${own.gids.first}+)` };
    }
    const range = DEFAULT_ROOT_RANGE;
    const users = parseIds(files.passwd);
    const groups = parseIds(files.group);
    for (let k = 0; k < range.count; k++) {
      if (users.has(range.first + k) || groups.has(range.first + k)) {
        throw new Error(`cannot give sandboxes ids of their own: ${range.first + k} is named in /etc/passwd or /etc/group`);
      }
    }
    for (const r of [...subuid, ...subgid]) {
      if (overlaps(r, range)) {
        throw new Error(`cannot give sandboxes ids of their own: ${range.first}+ overlaps the subordinate ids of ${r.owner}`);
      }
    }
    return { mode: 'dedicated', uids: range, gids: range, reason: `ids ${range.first}+, one per pool worker, named nowhere on this machine` };
  }
  const uids = rangeOf(subuid, who.name, who.uid);
  const gids = rangeOf(subgid, who.name, who.uid);
  const missing = [
    !uids && `no range for ${who.name} in /etc/subuid`,
    !gids && `no range for ${who.name} in /etc/subgid`,
    !helpers.newuidmap && 'newuidmap is not installed',
    !helpers.newgidmap && 'newgidmap is not installed',
  ].filter(Boolean);
  if (missing.length > 0 || !uids || !gids || !helpers.newuidmap || !helpers.newgidmap) {
    return {
      mode: 'server',
      reason:
        `sandboxed programs run as your own uid ${who.uid} (${missing.join('; ')}); for ids of their own, ` +
        `install uidmap and give ${who.name} subordinate ids (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${who.name})`,
    };
  }
  if (uids.count < poolSize || gids.count < poolSize) {
    return { mode: 'server', reason: `your subordinate id ranges (${uids.count}, ${gids.count}) are smaller than the pool (${poolSize})` };
  }
  return {
    mode: 'dedicated',
    uids,
    gids,
    mapHelpers: { newuidmap: helpers.newuidmap, newgidmap: helpers.newgidmap },
    reason: `subordinate ids of ${who.name} (/etc/subuid ${uids.first}+, /etc/subgid ${gids.first}+)`,
  };
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** decideIdentity for this process on this machine. */
export async function chooseIdentity(poolSize: number): Promise<SandboxIdentity> {
  const info = os.userInfo();
  const who: Who = { uid: info.uid, gid: info.gid, name: info.username };
  const files: HostFiles = {
    passwd: readOr('/etc/passwd'),
    group: readOr('/etc/group'),
    subuid: readOr('/etc/subuid'),
    subgid: readOr('/etc/subgid'),
  };
  // The setuid helpers live in /usr/bin; look there too, whatever PATH the editor gave us.
  const path = `${process.env.PATH ?? ''}:/usr/bin:/bin`;
  const helpers: MapHelpers = who.uid === 0
    ? { newuidmap: null, newgidmap: null }
    : {
        newuidmap: await which('newuidmap', { nothrow: true, path }),
        newgidmap: await which('newgidmap', { nothrow: true, path }),
      };
  return decideIdentity(who, files, helpers, poolSize);
}

/**
 * Hands each pool worker its own host ids, in the order workers are first used: the first worker gets the range's
 * first id, and so on. A worker keeps its ids for the server's life (its zygote lives in a namespace mapped to them).
 */
export class IdAllocator {
  private readonly slots = new Map<string, number>();

  constructor(private readonly identity: Extract<SandboxIdentity, { mode: 'dedicated' }>) {}

  idsFor(workerId: string): HostIds {
    let slot = this.slots.get(workerId);
    if (slot === undefined) {
      slot = this.slots.size;
      const { uids, gids } = this.identity;
      if (slot >= uids.count || slot >= gids.count) {
        throw new Error(`no sandbox ids left for worker ${workerId}: the range holds ${Math.min(uids.count, gids.count)}`);
      }
      this.slots.set(workerId, slot);
    }
    return { uid: this.identity.uids.first + slot, gid: this.identity.gids.first + slot };
  }
}

/** One line for SandboxInfo: who sandboxed programs are on the host. */
export function describeIdentity(identity: SandboxIdentity): string {
  if (identity.mode === 'server') return `the server's own uid ${process.getuid?.() ?? '?'}: ${identity.reason}`;
  return `uid ${identity.uids.first}+ / gid ${identity.gids.first}+, one per pool worker (${identity.reason})`;
}
