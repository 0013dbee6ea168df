/*
 * Zygote mode. fork() from the server costs 2-3 ms of its main thread per run (the kernel copies the page tables of
 * an ~80 MB Node process), which capped throughput and added latency. The zygote is a tiny process the server
 * starts once per pool worker; it forks each run's launcher, which costs next to nothing.
 *
 *   sbx-launch --zygote SOCKET [-i UID:GID [-M NEWUIDMAP -N NEWGIDMAP]] [CGROUP_PROCS_FILE]...
 *
 * At start, in this order: it joins the worker's cgroups (every run it forks is born there: moving a process into a
 * cgroup waits for an RCU grace period, 5-15 ms measured, which a run must not pay); a root zygote makes itself (and
 * so the launchers and bwrap it forks) the last the OOM killer would pick: pid 1 of a sandbox makes itself and the
 * program the first; with -i it makes and enters the worker's user namespace (identity.c: the sandbox user is host
 * UID:GID). (Each sandbox gets a network namespace of its own from bwrap: a shared one carried TIME_WAIT sockets and
 * /proc/net's view of them from one run to the next.)
 *
 *   stdin  (server → zygote), NUL-terminated strings:
 *          "run", id, cwd, stdin-flag ("0"/"1"), argc, argc launcher arguments, envc, envc "KEY=VALUE" strings
 *          "kill", id, signal number: signal that run's launcher (SIGTERM: it kills its run and reports; SIGKILL: its
 *                  process group) — only while it is this zygote's unreaped child, so never a recycled pid
 *   stdout (zygote → server): "spawned <id> <pid>\n" for each run; "exited <pid> <wait status>\n" when a launcher
 *          ends; "failed <id> <errno>\n" when it could not fork
 *   SOCKET (launcher → server): the launcher connects once per stream and says "<id> <name>\n" first, name being
 *          in (stdin), out, err, rep (the report, fd 3); then the socket is that stream.
 *
 * The zygote exits when its stdin closes, and dies with the server (PDEATHSIG); its launchers then get SIGTERM
 * (their own PDEATHSIG) and take their runs with them.
 */
#include "launcher.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ID_MAX 64
#define MAX_CGROUPS 8

extern char **environ;

/* Launchers forked and not yet reaped. Changed by the main loop only with SIGCHLD blocked, and by the handler. */
static struct live { pid_t pid; char id[ID_MAX + 1]; } *live;
static size_t nlive, cap_live;

static void forget(pid_t pid) {
    for (size_t k = 0; k < nlive; k++) {
        if (live[k].pid == pid) {
            live[k] = live[--nlive];
            return;
        }
    }
}

/* Async-signal-safe: reaps, forgets, and formats "exited <pid> <status>\n" by hand. */
static void on_child_exit(int sig) {
    (void)sig;
    int saved = errno;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        forget(pid);
        char line[64];
        char digits[2][24];
        long values[2] = { (long)pid, (long)status };
        size_t n = 0;
        const char *prefix = "exited ";
        for (const char *p = prefix; *p; p++) line[n++] = *p;
        for (int k = 0; k < 2; k++) {
            long v = values[k];
            int neg = v < 0, d = 0;
            unsigned long u = neg ? (unsigned long)(-v) : (unsigned long)v;
            do { digits[k][d++] = (char)('0' + u % 10); u /= 10; } while (u);
            if (neg) line[n++] = '-';
            while (d) line[n++] = digits[k][--d];
            line[n++] = k == 0 ? ' ' : '\n';
        }
        write_all(STDOUT_FILENO, line, n);
    }
    errno = saved;
}

static int connect_stream(const char *sock, const char *id, const char *name) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) _exit(124);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, sock, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) _exit(124);
    char header[160];
    int n = snprintf(header, sizeof header, "%s %s\n", id, name);
    if (n < 0 || (size_t)n >= sizeof header) _exit(124);
    write_all(fd, header, (size_t)n);
    return fd;
}

static char *next_token(char **buf, size_t *cap) {
    ssize_t n;
    do { n = getdelim(buf, cap, '\0', stdin); } while (n < 0 && errno == EINTR && !feof(stdin));
    if (n <= 0) return NULL;
    return strdup(*buf);
}

static void spawn_run(const char *sock, char *id, char *cwd, char *with_stdin, int argc, char **argv, char **envp) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old); /* "spawned" goes out before this launcher's "exited" */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        setsid();
        int in = with_stdin[0] == '1' ? connect_stream(sock, id, "in") : open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out = connect_stream(sock, id, "out");
        int err = connect_stream(sock, id, "err");
        int rep = connect_stream(sock, id, "rep");
        if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || dup2(rep, REPORT_FD) < 0) _exit(124);
        if (chdir(cwd) != 0) {
            report("exec-error %d cannot enter %s: %s\n", errno, cwd, strerror(errno));
            _exit(126);
        }
        environ = envp;
        _exit(launch(argc + 1, argv));
    }
    char line[200];
    int n;
    if (pid < 0) {
        n = snprintf(line, sizeof line, "failed %s %d\n", id, errno);
    } else {
        if (nlive == cap_live) {
            cap_live = cap_live ? cap_live * 2 : 16;
            live = realloc(live, cap_live * sizeof *live);
            if (!live) _exit(2);
        }
        live[nlive].pid = pid;
        snprintf(live[nlive].id, sizeof live[nlive].id, "%s", id);
        nlive++;
        n = snprintf(line, sizeof line, "spawned %s %d\n", id, (int)pid);
    }
    write_all(STDOUT_FILENO, line, (size_t)n);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void kill_run(const char *id, int sig) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old); /* while blocked, a live entry is an unreaped child: its pid is ours */
    for (size_t k = 0; k < nlive; k++) {
        if (strcmp(live[k].id, id) == 0) {
            /* SIGKILL: the launcher's whole process group (it leads its own session); else the launcher alone. */
            kill(sig == SIGKILL ? -live[k].pid : live[k].pid, sig);
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

int zygote(int argc, char **argv) {
    if (argc < 2) goto usage;
    const char *sock = argv[1];
    uid_t uid = 0;
    gid_t gid = 0;
    const char *newuidmap = NULL, *newgidmap = NULL;
    const char *cgroups[MAX_CGROUPS];
    int ncgroups = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
            char *end;
            unsigned long u = strtoul(argv[++i], &end, 10), g;
            if (*end != ':' || !u) goto usage;
            g = strtoul(end + 1, &end, 10);
            if (*end || !g) goto usage;
            uid = (uid_t)u;
            gid = (gid_t)g;
            continue;
        }
        if (strcmp(argv[i], "-M") == 0 && i + 1 < argc) { newuidmap = argv[++i]; continue; }
        if (strcmp(argv[i], "-N") == 0 && i + 1 < argc) { newgidmap = argv[++i]; continue; }
        if (argv[i][0] == '-' || ncgroups == MAX_CGROUPS) goto usage;
        cgroups[ncgroups++] = argv[i];
    }

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 125;
    for (int k = 0; k < ncgroups; k++) {
        if (join_cgroup(cgroups[k]) != 0) {
            fprintf(stderr, "sbx-launch: cannot join %s: %s\n", cgroups[k], strerror(errno));
            return 3;
        }
    }
    /* The OOM killer must never pick a zygote, a launcher or bwrap over the program of a run in the same memory
     * cgroup (a run keeping its memory in tmpfs or sockets has a tiny RSS: bwrap's would be the largest, and its death
     * a wrong verdict). Lowering needs CAP_SYS_RESOURCE, which some roots lack (and no user has): then pid 1 raising
     * itself and the program to 1000 is what steers it, and an OOM kill of anything in the group still makes the
     * verdict memory_limit (executor.ts). */
    if (geteuid() == 0) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            write_all(fd, "-1000", 5);
            close(fd);
        }
    }
    char err[256];
    if (uid && enter_sandbox_userns(uid, gid, newuidmap, newgidmap, err, sizeof err) != 0) {
        fprintf(stderr, "sbx-launch: cannot make the sandbox's user namespace: %s\n", err);
        return 5;
    }
    /* A user namespace change drops the parent-death signal: set it again, then make sure the parent is alive. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 125;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child_exit;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        char *verb = next_token(&buf, &cap);
        if (!verb) return 0; /* the server closed our stdin: done */
        char *id = next_token(&buf, &cap);
        if (!id || strlen(id) > ID_MAX) return 2;
        if (strcmp(verb, "kill") == 0) {
            char *sig = next_token(&buf, &cap);
            if (!sig) return 2;
            int s = atoi(sig);
            if (s == SIGTERM || s == SIGKILL) kill_run(id, s);
            free(verb); free(id); free(sig);
            continue;
        }
        if (strcmp(verb, "run") != 0) return 2;
        char *cwd = next_token(&buf, &cap);
        char *with_stdin = next_token(&buf, &cap);
        char *argc_s = next_token(&buf, &cap);
        if (!cwd || !with_stdin || !argc_s) return 2;
        int rargc = atoi(argc_s);
        if (rargc < 1 || rargc > 100000) return 2;
        char **rargv = calloc((size_t)rargc + 2, sizeof *rargv);
        if (!rargv) return 2;
        rargv[0] = "sbx-launch";
        for (int k = 0; k < rargc; k++) if (!(rargv[k + 1] = next_token(&buf, &cap))) return 2;
        char *envc_s = next_token(&buf, &cap);
        if (!envc_s) return 2;
        int envc = atoi(envc_s);
        if (envc < 0 || envc > 100000) return 2;
        char **envp = calloc((size_t)envc + 1, sizeof *envp);
        if (!envp) return 2;
        for (int k = 0; k < envc; k++) if (!(envp[k] = next_token(&buf, &cap))) return 2;

        spawn_run(sock, id, cwd, with_stdin, rargc, rargv, envp);
        free(verb); free(id); free(cwd); free(with_stdin); free(argc_s); free(envc_s);
        for (int k = 1; k <= rargc; k++) free(rargv[k]);
        for (int k = 0; k < envc; k++) free(envp[k]);
        free(rargv); free(envp);
    }
usage:
    fprintf(stderr, "usage: sbx-launch --zygote SOCKET [-i UID:GID [-M NEWUIDMAP -N NEWGIDMAP]] [CGROUP_PROCS]...\n");
    return 2;
}
