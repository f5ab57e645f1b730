/*
 * A known number of syscalls, for the trail's syscall counts:
 *   syscount N          N getppid calls (x86_64 110)
 *   syscount N int80    N getppid calls through int 0x80 (i386 64)
 * Built static and non-PIE by the tests (integration/tests/trail_syscalls.rs).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 0;
    int compat = argc > 2 && strcmp(argv[2], "int80") == 0;
    for (long i = 0; i < n; i++) {
        if (compat) {
            int ret;
            __asm__ volatile("int $0x80" : "=a"(ret) : "a"(64) : "memory");
        } else {
            syscall(SYS_getppid);
        }
    }
    return 0;
}
