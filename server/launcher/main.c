/*
 * sbx-launch: starts one sandboxed program and reports what the kernel accounted for it.
 *
 *   sbx-launch [-r RESOURCE=LIMIT]... [-c CGROUP_PROCS_FILE]... [-b] -- PROGRAM [ARG]...
 *   sbx-launch --init [-u [-w]] [-s SECCOMP_BPF] [-r RESOURCE=LIMIT]... -- PROGRAM [ARG]...   (pid 1 of a sandbox)
 *   sbx-launch --zygote SOCKET [-i UID:GID [-M NEWUIDMAP -N NEWGIDMAP]] [CGROUP_PROCS_FILE]...
 *   sbx-launch --userns-exec UID:GID [-M NEWUIDMAP -N NEWGIDMAP] -- COMMAND [ARG]...   (the server's trial sandbox)
 *   sbx-launch --seccomp-export FILE      (writes the sandbox's seccomp filter as BPF; prints what it denies)
 *
 * launch.c: the launcher proper (the outer one watching bwrap from the host with -b, and pid 1 inside with --init).
 * zygote.c: the process that forks launchers for the server. identity.c: the user namespace of a pool worker, in
 * which the sandbox user is an unprivileged host uid that owns nothing. seccomp.c: the filter every sandboxed
 * program runs under.
 */
#include "launcher.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--zygote") == 0) return zygote(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "--userns-exec") == 0) return userns_exec(argc - 1, argv + 1);
    if (argc == 3 && strcmp(argv[1], "--seccomp-export") == 0) return seccomp_export(argv[2]);
    return launch(argc, argv);
}
