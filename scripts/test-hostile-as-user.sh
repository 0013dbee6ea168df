#!/usr/bin/env bash
# The hostile suite with the server run by an ordinary user: the desktop case (npm test as root runs it as root, the
# container and CI case). Run from a root shell, after `npm run build`: it makes a user for the purpose (useradd gives
# it subordinate ids, which its sandboxes run as), lets it read this checkout, and runs test/hostile/ as that user.
# Both must pass (README, "Isolation"). `--if-root`: as an ordinary user, say so and succeed (npm run test:all).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
  # --if-root (npm run test:all): a developer's own `npm test` just ran the suite as an ordinary user.
  if [[ ${1:-} == --if-root ]]; then
    echo "test-hostile-as-user: not root, so npm test already ran the hostile suite with the server as an ordinary user"
    exit 0
  fi
  echo "test-hostile-as-user: run as root (it creates the user); as an ordinary user, npm run test:hostile is this case already" >&2
  exit 2
fi
for tool in newuidmap newgidmap bwrap; do
  command -v "$tool" >/dev/null || { echo "test-hostile-as-user: $tool is missing (apt-get install uidmap bubblewrap)" >&2; exit 2; }
done

user=${SBX_HOSTILE_USER:-sbx-hostile}
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
fi
# useradd allocates subordinate ids where /etc/login.defs says so (Debian's default); make sure it did.
grep -q "^$user:" /etc/subuid 2>/dev/null || usermod --add-subuids 2000000-2065535 "$user"
grep -q "^$user:" /etc/subgid 2>/dev/null || usermod --add-subgids 2000000-2065535 "$user"

# The user must read the checkout; one under /root (mode 0700) it cannot reach: it looks at it through a bind mount
# in a private mount namespace, gone when the tests end.
run_tests='exec runuser -u "$1" -- env -i HOME="/home/$1" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 node --import tsx --test --test-reporter=spec test/hostile/*.test.ts'
if runuser -u "$user" -- test -r "$PWD/package.json"; then
  exec bash -c "$run_tests" _ "$user"
fi
view=$(mktemp -d /tmp/hostile-as-user-XXXXXX)
chmod 755 "$view"
status=0
unshare --mount --propagation private bash -c 'mount --bind "$2" "$3" && cd "$3" && '"$run_tests" _ "$user" "$PWD" "$view" || status=$?
rmdir "$view"
exit "$status"
