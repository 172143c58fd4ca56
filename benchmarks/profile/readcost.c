/* What one cached 4 KiB read costs the kernel, by the system call that
 * asks for it: pread64, preadv2 (one iovec) and preadv2 with RWF_NOWAIT
 * (caio's page-cache fast path). No Python: the floor under
 * ops.py's `pread` and `read-uring` rows.
 *
 *     cc -O2 -o /tmp/readcost benchmarks/profile/readcost.c
 *     /tmp/readcost FILE [READS_PER_ROUND [ROUNDS]]
 *
 * FILE should be in the page cache (cat it to /dev/null first). The three
 * calls take turns, one round of READS_PER_ROUND random block-aligned
 * reads each, so drift hits them alike; printed: the median over rounds
 * in ns per call, and of each round's ratio to pread64. A read that
 * RWF_NOWAIT refuses (EAGAIN: a page left the cache) is redone without the
 * flag and counted. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"

enum { PREAD, PREADV2, NOWAIT, KINDS };
static const char *const names[KINDS] = {"pread64", "preadv2", "preadv2 RWF_NOWAIT"};

int main(int argc, char **argv)
{
    long per_round = argc > 2 ? atol(argv[2]) : 200000;
    int rounds = argc > 3 ? atoi(argv[3]) : 15;    /* at most 1024 */
    int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
    off_t blocks;
    unsigned seed = 1;
    long refused = 0;
    char *buf;
    off_t *offsets;
    double *times[KINDS];

    if (fd < 0 || per_round <= 0 || rounds <= 0 || rounds > 1024) {
        fprintf(stderr, "usage: %s FILE [READS_PER_ROUND [ROUNDS]]\n", argv[0]);
        return 2;
    }
    blocks = lseek(fd, 0, SEEK_END) / 4096;
    buf = aligned_alloc(4096, 4096);
    offsets = malloc(per_round * sizeof *offsets);
    for (int k = 0; k < KINDS; k++)
        times[k] = malloc(rounds * sizeof(double));
    if (blocks <= 0 || !buf || !offsets || !times[0] || !times[1] || !times[2]) {
        fprintf(stderr, "%s: empty file or out of memory\n", argv[1]);
        return 2;
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < KINDS; k++) {
            int kind = (k + r) % KINDS;     /* rotate who goes first */
            double start;

            for (long i = 0; i < per_round; i++) {
                seed = seed * 1103515245u + 12345u;
                offsets[i] = (off_t)((seed >> 4) % (unsigned)blocks) * 4096;
            }
            start = now_ns();
            for (long i = 0; i < per_round; i++) {
                struct iovec iov = {buf, 4096};
                ssize_t n;

                if (kind == PREAD)
                    n = pread(fd, buf, 4096, offsets[i]);
                else
                    n = preadv2(fd, &iov, 1, offsets[i], kind == NOWAIT ? RWF_NOWAIT : 0);
                if (n < 0 && errno == EAGAIN && kind == NOWAIT) {
                    refused++;
                    n = pread(fd, buf, 4096, offsets[i]);
                }
                if (n != 4096) {
                    perror("read");
                    return 1;
                }
            }
            times[kind][r] = (now_ns() - start) / per_round;
        }
    }
    /* Paired by round: each round's ratio to pread64, then medians. */
    for (int k = 0; k < KINDS; k++) {
        double ratio[2][1024];
        int n = rounds < 1024 ? rounds : 1024;

        for (int r = 0; r < n; r++)
            ratio[0][r] = times[k][r] / times[PREAD][r];
        qsort(ratio[0], n, sizeof(double), by_value);
        for (int r = 0; r < n; r++)
            ratio[1][r] = times[k][r];
        qsort(ratio[1], n, sizeof(double), by_value);
        printf("%-20s %7.0f ns/call  %.3fx pread64 (rounds: %.3f-%.3f)\n", names[k],
               ratio[1][n / 2], ratio[0][n / 2], ratio[0][0], ratio[0][n - 1]);
    }
    printf("%d rounds of %ld reads each; RWF_NOWAIT refused %ld\n", rounds, per_round, refused);
    return 0;
}
