/*
 * sbx-launch: the one native piece of the sandbox. See main.c for its modes, launch.c for a run, zygote.c for how
 * the server starts runs cheaply, identity.c for the user namespace a sandbox runs in, seccomp.c for its filter.
 */
#pragma once
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

/* The launcher's report to the server (a Unix socket in the zygote's case). Never handed to a program. */
#define REPORT_FD 3
/* What bwrap hands on to the inner launcher (pid 1 of a sandbox): the write end of its report pipe, which the outer
 * launcher reads, bounds and relays; and the read end of the lifeline, whose other end only the outer launcher
 * holds: when it closes (the outer launcher stops or dies), pid 1 kills the sandbox. */
#define INNER_REPORT_FD 3
#define LIFELINE_FD 4
/* Most bytes of an inner report the outer launcher relays (a real one is under 200). */
#define INNER_REPORT_MAX 4096

/* The sandbox user inside its user namespace ("nobody"): pid 1 switches to it before the program starts. */
#define SANDBOX_ID 65534

/* launch.c: the report, descriptors, cgroups */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void write_all(int fd, const char *buf, size_t len);
void close_from(int low);
int join_cgroup(const char *procs);
int move_fd_high(int fd);

/* launch.c */
int launch(int argc, char **argv);

/* zygote.c */
int zygote(int argc, char **argv);

/* identity.c: a user namespace in which uid/gid 0 are the server's own ids and SANDBOX_ID is `uid`/`gid` on the
 * host; the caller enters it (as its root, with every capability in it and none outside) and drops its
 * supplementary groups. `newuidmap`/`newgidmap` (Debian's uidmap) write the maps when the caller is not root.
 * Returns 0, or -1 with a message in `err`. */
int enter_sandbox_userns(uid_t uid, gid_t gid, const char *newuidmap, const char *newgidmap, char *err, size_t errlen);
/* In pid 1 of a sandbox started by root-in-that-namespace: drop every capability and become SANDBOX_ID. */
int become_sandbox_user(char *err, size_t errlen);
int userns_exec(int argc, char **argv);

/* seccomp.c */
int seccomp_export(const char *file);
int seccomp_load_file(const char *file, char *err, size_t errlen);
