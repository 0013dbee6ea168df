/*
 * Who a sandboxed program is on the host. bubblewrap started by root maps the sandbox's uid onto host root (uid 0):
 * every kernel check that compares a uid with 0 then passes (/proc/sys, keyrings, root-owned files). Started by a
 * user it maps it onto that user: the program is the server's own uid. Neither is acceptable.
 *
 * So each pool worker's zygote makes one user namespace and lives in it:
 *
 *   uid_map   0 <server uid> 1        gid_map   0 <server gid> 1
 *             65534 <uid> 1                     65534 <gid> 1
 *
 * where <uid>/<gid> are the worker's own host ids, which own nothing (a range of their own for root, the user's
 * subordinate ids otherwise). The zygote enters it as its root (every capability in it, none outside it), drops
 * its supplementary groups there, and everything it forks (the launcher, bwrap) starts there: bwrap makes the
 * run's mount, PID, IPC, UTS and cgroup namespaces owned by it, and pid 1 (`sbx-launch --init -u`) switches to
 * 65534 before the program starts. Seen from the host, every process of the program is <uid>.
 *
 * Root writes the maps itself; an ordinary user needs newuidmap/newgidmap (Debian's uidmap, setuid root), which
 * allow exactly the ranges /etc/subuid and /etc/subgid give that user, plus the user's own id.
 */
#include "launcher.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len); /* one write: the kernel takes a map only whole */
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)len ? 0 : -1;
}

/* Runs newuidmap/newgidmap PID 0 OWN 1 65534 ID 1; returns 0, or -1 with what it said in `err`. */
static int run_map_helper(const char *helper, pid_t pid, unsigned own, unsigned id, char *err, size_t errlen) {
    char spid[24], sown[24], sid[24], sbox[24];
    snprintf(spid, sizeof spid, "%d", (int)pid);
    snprintf(sown, sizeof sown, "%u", own);
    snprintf(sid, sizeof sid, "%u", id);
    snprintf(sbox, sizeof sbox, "%u", (unsigned)SANDBOX_ID);
    char *argv[] = { (char *)helper, spid, "0", sown, "1", sbox, sid, "1", NULL };
    char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return fail(err, errlen, "pipe");
    pid_t h = fork();
    if (h < 0) return fail(err, errlen, "fork");
    if (h == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        execve(helper, argv, envp);
        dprintf(2, "cannot run %s: %s", helper, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    char said[200];
    size_t len = 0;
    ssize_t n;
    while ((n = read(out[0], said + len, sizeof said - 1 - len)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) len += (size_t)n;
        if (len == sizeof said - 1) break;
    }
    close(out[0]);
    said[len] = '\0';
    while (len > 0 && (said[len - 1] == '\n' || said[len - 1] == ' ')) said[--len] = '\0';
    int st = 0;
    while (waitpid(h, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    snprintf(err, errlen, "%s failed%s%s", helper, len ? ": " : "", said);
    return -1;
}

int enter_sandbox_userns(uid_t uid, gid_t gid, const char *newuidmap, const char *newgidmap, char *err, size_t errlen) {
    uid_t own_uid = getuid();
    gid_t own_gid = getgid();
    if (uid == own_uid || uid == 0 || gid == 0) {
        snprintf(err, errlen, "sandbox ids %u:%u must differ from the server's (%u) and from root", uid, gid, own_uid);
        return -1;
    }
    /* A helper makes the namespace (a process must be in it for its maps to be written), we map it and join it. */
    int ready[2], hold[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0) return fail(err, errlen, "pipe");
    pid_t h = fork();
    if (h < 0) return fail(err, errlen, "fork");
    if (h == 0) {
        close(ready[0]);
        close(hold[1]);
        int e = unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
        ssize_t ignored = write(ready[1], &e, sizeof e);
        (void)ignored;
        char c;
        while (read(hold[0], &c, 1) < 0 && errno == EINTR) {}
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    int rc = -1, e = -1;
    ssize_t got;
    do { got = read(ready[0], &e, sizeof e); } while (got < 0 && errno == EINTR);
    close(ready[0]);
    int nsfd = -1;
    if (got != (ssize_t)sizeof e) {
        snprintf(err, errlen, "the user namespace helper died");
    } else if (e != 0) {
        errno = e;
        fail(err, errlen, "unshare(CLONE_NEWUSER)");
    } else {
        char path[64], map[128];
        int mapped;
        if (geteuid() == 0) {
            snprintf(path, sizeof path, "/proc/%d/uid_map", (int)h);
            snprintf(map, sizeof map, "0 %u 1\n%u %u 1\n", own_uid, (unsigned)SANDBOX_ID, uid);
            mapped = write_file(path, map) == 0 ? 0 : fail(err, errlen, "uid_map");
            if (mapped == 0) {
                snprintf(path, sizeof path, "/proc/%d/gid_map", (int)h);
                snprintf(map, sizeof map, "0 %u 1\n%u %u 1\n", own_gid, (unsigned)SANDBOX_ID, gid);
                mapped = write_file(path, map) == 0 ? 0 : fail(err, errlen, "gid_map");
            }
        } else if (!newuidmap || !newgidmap) {
            snprintf(err, errlen, "newuidmap and newgidmap (Debian package uidmap) are needed to map the sandbox's ids");
            mapped = -1;
        } else {
            mapped = run_map_helper(newuidmap, h, own_uid, uid, err, errlen);
            if (mapped == 0) mapped = run_map_helper(newgidmap, h, own_gid, gid, err, errlen);
        }
        if (mapped == 0) {
            snprintf(path, sizeof path, "/proc/%d/ns/user", (int)h);
            nsfd = open(path, O_RDONLY | O_CLOEXEC);
            if (nsfd < 0) fail(err, errlen, "open the user namespace");
        }
    }
    close(hold[1]);
    while (waitpid(h, NULL, 0) < 0 && errno == EINTR) {}
    if (nsfd < 0) return -1;
    if (setns(nsfd, CLONE_NEWUSER) != 0) fail(err, errlen, "setns(CLONE_NEWUSER)");
    else if (setgroups(0, NULL) != 0) fail(err, errlen, "setgroups");
    else if (getuid() != 0 || getgid() != 0) snprintf(err, errlen, "not root in the sandbox's user namespace");
    else rc = 0;
    close(nsfd);
    return rc;
}

int become_sandbox_user(char *err, size_t errlen) {
    /* The bounding set first (it needs CAP_SETPCAP): nothing exec'd later can hold a capability. */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return fail(err, errlen, "drop the capability bounding set");
    }
    if (setgroups(0, NULL) != 0) return fail(err, errlen, "setgroups");
    if (setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) != 0) return fail(err, errlen, "setresgid");
    if (setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) != 0) return fail(err, errlen, "setresuid");
    /* Leaving uid 0 cleared the permitted, effective and ambient sets; clear the inheritable one too. */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0) return fail(err, errlen, "capset");
    if (syscall(SYS_capget, &hdr, data) != 0) return fail(err, errlen, "capget");
    uid_t r, e, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &s) != 0 || getresgid(&gr, &ge, &gs) != 0) return fail(err, errlen, "getresuid");
    if (r != SANDBOX_ID || e != SANDBOX_ID || s != SANDBOX_ID || gr != SANDBOX_ID || ge != SANDBOX_ID || gs != SANDBOX_ID ||
        data[0].permitted || data[1].permitted || data[0].effective || data[1].effective || data[0].inheritable ||
        data[1].inheritable || getgroups(0, NULL) != 0) {
        snprintf(err, errlen, "the sandbox user still holds privileges");
        return -1;
    }
    return 0;
}

static int parse_ids(const char *s, uid_t *uid, gid_t *gid) {
    char *end;
    errno = 0;
    unsigned long u = strtoul(s, &end, 10);
    if (errno || *end != ':' || u == 0 || u >= 0xffffffffUL) return -1;
    unsigned long g = strtoul(end + 1, &end, 10);
    if (errno || *end || g == 0 || g >= 0xffffffffUL) return -1;
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}

/* sbx-launch --userns-exec UID:GID [-M NEWUIDMAP -N NEWGIDMAP] -- COMMAND [ARG]...: the server's trial sandbox,
 * started in a namespace made exactly as a zygote makes its own. */
int userns_exec(int argc, char **argv) {
    uid_t uid;
    gid_t gid;
    const char *newuidmap = NULL, *newgidmap = NULL;
    int i = 2;
    if (argc < 2 || parse_ids(argv[1], &uid, &gid) != 0) goto usage;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "-M") == 0 && i + 1 < argc) { newuidmap = argv[++i]; continue; }
        if (strcmp(argv[i], "-N") == 0 && i + 1 < argc) { newgidmap = argv[++i]; continue; }
        goto usage;
    }
    if (i >= argc) goto usage;
    char err[256];
    if (enter_sandbox_userns(uid, gid, newuidmap, newgidmap, err, sizeof err) != 0) {
        fprintf(stderr, "sbx-launch: cannot make the sandbox's user namespace: %s\n", err);
        return 126;
    }
    execvp(argv[i], &argv[i]);
    fprintf(stderr, "sbx-launch: cannot run %s: %s\n", argv[i], strerror(errno));
    return 127;
usage:
    fprintf(stderr, "usage: sbx-launch --userns-exec UID:GID [-M NEWUIDMAP -N NEWGIDMAP] -- COMMAND [ARG]...\n");
    return 2;
}
