/*
 * sysprobe: the agent's side of Purple's seccomp tests, built static and
 * non-PIE (its data must sit below 4 GiB for the 32-bit entry point). Each
 * step makes one real system call and prints one line: "ok RET" or
 * "err ERRNO-NAME"; steps are separated by "--". Exit status 0.
 *
 *   sysprobe raw NR [ARG...]       syscall(NR, ARG...) through the 64-bit entry point
 *   sysprobe int80 NR [ARG...]     the same through int 0x80 (the i386 ABI, its numbers)
 *   sysprobe x32 NR [ARG...]       the x32 ABI: NR | __X32_SYSCALL_BIT, 64-bit entry
 *   sysprobe uring-mkdir PATH      io_uring_setup, then IORING_OP_MKDIRAT of PATH (0755)
 *
 * ARG is a number (strtoull: 0x.., 0.., -100 for AT_FDCWD) or s:TEXT, a
 * pointer to TEXT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Strings for int 0x80 live here: .bss of a non-PIE static binary is below 4 GiB. */
static char low[6][256];

static void report(long ret) {
    if (ret < 0)
        printf("err %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("ok %ld\n", ret);
    fflush(stdout);
}

static uint64_t arg(const char *s, int i) {
    if (strncmp(s, "s:", 2) == 0) {
        strncpy(low[i], s + 2, sizeof low[i] - 1);
        return (uint64_t)(uintptr_t)low[i];
    }
    return strtoull(s, NULL, 0);
}

static long int80(long nr, uint64_t *a) {
    int ret;
    /* Five arguments are enough for the tests; the sixth would need ebp. */
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4])
                     : "memory");
    if (ret < 0 && ret > -4096) {
        errno = -ret;
        return -1;
    }
    return ret;
}

static long uring_mkdir(const char *path) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return -1;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes =
        mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return -1;
    struct io_uring_sqe *sqe = &sqes[0];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_MKDIRAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (uint64_t)(uintptr_t)path;
    sqe->len = 0755;
    uint32_t *tail = (uint32_t *)(sq + p.sq_off.tail);
    uint32_t mask = *(uint32_t *)(sq + p.sq_off.ring_mask);
    ((uint32_t *)(sq + p.sq_off.array))[*tail & mask] = 0;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return -1;
    uint32_t head = *(uint32_t *)(cq + p.cq_off.head);
    struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
                               (head & *(uint32_t *)(cq + p.cq_off.ring_mask));
    if (cqe->res < 0) {
        errno = -cqe->res;
        return -1;
    }
    return cqe->res;
}

static void step(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[0], "uring-mkdir") == 0) {
        report(uring_mkdir(argv[1]));
        return;
    }
    if (argc < 2 || argc > 8) {
        printf("usage: sysprobe raw|int80|x32 NR [ARG...] | uring-mkdir PATH\n");
        exit(2);
    }
    long nr = strtol(argv[1], NULL, 0);
    uint64_t a[6] = {0};
    for (int i = 2; i < argc; i++)
        a[i - 2] = arg(argv[i], i - 2);
    if (strcmp(argv[0], "raw") == 0)
        report(syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
    else if (strcmp(argv[0], "int80") == 0)
        report(int80(nr, a));
    else if (strcmp(argv[0], "x32") == 0)
        report(syscall(nr | 0x40000000, a[0], a[1], a[2], a[3], a[4], a[5]));
    else {
        printf("unknown mode %s\n", argv[0]);
        exit(2);
    }
}

int main(int argc, char **argv) {
    int start = 1;
    for (int i = 1; i <= argc; i++) {
        if (i == argc || strcmp(argv[i], "--") == 0) {
            step(i - start, argv + start);
            start = i + 1;
        }
    }
    return 0;
}
