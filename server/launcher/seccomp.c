/*
 * The seccomp filter every sandboxed program runs under (pid 1 loads it before it forks the program; the filter
 * is inherited and cannot be removed). Docker's default profile is the reference: what it allows only to a
 * container holding a capability our runs never hold (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, …), and what
 * it does not allow at all, is denied here. Unlike Docker's profile this is a deny list: a system call the list
 * does not name is allowed, so a program that probes for a new kernel feature still runs, and a denied call fails
 * with EPERM instead of killing the program (clone3, whose flags a filter cannot read, answers ENOSYS so that libc
 * falls back to clone, whose flags it can). Every architecture the CPU can run (x86-64 with i386 and x32 on
 * x86-64) gets the same rules, or a program could make the same call under another ABI's number.
 *
 * `sbx-launch --seccomp-export FILE` writes the filter as BPF once per server (libseccomp, linked statically, builds
 * it) and prints what it denies; pid 1 then loads FILE with prctl(PR_SET_SECCOMP), no library needed.
 */
#include "launcher.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define AF_VSOCK_ 40

/* Denied outright, with why. */
static const struct { const char *name; const char *why; } DENY[] = {
    /* Other processes' memory and descriptors: pid 1 (the launcher) above all. */
    { "ptrace", "tracing: pid 1 and other processes of the run" },
    { "process_vm_readv", "another process's memory" },
    { "process_vm_writev", "another process's memory" },
    { "pidfd_getfd", "another process's file descriptors" },
    { "kcmp", "comparing other processes' kernel objects" },
    { "process_madvise", "another process's memory" },
    /* Kernel keyrings are shared beyond the sandbox. */
    { "keyctl", "kernel keyrings" },
    { "add_key", "kernel keyrings" },
    { "request_key", "kernel keyrings" },
    /* Large kernel attack surface with a history of exploits. */
    { "bpf", "eBPF programs" },
    { "perf_event_open", "performance counters (kernel and side-channel surface)" },
    { "userfaultfd", "page-fault handling (used to widen kernel races)" },
    { "io_uring_setup", "io_uring (a second system-call interface the filter cannot see into)" },
    { "io_uring_enter", "io_uring" },
    { "io_uring_register", "io_uring" },
    { "fanotify_init", "filesystem-wide monitoring" },
    { "lookup_dcookie", "kernel profiling" },
    { "open_by_handle_at", "opening files by handle, around mount boundaries" },
    /* Mounts and namespaces: the sandbox's view of the world is fixed. */
    { "mount", "mounting" },
    { "umount", "unmounting" },
    { "umount2", "unmounting" },
    { "pivot_root", "changing the root" },
    { "chroot", "changing the root" },
    { "move_mount", "the new mount API" },
    { "open_tree", "the new mount API" },
    { "fsopen", "the new mount API" },
    { "fsconfig", "the new mount API" },
    { "fsmount", "the new mount API" },
    { "fspick", "the new mount API" },
    { "mount_setattr", "the new mount API" },
    { "setns", "entering other namespaces" },
    /* The machine itself. */
    { "kexec_load", "loading a new kernel" },
    { "kexec_file_load", "loading a new kernel" },
    { "init_module", "kernel modules" },
    { "finit_module", "kernel modules" },
    { "delete_module", "kernel modules" },
    { "create_module", "kernel modules" },
    { "query_module", "kernel modules" },
    { "get_kernel_syms", "kernel modules" },
    { "reboot", "rebooting" },
    { "swapon", "swap" },
    { "swapoff", "swap" },
    { "acct", "process accounting" },
    { "quotactl", "disk quotas" },
    { "quotactl_fd", "disk quotas" },
    { "nfsservctl", "the NFS server" },
    { "settimeofday", "the system clock" },
    { "stime", "the system clock" },
    { "clock_settime", "the system clock" },
    { "syslog", "the kernel log" },
    { "vhangup", "terminals" },
    { "iopl", "I/O ports" },
    { "ioperm", "I/O ports" },
    { "sethostname", "host name" },
    { "setdomainname", "domain name" },
    { "uselib", "obsolete" },
    { "ustat", "obsolete" },
    { "sysfs", "obsolete" },
    { "_sysctl", "obsolete" },
    { "vm86", "obsolete" },
    { "vm86old", "obsolete" },
    /* NUMA placement across the machine, other processes' pages. */
    { "get_mempolicy", "NUMA policy" },
    { "set_mempolicy", "NUMA policy" },
    { "set_mempolicy_home_node", "NUMA policy" },
    { "mbind", "NUMA policy" },
    { "move_pages", "another process's pages" },
    { "migrate_pages", "another process's pages" },
    /* i386's multiplexer: its arguments are behind a pointer the filter cannot read (socket() is filtered). */
    { "socketcall", "multiplexed socket calls (i386)" },
};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* personality() stays allowed, unlike Docker's profile (which allows 5 values): a filter rule cannot say "none of
 * these 5", and what the flags change stays in the sandbox: MMAP_PAGE_ZERO cannot map below mmap_min_addr without
 * CAP_SYS_RAWIO, and no_new_privs keeps a personality from reaching a setuid program. */

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, const struct scmp_arg_cmp *args) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
        printf("unknown %s\n", name); /* libseccomp of this build does not know it: nothing to deny */
        return 0;
    }
    int rc = seccomp_rule_add_array(ctx, action, nr, n, args);
    if (rc != 0) fprintf(stderr, "sbx-launch: seccomp rule for %s: %s\n", name, strerror(-rc));
    return rc;
}

int seccomp_export(const char *file) {
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) { fprintf(stderr, "sbx-launch: seccomp_init failed\n"); return 1; }
    int rc = 0;
    /* Every ABI this CPU runs gets the rules; any other architecture is refused. */
    rc |= seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, eperm);
    rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* pid 1 sets no_new_privs itself */
    rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); /* a binary tree, not a list, of system calls */
    uint32_t native = seccomp_arch_native();
    if (native == SCMP_ARCH_X86_64) {
        rc |= seccomp_arch_add(ctx, SCMP_ARCH_X86);
        rc |= seccomp_arch_add(ctx, SCMP_ARCH_X32);
    } else if (native == SCMP_ARCH_AARCH64) {
        rc |= seccomp_arch_add(ctx, SCMP_ARCH_ARM);
    }
    if (rc) { fprintf(stderr, "sbx-launch: seccomp setup failed\n"); seccomp_release(ctx); return 1; }

    for (size_t k = 0; k < sizeof DENY / sizeof DENY[0]; k++) {
        rc |= add(ctx, eperm, DENY[k].name, 0, NULL);
        printf("deny %s: %s\n", DENY[k].name, DENY[k].why);
    }
    /* New namespaces (a user namespace above all: it hands out every capability inside it). */
    for (unsigned long bit = 1; bit; bit <<= 1) {
        if (!(bit & (NS_FLAGS | CLONE_NEWTIME))) continue;
        struct scmp_arg_cmp has = SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit);
        if (bit != CLONE_NEWTIME) rc |= add(ctx, eperm, "clone", 1, &has); /* clone's low byte is the exit signal */
        rc |= add(ctx, eperm, "unshare", 1, &has);
    }
    printf("deny clone, unshare: with a new namespace\n");
    rc |= add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
    printf("enosys clone3: its flags are out of the filter's reach (libc falls back to clone)\n");
    /* AF_VSOCK reaches the hypervisor's host from inside a VM: no network namespace covers it. */
    struct scmp_arg_cmp vsock = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffff, AF_VSOCK_);
    rc |= add(ctx, eperm, "socket", 1, &vsock);
    rc |= add(ctx, eperm, "socketpair", 1, &vsock);
    printf("deny socket(AF_VSOCK): the VM host's sockets\n");
    /* Typing into a terminal and the console's ioctls (bwrap's --new-session already defeats TIOCSTI). */
    unsigned long ioctls[] = { TIOCSTI, TIOCLINUX };
    for (size_t k = 0; k < 2; k++) {
        struct scmp_arg_cmp req = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffff, ioctls[k]);
        rc |= add(ctx, eperm, "ioctl", 1, &req);
    }
    printf("deny ioctl(TIOCSTI, TIOCLINUX): typing into a terminal\n");
    if (rc) { seccomp_release(ctx); return 1; }
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) { fprintf(stderr, "sbx-launch: %s: %s\n", file, strerror(errno)); seccomp_release(ctx); return 1; }
    fchmod(fd, 0644);
    rc = seccomp_export_bpf(ctx, fd);
    close(fd);
    seccomp_release(ctx);
    if (rc) { fprintf(stderr, "sbx-launch: seccomp export: %s\n", strerror(-rc)); return 1; }
    return 0;
}

int seccomp_load_file(const char *file, char *err, size_t errlen) {
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) { snprintf(err, errlen, "%s: %s", file, strerror(errno)); return -1; }
    struct sock_filter prog[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, (char *)prog + len, sizeof prog - len)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) len += (size_t)n;
        if (len == sizeof prog) break;
    }
    close(fd);
    if (len == 0 || len % sizeof prog[0] != 0 || len == sizeof prog) {
        snprintf(err, errlen, "%s is not a BPF program (%zu bytes)", file, len);
        return -1;
    }
    struct sock_fprog fprog = { (unsigned short)(len / sizeof prog[0]), prog };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_SECCOMP): %s", strerror(errno));
        return -1;
    }
    return 0;
}
