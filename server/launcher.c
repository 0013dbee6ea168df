/*
 * sbx-launch: starts one sandboxed program and reports what the kernel accounted for it.
 *
 *   sbx-launch [-r RESOURCE=LIMIT]... [-c CGROUP_PROCS_FILE]... [-k] -- PROGRAM [ARG]...
 *   sbx-launch --init [-r RESOURCE=LIMIT]... -- PROGRAM [ARG]...   (pid 1 inside a bubblewrap sandbox)
 *   sbx-launch --zygote SOCKET [-n] [CGROUP_PROCS_FILE]...   (see zygote() below: the server's way to start runs
 *                                        cheaply; -n: in a network namespace of its own, shared by its sandboxes)
 *   sbx-launch --probe-network           (exit 0 when -n works here)
 *
 * Why it exists: Node cannot wait4() a child, so a run that ends between two pidusage samples would report no CPU
 * time and no memory. This launcher forks PROGRAM into a process group of its own (so the whole tree can be killed
 * with one signal), applies the rlimits, waits for it with wait4() and writes, on file descriptor 3:
 *
 *   pid <pid>                                  as soon as the program is forked (its pid is also its pgid)
 *   exec-error <errno> <message>               when PROGRAM could not be started
 *   exit <code> | signal <number>              how the program ended
 *   rusage <utime_us> <stime_us> <maxrss_kb>   the program and every descendant (CPU summed, peak RSS of the largest)
 *
 * The launcher is a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant that daemonizes (double fork, setsid)
 * is re-parented to it, not to init. When the program ends, the launcher kills every process left below it, and
 * waits for them, before it reports: no process of the run outlives it, and the rusage covers all of them. If the
 * launcher's parent (the server) dies, or it receives SIGTERM/SIGINT/SIGHUP, it does the same and exits.
 * Resources for -r: as, cpu, fsize, nofile, nproc, core (values in bytes, seconds or counts). For cpu the hard
 * limit is one second above the soft one, so the program gets SIGXCPU (a CPU-limit verdict), not a bare SIGKILL.
 * -c joins the program to a cgroup (writes "0" into that cgroup.procs) before it execs, so every process it makes
 * is held by the run's memory and pids limits from its first instruction.
 *
 * In the bwrap isolation mode the server runs `sbx-launch -c … -- bwrap … --as-pid-1 … -- sbx-launch --init -r …
 * -- PROGRAM`: the outer launcher watches bwrap from the host; the inner one is pid 1 of the run's PID namespace.
 * As pid 1 every orphan of the run is its child; when the program ends it kills everything in the namespace
 * (kill(-1)), reaps it, and reports "inner-exit", "inner-signal", "inner-rusage", "inner-exec-error": bwrap itself
 * can only pass on an exit code (a program killed by SIGKILL and one that called exit(137) look the same to it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPORT_FD 3
#define MAX_LIMITS 16

static volatile pid_t child_pid = 0;
static volatile sig_atomic_t terminating = 0;
/* --init: pid 1 of the sandbox's PID namespace; reports are prefixed "inner-". */
static int init_mode = 0;
static int keep_report = 0;

/* Asked to stop: kill the program's group now; the main flow sweeps the rest and exits. */
static void on_terminate(int sig) {
    terminating = sig;
    if (child_pid > 0) kill(-child_pid, SIGKILL);
}

/* SIGKILLs every process whose parent is this launcher; returns how many it found. */
static int kill_our_children(void) {
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    int found = 0;
    struct dirent *d;
    while ((d = readdir(proc)) != NULL) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", d->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0) continue;
        buf[len] = '\0';
        char *close_paren = strrchr(buf, ')');
        if (!close_paren) continue;
        char state;
        int ppid;
        if (sscanf(close_paren + 2, "%c %d", &state, &ppid) != 2) continue;
        if (ppid == getpid() && state != 'Z') {
            kill(atoi(d->d_name), SIGKILL);
            found++;
        }
    }
    closedir(proc);
    return found;
}

/* Kills and reaps every descendant: orphans of the run were re-parented to us (we are a subreaper). */
static void sweep(void) {
    /* Most runs leave nothing: with no child at all (orphans would be ours), skip the /proc scan. */
    int st0;
    if (waitpid(-1, &st0, WNOHANG) < 0 && errno == ECHILD) return;
    for (;;) {
        int killed = kill_our_children();
        pid_t w;
        int st;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {}
        if (w < 0 && errno == ECHILD) return;
        if (killed == 0) usleep(1000); /* a child is being re-parented to us, or is dying: look again */
    }
}

static int resource_by_name(const char *name) {
    if (strcmp(name, "as") == 0) return RLIMIT_AS;
    if (strcmp(name, "cpu") == 0) return RLIMIT_CPU;
    if (strcmp(name, "fsize") == 0) return RLIMIT_FSIZE;
    if (strcmp(name, "nofile") == 0) return RLIMIT_NOFILE;
    if (strcmp(name, "nproc") == 0) return RLIMIT_NPROC;
    if (strcmp(name, "core") == 0) return RLIMIT_CORE;
    return -1;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    /* Inside a sandbox every word is "inner-…", telling the server the program's own story from bwrap's. */
    int p = init_mode ? snprintf(buf, sizeof buf, "inner-") : 0;
    int n = vsnprintf(buf + p, sizeof buf - (size_t)p, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    n += p;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(REPORT_FD, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += w;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: sbx-launch [--init] [-r RESOURCE=LIMIT]... [-c CGROUP_PROCS]... -- PROGRAM [ARG]...\n");
    exit(2);
}

#define MAX_CGROUPS 8

/* Closes every descriptor from `low` up: a program must inherit nothing but its stdio (and bwrap its report fd),
 * whatever the server's own parent left open in it. */
static void close_from(int low) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)low, ~0U, 0) == 0) return;
#endif
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= low && fd != self) close(fd);
    }
    closedir(d);
}

/* Moves the calling process into a cgroup: "0" in cgroup.procs means "the writer". */
static int join_cgroup(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, "0", 1);
    int e = errno;
    close(fd);
    errno = e;
    return w == 1 ? 0 : -1;
}

static int launch(int argc, char **argv) {
    int resources[MAX_LIMITS];
    rlim_t values[MAX_LIMITS];
    int nlimits = 0;
    const char *cgroups[MAX_CGROUPS];
    int ncgroups = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--init") == 0) { init_mode = 1; continue; }
        /* -k: PROGRAM is bwrap, which hands fd 3 on to the inner launcher: keep it open across exec. */
        if (strcmp(argv[i], "-k") == 0) { keep_report = 1; continue; }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc && ncgroups < MAX_CGROUPS) { cgroups[ncgroups++] = argv[++i]; continue; }
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc && nlimits < MAX_LIMITS) {
            char *spec = argv[++i];
            char *eq = strchr(spec, '=');
            if (!eq) usage();
            *eq = '\0';
            int res = resource_by_name(spec);
            if (res < 0) usage();
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(eq + 1, &end, 10);
            if (errno || !end || *end) usage();
            resources[nlimits] = res;
            values[nlimits] = (rlim_t)v;
            nlimits++;
            continue;
        }
        usage();
    }
    if (i >= argc) usage();
    char **program = &argv[i];

    /* Orphans of the run come to us, not to init; and we stop (taking the run with us) if the server goes away. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* In a sandbox bwrap already set PDEATHSIG to SIGKILL (--die-with-parent): keep that. */
    if (!init_mode) prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_terminate; /* no SA_RESTART: wait4 returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (getppid() == 1) return 125; /* the server died before we could watch it */

    /* A close-on-exec pipe tells us whether exec succeeded: it closes silently when it does. */
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) { report("exec-error %d pipe: %s\n", errno, strerror(errno)); return 126; }

    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) { report("exec-error %d fork: %s\n", errno, strerror(errno)); return 126; }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        close(errpipe[0]);
        /* Keep only stdio, the close-on-exec error pipe and, for bwrap, the report fd. */
        int ep = errpipe[1];
        if (ep != REPORT_FD + 1) {
            if (dup2(ep, REPORT_FD + 1) < 0) _exit(127);
            ep = REPORT_FD + 1;
            fcntl(ep, F_SETFD, FD_CLOEXEC);
        }
        if (!keep_report) close(REPORT_FD);
        close_from(REPORT_FD + 2);
        errpipe[1] = ep;
        for (int k = 0; k < ncgroups; k++) {
            if (join_cgroup(cgroups[k]) != 0) {
                int e = errno;
                ssize_t ignored = write(errpipe[1], &e, sizeof e);
                (void)ignored;
                _exit(127);
            }
        }
        for (int k = 0; k < nlimits; k++) {
            struct rlimit rl = { values[k], values[k] };
            if (resources[k] == RLIMIT_CPU && values[k] != RLIM_INFINITY) rl.rlim_max = values[k] + 1;
            if (setrlimit(resources[k], &rl) != 0) {
                int e = errno;
                ssize_t ignored = write(errpipe[1], &e, sizeof e);
                (void)ignored;
                _exit(127);
            }
        }
        execvp(program[0], program);
        int e = errno;
        ssize_t ignored = write(errpipe[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    setpgid(pid, pid); /* also from the parent, so the group exists before anyone signals it */
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    report("pid %d\n", (int)pid);

    close(errpipe[1]);
    int child_errno = 0;
    ssize_t got;
    do { got = read(errpipe[0], &child_errno, sizeof child_errno); } while (got < 0 && errno == EINTR);
    close(errpipe[0]);
    if (got == (ssize_t)sizeof child_errno) {
        report("exec-error %d %s: %s\n", child_errno, program[0], strerror(child_errno));
    }

    int status = 0;
    pid_t w;
    do { w = waitpid(pid, &status, 0); } while (w < 0 && errno == EINTR);
    /* Background jobs and daemons of the program would otherwise outlive it (and hold its output pipes open). */
    kill(-pid, SIGKILL);
    child_pid = 0;
    if (init_mode) {
        /* pid 1 of the namespace: one signal reaches every other process in it, however it forked. */
        kill(-1, SIGKILL);
        int st;
        while (waitpid(-1, &st, 0) > 0 || errno == EINTR) {}
    }
    sweep();
    if (w < 0) { report("exec-error %d waitpid: %s\n", errno, strerror(errno)); return 126; }

    if (WIFSIGNALED(status)) report("signal %d\n", WTERMSIG(status));
    else report("exit %d\n", WEXITSTATUS(status));
    /* Every process of the run has been reaped by now, directly or by a parent that waited for it. */
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_CHILDREN, &ru);
    long long utime = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
    long long stime = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
    report("rusage %lld %lld %ld\n", utime, stime, ru.ru_maxrss);
    if (terminating) {
        signal(terminating, SIG_DFL);
        raise(terminating);
    }
    if (got == (ssize_t)sizeof child_errno) return 127;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------------------------------------------
 * Zygote mode. fork() from the server costs 2-3 ms of its main thread per run (the kernel copies the page tables
 * of an ~80 MB Node process), which capped throughput and added latency. The zygote is a tiny process the server
 * starts once; it forks each run's launcher, which costs next to nothing. Protocol:
 *
 *   stdin  (server → zygote): per run, NUL-terminated strings:
 *          id, cwd, stdin-flag ("0"/"1"), argc, argc launcher arguments, envc, envc "KEY=VALUE" strings
 *   stdout (zygote → server): "spawned <id> <pid>\n" for each run; "exited <pid> <wait status>\n" when a launcher
 *          ends (the launcher leads its own session, so -pid is its process group)
 *   SOCKET (launcher → server): the launcher connects once per stream and says "<id> <name>\n" first, name being
 *          in (stdin), out, err, rep (the report, fd 3); then the socket is that stream.
 *
 * The zygote exits when its stdin closes, and dies with the server (PDEATHSIG); its launchers then get SIGTERM
 * (their own PDEATHSIG) and take their runs with them.
 */
extern char **environ;

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        len -= (size_t)w;
    }
}

/* Async-signal-safe: formats "exited <pid> <status>\n" by hand. */
static void on_child_exit(int sig) {
    (void)sig;
    int saved = errno;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
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

/* Moves the caller into a new network namespace with only its loopback, up. Needs CAP_SYS_ADMIN (a root server).
 * A worker's zygote does it once: its sandboxes share that empty namespace (they cannot change it: they have no
 * capability in the namespace's owner) instead of making and tearing down one per run, which costs ~0.6 ms of a
 * run and more of the kernel's time afterwards (measured). */
static int private_network(void) {
    if (unshare(CLONE_NEWNET) != 0) return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    close(fd);
    return ok ? 0 : -1;
}

static int zygote(const char *sock, int netns, int ncgroups, char **cgroups) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 125;
    if (netns && private_network() != 0) {
        fprintf(stderr, "sbx-launch: cannot make a network namespace: %s\n", strerror(errno));
        return 4;
    }
    /* A worker's zygote lives in the worker's cgroups, so every run it forks is born there: moving a process into a
     * cgroup waits for an RCU grace period (5-15 ms, measured), which a run must not pay. */
    for (int k = 0; k < ncgroups; k++) {
        if (join_cgroup(cgroups[k]) != 0) {
            fprintf(stderr, "sbx-launch: cannot join %s: %s\n", cgroups[k], strerror(errno));
            return 3;
        }
    }
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
        char *id = next_token(&buf, &cap);
        if (!id) return 0; /* the server closed our stdin: done */
        char *cwd = next_token(&buf, &cap);
        char *with_stdin = next_token(&buf, &cap);
        char *argc_s = next_token(&buf, &cap);
        if (!cwd || !with_stdin || !argc_s) return 2;
        int argc = atoi(argc_s);
        if (argc < 1 || argc > 100000) return 2;
        char **argv = calloc((size_t)argc + 2, sizeof *argv);
        argv[0] = "sbx-launch";
        for (int k = 0; k < argc; k++) if (!(argv[k + 1] = next_token(&buf, &cap))) return 2;
        char *envc_s = next_token(&buf, &cap);
        if (!envc_s) return 2;
        int envc = atoi(envc_s);
        if (envc < 0 || envc > 100000) return 2;
        char **envp = calloc((size_t)envc + 1, sizeof *envp);
        for (int k = 0; k < envc; k++) if (!(envp[k] = next_token(&buf, &cap))) return 2;

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
        int n = pid < 0 ? snprintf(line, sizeof line, "failed %s %d\n", id, errno)
                        : snprintf(line, sizeof line, "spawned %s %d\n", id, (int)pid);
        write_all(STDOUT_FILENO, line, (size_t)n);
        sigprocmask(SIG_SETMASK, &old, NULL);
        free(id); free(cwd); free(with_stdin); free(argc_s); free(envc_s);
        for (int k = 1; k <= argc; k++) free(argv[k]);
        for (int k = 0; k < envc; k++) free(envp[k]);
        free(argv); free(envp);
    }
}

int main(int argc, char **argv) {
    /* sbx-launch --zygote SOCKET [-n] [CGROUP_PROCS_FILE]... */
    if (argc >= 3 && strcmp(argv[1], "--zygote") == 0) {
        int netns = argc >= 4 && strcmp(argv[3], "-n") == 0;
        return zygote(argv[2], netns, argc - 3 - netns, argv + 3 + netns);
    }
    /* sbx-launch --probe-network: can this server give its zygotes a network namespace? (exit 0: yes) */
    if (argc == 2 && strcmp(argv[1], "--probe-network") == 0) return private_network() == 0 ? 0 : 1;
    return launch(argc, argv);
}
