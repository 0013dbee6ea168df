/**
 * Hostile case 20, cross-run contamination: run 1 leaves whatever it can for the next run: files in /work, /tmp and
 * /dev/shm, a background process in its own session, a named socket. Every run gets a fresh work dir and fresh
 * namespaces (its /tmp and /dev/shm die with it): run 2 sees none of it, and run 1's process is gone before run 2
 * starts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertContained, hostileRun, hostileServer, type HostileServer } from './harness';
import type { ExecuteParams } from '../../server/protocol';

const SUITE_TIMEOUT_MS = 60_000;
const limits = { timeoutMs: 3000, memoryMb: 128, processes: 32 };

let h: HostileServer;
before(async () => {
  // One worker: run 2 is served by the very worker run 1 had.
  h = await hostileServer({ poolSize: 1 });
});
after(async () => {
  await h?.close();
});

const PLANT_SHELL = `echo left > /work/left-in-work
echo left > /tmp/left-in-tmp
echo left > /dev/shm/left-in-shm
mkdir -p "$HOME/.config" && echo left > "$HOME/.config/left-in-home"
setsid sleep 1000 < /dev/null > /dev/null 2>&1 &
echo planted
`;

const PLANT_PYTHON = `import os, socket, subprocess
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(name='left-by-run-1', create=True, size=4096)
shm.buf[:4] = b'left'
s = socket.socket(socket.AF_UNIX)
s.bind('/tmp/left.sock')
s.listen()
subprocess.Popen(['sleep', '1000'], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.makedirs('/work/cache', exist_ok=True)
open('/work/cache/left', 'w').write('left')
print('planted', flush=True)
os._exit(0)  # no clean-up of the shared memory
`;

const LOOK_SHELL = `for f in /work/left-in-work /tmp/left-in-tmp /dev/shm/left-in-shm "$HOME/.config/left-in-home" /dev/shm/left-by-run-1 /tmp/left.sock /work/cache/left; do
  test -e "$f" && echo "SEES $f"
done
ls -A /work /tmp /dev/shm | grep -v -e '^main.sh$' -e '^/' -e '^$' | sed 's/^/EXTRA /'
for p in /proc/[0-9]*; do
  cmd=$(tr '\\0' ' ' < "$p/cmdline" 2>/dev/null)
  case "$cmd" in *"sleep 1000"*) echo "SEES PROCESS $cmd";; esac
done
echo looked
`;

async function contaminate(plant: ExecuteParams): Promise<void> {
  const run1 = await hostileRun(h, { ...plant, limits });
  // Contained: run 1's processes (the setsid sleep) are gone now, before run 2 starts.
  await assertContained(h, run1, { status: 'ok', limitMs: limits.timeoutMs });
  assert.match(run1.result.stdout, /planted/);
  const run2 = await hostileRun(h, { language: 'shell', code: LOOK_SHELL, limits });
  await assertContained(h, run2, { status: 'ok', limitMs: limits.timeoutMs });
  assert.equal(run2.result.stdout, 'looked\n', `run 2 saw something of run 1:\n${run2.result.stdout}`);
}

void describe('cross-run contamination: run 2 sees nothing of run 1', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('shell: files in /work, /tmp, /dev/shm, $HOME and a setsid background process', async () => {
    await contaminate({ language: 'shell', code: PLANT_SHELL });
  });

  test('python: POSIX shared memory, a listening socket, a new-session child, a cache dir', async () => {
    await contaminate({ language: 'python', code: PLANT_PYTHON });
  });

  test('the look itself can see: planted and looked for in one run, it finds all', async () => {
    const run = await hostileRun(h, { language: 'shell', code: `${PLANT_SHELL}sleep 0.2\n${LOOK_SHELL}`, limits });
    await assertContained(h, run, { status: 'ok', limitMs: limits.timeoutMs });
    for (const f of ['/work/left-in-work', '/tmp/left-in-tmp', '/dev/shm/left-in-shm', '/work/.config/left-in-home']) {
      assert.match(run.result.stdout, new RegExp(`^SEES ${f}$`, 'm'), run.result.stdout);
    }
    assert.match(run.result.stdout, /^SEES PROCESS sleep 1000/m);
  });
});
