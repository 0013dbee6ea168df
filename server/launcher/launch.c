/*
 * One run: fork PROGRAM into a process group of its own, apply the rlimits, wait for it with wait4() and report on
 * fd 3 how it ended and what the kernel accounted for it (Node cannot wait4() a child, so a run that ends between
 * two samples would otherwise report no CPU time and no memory):
 *
 *   exec-error <errno> <message>               PROGRAM could not be started
 *   inner <n>\n<n bytes>                       (-b) what pid 1 of the sandbox reported, relayed as is, at most
 *                                              INNER_REPORT_MAX bytes; "inner-overflow" when it said more
 *   exit <code> | signal <number>              how PROGRAM (bwrap, with -b) ended
 *   rusage <utime_us> <stime_us> <maxrss_kb>   PROGRAM and every descendant (CPU summed, peak RSS of the largest)
 *
 * The launcher is a child subreaper: a descendant that daemonizes is re-parented to it, and when PROGRAM ends it
 * kills and reaps every process left below it before it reports. If its parent dies, or it gets SIGTERM/SIGINT/
 * SIGHUP, it kills the run the same way. -r applies rlimits (as, cpu, fsize, nofile, nproc, core; for cpu the hard
 * limit is one second above the soft one, so the program gets SIGXCPU, not a bare SIGKILL); -c joins a cgroup
 * before the exec.
 *
 * -b: PROGRAM is bwrap, whose pid 1 is `sbx-launch --init`. Nothing from inside the sandbox reaches the server
 * unchecked: pid 1 reports on a pipe of its own (INNER_REPORT_FD), never on this launcher's socket; this launcher
 * reads that pipe, keeps at most INNER_REPORT_MAX bytes and relays them framed by length, so no byte from inside can
 * pass for a line of ours (the server then parses them strictly). It also holds the only writer of the lifeline
 * (LIFELINE_FD in the sandbox): when it closes it, or dies, pid 1 kills the whole sandbox.
 *
 * --init: pid 1 inside bwrap (--as-pid-1). It reports `started`, makes itself and the program the first the OOM killer
 * picks, gives /work to the sandbox user (-w) and becomes that user (-u: drops every capability, its supplementary
 * groups and uid 0 of the namespace), makes itself non-dumpable (so the program can neither ptrace
 * it nor take its file descriptors), loads the seccomp filter (-s), runs the program, and when the program ends
 * kills everything left in the namespace (kill(-1)), reaps it, and reports its exit status or signal and rusage:
 * bwrap itself can only pass on an exit code (SIGKILL and exit(137) would look the same).
 */
#include "launcher.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIMITS 16
#define MAX_CGROUPS 8

static volatile pid_t child_pid = 0;
static volatile sig_atomic_t terminating = 0;
/* -b: our end of the lifeline; closed to make pid 1 of the sandbox kill everything. */
static volatile int lifeline = -1;

void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        len -= (size_t)w;
    }
}

void report(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) {
        n = sizeof buf - 1;
        buf[n - 1] = '\n'; /* a cut line still ends where a line ends */
    }
    write_all(REPORT_FD, buf, (size_t)n);
}

/* Closes every descriptor from `low` up: a program must inherit nothing but what it is given. */
void close_from(int low) {
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
int join_cgroup(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, "0", 1);
    int e = errno;
    close(fd);
    errno = e;
    return w == 1 ? 0 : -1;
}

/* A close-on-exec copy of `fd` above every descriptor we place by number, so dup2() into place never clobbers. */
int move_fd_high(int fd) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 64);
    if (high >= 0) close(fd);
    return high;
}

/* Asked to stop: kill the program's group now (and, around a sandbox, let go of the lifeline: pid 1 then kills
 * everything inside); the main flow sweeps the rest and exits. */
static void on_terminate(int sig) {
    terminating = sig;
    if (child_pid > 0) kill(-child_pid, SIGKILL);
    int fd = lifeline;
    lifeline = -1;
    if (fd >= 0) close(fd);
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

static void usage(void) {
    fprintf(stderr,
            "usage: sbx-launch [--init [-u] [-s SECCOMP_BPF]] [-b] [-r RESOURCE=LIMIT]... [-c CGROUP_PROCS]... -- PROGRAM [ARG]...\n");
    exit(2);
}

struct options {
    int init;               /* --init: pid 1 of a sandbox */
    int sandbox;            /* -b: PROGRAM is bwrap */
    int become_user;        /* -u (init): switch to the sandbox user */
    int own_work;           /* -w (init, with -u): give the cwd (the run's own /work tmpfs) to the sandbox user */
    const char *seccomp;    /* -s (init): BPF filter to load */
    int resources[MAX_LIMITS];
    rlim_t values[MAX_LIMITS];
    int nlimits;
    const char *cgroups[MAX_CGROUPS];
    int ncgroups;
    char **program;
};

static void parse(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--init") == 0) { o->init = 1; continue; }
        if (strcmp(argv[i], "-b") == 0) { o->sandbox = 1; continue; }
        if (strcmp(argv[i], "-u") == 0) { o->become_user = 1; continue; }
        if (strcmp(argv[i], "-w") == 0) { o->own_work = 1; continue; }
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) { o->seccomp = argv[++i]; continue; }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc && o->ncgroups < MAX_CGROUPS) { o->cgroups[o->ncgroups++] = argv[++i]; continue; }
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc && o->nlimits < MAX_LIMITS) {
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
            o->resources[o->nlimits] = res;
            o->values[o->nlimits] = (rlim_t)v;
            o->nlimits++;
            continue;
        }
        usage();
    }
    if (i >= argc) usage();
    if ((o->become_user || o->seccomp) && !o->init) usage();
    if (o->own_work && !o->become_user) usage();
    if (o->sandbox && o->init) usage();
    o->program = &argv[i];
}

/* In the forked child: rlimits, cgroups, exec. Reports its errno on `errfd` (close-on-exec) if anything fails. */
static void __attribute__((noreturn)) exec_program(const struct options *o, int errfd) {
    /* A program (not bwrap: pid 1 sees to its own) is the first the OOM killer picks, whatever the zygote set. */
    if (!o->sandbox) {
        int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (adj >= 0) {
            write_all(adj, "1000", 4);
            close(adj);
        }
    }
    for (int k = 0; k < o->ncgroups; k++) {
        if (join_cgroup(o->cgroups[k]) != 0) {
            int e = errno;
            ssize_t ignored = write(errfd, &e, sizeof e);
            (void)ignored;
            _exit(127);
        }
    }
    for (int k = 0; k < o->nlimits; k++) {
        struct rlimit rl = { o->values[k], o->values[k] };
        if (o->resources[k] == RLIMIT_CPU && o->values[k] != RLIM_INFINITY) rl.rlim_max = o->values[k] + 1;
        if (setrlimit(o->resources[k], &rl) != 0) {
            int e = errno;
            ssize_t ignored = write(errfd, &e, sizeof e);
            (void)ignored;
            _exit(127);
        }
    }
    execvp(o->program[0], o->program);
    int e = errno;
    ssize_t ignored = write(errfd, &e, sizeof e);
    (void)ignored;
    _exit(127);
}

/* Reads the exec error pipe: the program's errno when it could not be started, else 0 (the pipe closed on exec). */
static int exec_errno(int fd) {
    int e = 0;
    ssize_t got;
    do { got = read(fd, &e, sizeof e); } while (got < 0 && errno == EINTR);
    close(fd);
    return got == (ssize_t)sizeof e ? (e ? e : EIO) : 0;
}

static void report_end(int status) {
    if (WIFSIGNALED(status)) report("signal %d\n", WTERMSIG(status));
    else report("exit %d\n", WEXITSTATUS(status));
    /* Every process of the run has been reaped by now, directly or by a parent that waited for it. */
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_CHILDREN, &ru);
    long long utime = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
    long long stime = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
    report("rusage %lld %lld %ld\n", utime, stime, ru.ru_maxrss);
}

/* ------------------------------------------------------------------------------------------------------------
 * pid 1 of a sandbox */

static int run_init(const struct options *o) {
    /* It ends with kill(-1): anywhere but pid 1 of a PID namespace of its own, that would reach every process of
     * its uid on the machine. */
    if (getpid() != 1) {
        fprintf(stderr, "sbx-launch: --init must be pid 1 of a sandbox\n");
        return 2;
    }
    /* Signals from inside the namespace reach pid 1 only through handlers it installs: it installs none. */
    signal(SIGPIPE, SIG_IGN);
    /* First word: the sandbox is up. Whatever comes on stderr from now on may be the program's: the server quotes
     * bwrap's own words from it only when this never came. */
    report("started\n");
    /* The first the OOM killer picks in the run's memory cgroup: pid 1 and the program, never bwrap, a launcher or
     * the zygote (which lowered theirs). Raising needs no privilege; done while /proc/self is still ours. */
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
        write_all(adj, "1000", 4);
        close(adj);
    }
    char err[256];
    /* The run's own /work is a tmpfs made by the sandbox's root: it becomes the sandbox user's (its home). A bound
     * host directory (the compile step's, -w not given) is left as the server prepared it. */
    if (o->own_work && chown(".", SANDBOX_ID, SANDBOX_ID) != 0) {
        report("setup-error chown /work: %s\n", strerror(errno));
        return 125;
    }
    if (o->become_user && become_sandbox_user(err, sizeof err) != 0) {
        report("setup-error %s\n", err);
        return 125;
    }
    /* A change of uid cleared the parent-death signal bwrap set (--die-with-parent): set it again. (Should bwrap have
     * died in between, the outer launcher lets go of the lifeline when it sees bwrap end, and we stop then.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Not dumpable: a process of the same uid cannot ptrace it, read its memory or take its descriptors (the
     * report pipe among them); no_new_privs: nothing it runs gains privileges (bwrap set it too). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        report("setup-error prctl: %s\n", strerror(errno));
        return 125;
    }
    umask(022); /* what the run writes is readable by the server (a compiled binary), whatever its umask */
    if (o->seccomp && seccomp_load_file(o->seccomp, err, sizeof err) != 0) {
        report("setup-error seccomp: %s\n", err);
        return 125;
    }
    /* The lifeline, when we were given one: its hangup means the outer launcher is gone. */
    int life = fcntl(LIFELINE_FD, F_GETFD) >= 0 ? LIFELINE_FD : -1;
    if (life >= 0) fcntl(life, F_SETFD, FD_CLOEXEC);
    fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        report("setup-error signalfd: %s\n", strerror(errno));
        return 125;
    }
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) { report("exec-error %d pipe: %s\n", errno, strerror(errno)); return 126; }

    pid_t pid = fork();
    if (pid < 0) { report("exec-error %d fork: %s\n", errno, strerror(errno)); return 126; }
    if (pid == 0) {
        sigprocmask(SIG_UNBLOCK, &chld, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        int ep = move_fd_high(errpipe[1]);
        close(errpipe[0]);
        if (ep < 0 || dup2(ep, 3) < 0) _exit(127);
        fcntl(3, F_SETFD, FD_CLOEXEC);
        close_from(4);
        exec_program(o, 3);
    }
    setpgid(pid, pid);
    close(errpipe[1]);
    int e = exec_errno(errpipe[0]);
    if (e) report("exec-error %d %s: %s\n", e, o->program[0], strerror(e));

    /* Wait for the program, reaping every orphan on the way, until it ends or the lifeline goes. */
    int status = 0, done = 0, abandoned = 0;
    while (!done && !abandoned) {
        struct pollfd p[2] = { { sfd, POLLIN, 0 }, { life, POLLIN, 0 } };
        if (poll(p, life >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
            /* Cannot happen short of a kernel fault; never report an exit we did not see. */
            pid_t w;
            do { w = waitpid(pid, &status, 0); } while (w < 0 && errno == EINTR);
            done = w == pid;
            break;
        }
        if (life >= 0 && (p[1].revents & (POLLHUP | POLLERR | POLLIN | POLLNVAL))) abandoned = 1;
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) > 0) {}
        pid_t w;
        int st;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w == pid) { status = st; done = 1; }
        }
    }
    /* pid 1: one signal reaches every other process in the namespace, however it forked. */
    kill(-1, SIGKILL);
    int st;
    while (waitpid(-1, &st, 0) > 0 || errno == EINTR) {}
    if (abandoned) return 137; /* nobody is listening any more */
    if (!done) {
        report("setup-error lost track of the program\n");
        return 125;
    }
    report_end(status);
    if (e) return 127;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------------------------------------------
 * The outer launcher (and the only one in the `process` isolation mode) */

/* -b: SIGCHLD wakes the loop below through this pipe (bwrap may die before pid 1 does). */
static int chld_pipe[2] = { -1, -1 };

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    if (chld_pipe[1] >= 0) {
        ssize_t ignored = write(chld_pipe[1], "x", 1);
        (void)ignored;
    }
    errno = saved;
}

/* Blocks the signals that ask the launcher to stop (their handler touches child_pid and the lifeline). */
static void block_stop_signals(sigset_t *old) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, old);
}

static void let_go_of_lifeline(void) {
    sigset_t old;
    block_stop_signals(&old);
    int fd = lifeline;
    lifeline = -1;
    if (fd >= 0) close(fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* -b: reads what pid 1 reports until every writer is gone, keeping at most INNER_REPORT_MAX bytes. If bwrap ends
 * first (killed from outside, say), lets go of the lifeline so that pid 1 kills the sandbox and the pipe closes.
 * Returns the length kept; *reaped is set (with *status) when bwrap was waited for here. */
static size_t read_inner(int fd, char *buf, int *overflow, pid_t pid, int *status, int *reaped) {
    size_t len = 0;
    char sink[4096];
    for (;;) {
        struct pollfd p[2] = { { fd, POLLIN, 0 }, { chld_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents & POLLIN) {
            char drain[16];
            while (read(chld_pipe[0], drain, sizeof drain) > 0) {}
            if (!*reaped && waitpid(pid, status, WNOHANG) == pid) {
                *reaped = 1;
                let_go_of_lifeline();
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char *to = len < INNER_REPORT_MAX ? buf + len : sink;
        size_t room = len < INNER_REPORT_MAX ? INNER_REPORT_MAX - len : sizeof sink;
        ssize_t n = read(fd, to, room);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        if (to == sink) *overflow = 1;
        else len += (size_t)n;
    }
    close(fd);
    return len;
}

int launch(int argc, char **argv) {
    struct options o;
    parse(argc, argv, &o);
    if (o.init) return run_init(&o);

    /* Orphans of the run come to us, not to init; and we stop (taking the run with us) if the server goes away. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_terminate; /* no SA_RESTART: wait4 and read return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (getppid() == 1) return 125; /* the server died before we could watch it */

    /* A close-on-exec pipe tells us whether exec succeeded: it closes silently when it does. */
    int errpipe[2], inner[2] = { -1, -1 }, life[2] = { -1, -1 };
    if (pipe2(errpipe, O_CLOEXEC) != 0) { report("exec-error %d pipe: %s\n", errno, strerror(errno)); return 126; }
    if (o.sandbox && (pipe2(inner, O_CLOEXEC) != 0 || pipe2(life, O_CLOEXEC) != 0 || pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK) != 0)) {
        report("exec-error %d pipe: %s\n", errno, strerror(errno));
        return 126;
    }
    if (o.sandbox) {
        struct sigaction sc;
        memset(&sc, 0, sizeof sc);
        sc.sa_handler = on_child;
        sc.sa_flags = SA_NOCLDSTOP;
        sigemptyset(&sc.sa_mask);
        sigaction(SIGCHLD, &sc, NULL);
    }

    sigset_t old;
    block_stop_signals(&old);
    pid_t pid = fork();
    if (pid < 0) { report("exec-error %d fork: %s\n", errno, strerror(errno)); return 126; }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        /* Keep only stdio, the close-on-exec error pipe and, for bwrap, the inner report pipe and the lifeline. */
        close(errpipe[0]);
        int ep = move_fd_high(errpipe[1]);
        int next = 3;
        if (o.sandbox) {
            close(inner[0]);
            close(life[1]);
            int ir = move_fd_high(inner[1]), lr = move_fd_high(life[0]);
            if (ir < 0 || lr < 0 || dup2(ir, INNER_REPORT_FD) < 0 || dup2(lr, LIFELINE_FD) < 0) _exit(127);
            next = 5;
        }
        if (ep < 0 || dup2(ep, next) < 0) _exit(127);
        fcntl(next, F_SETFD, FD_CLOEXEC);
        close_from(next + 1);
        exec_program(&o, next);
    }
    setpgid(pid, pid); /* also from the parent, so the group exists before anyone signals it */
    child_pid = pid;
    if (o.sandbox) {
        close(inner[1]);
        close(life[0]);
        lifeline = life[1];
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    close(errpipe[1]);
    int e = exec_errno(errpipe[0]);
    char inner_buf[INNER_REPORT_MAX];
    size_t inner_len = 0;
    int overflow = 0, status = 0, reaped = 0;
    if (o.sandbox) inner_len = read_inner(inner[0], inner_buf, &overflow, pid, &status, &reaped);

    pid_t w = pid;
    if (!reaped) {
        do { w = waitpid(pid, &status, 0); } while (w < 0 && errno == EINTR);
    }
    /* Background jobs and daemons of the program would otherwise outlive it (and hold its output pipes open). */
    kill(-pid, SIGKILL);
    child_pid = 0;
    let_go_of_lifeline();
    sweep();

    if (e) report("exec-error %d %s: %s\n", e, o.program[0], strerror(e));
    if (w < 0) { report("exec-error %d waitpid: %s\n", errno, strerror(errno)); return 126; }
    if (o.sandbox) {
        report("inner %zu\n", inner_len);
        write_all(REPORT_FD, inner_buf, inner_len);
        if (overflow) report("inner-overflow\n");
    }
    report_end(status);
    if (terminating) {
        signal(terminating, SIG_DFL);
        raise(terminating);
    }
    if (e) return 127;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
