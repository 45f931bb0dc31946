/*
 * grid-launch: start a process runtime job under its limits, in one exec.
 *
 *   grid-launch PARENT_PID AS_BYTES CPU_SOFT CPU_HARD FSIZE_BYTES -- COMMAND [ARG...]
 *
 * Sets RLIMIT_AS (skipped when AS_BYTES is 0: GPU jobs), RLIMIT_CPU, RLIMIT_CORE 0 and
 * RLIMIT_FSIZE, asks for SIGKILL when the parent dies (PR_SET_PDEATHSIG), then execs COMMAND.
 * It does what util-linux's `setpriv --pdeathsig KILL -- prlimit ... --` does in two dynamically
 * linked execs, in one small static one (executor/runtimes/process.py; built by
 * scripts/build_launcher.sh). Hard limits are set too, so the job cannot raise them again.
 *
 * Exit status 125: bad arguments, or a limit could not be set (nothing was run); 126: the parent
 * was already gone (nothing was run); 127: COMMAND could not be executed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static int number(const char *text, unsigned long long *value) {
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9') return 0;
    errno = 0;
    *value = strtoull(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

static int limit(int resource, rlim_t soft, rlim_t hard, const char *name) {
    struct rlimit value = {soft, hard};
    if (setrlimit(resource, &value) == 0) return 1;
    fprintf(stderr, "grid-launch: cannot set %s: %s\n", name, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    unsigned long long parent, as, cpu_soft, cpu_hard, fsize;
    if (argc < 8 || strcmp(argv[6], "--") != 0 || !number(argv[1], &parent) || !number(argv[2], &as) ||
        !number(argv[3], &cpu_soft) || !number(argv[4], &cpu_hard) || !number(argv[5], &fsize) ||
        cpu_soft > cpu_hard) {
        fprintf(stderr, "usage: grid-launch PARENT_PID AS_BYTES CPU_SOFT CPU_HARD FSIZE_BYTES -- COMMAND [ARG...]\n");
        return 125;
    }
    if ((as && !limit(RLIMIT_AS, as, as, "RLIMIT_AS")) || !limit(RLIMIT_CPU, cpu_soft, cpu_hard, "RLIMIT_CPU") ||
        !limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE") || !limit(RLIMIT_FSIZE, fsize, fsize, "RLIMIT_FSIZE")) {
        return 125;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "grid-launch: cannot set the death signal: %s\n", strerror(errno));
        return 125;
    }
    /* The parent may have died before the death signal was asked for: then it never comes. */
    if ((unsigned long long)getppid() != parent) return 126;
    execvp(argv[7], argv + 7);
    fprintf(stderr, "grid-launch: cannot execute %s: %s\n", argv[7], strerror(errno));
    return 127;
}
