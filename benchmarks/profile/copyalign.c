/* How the speed of a cached read depends on where in a page the
 * destination buffer starts. No Python: the kernel's copy from the page
 * cache into user memory, for every 16-byte destination offset within a
 * page (0, 16, ..., 4080).
 *
 *     cc -O2 -o /tmp/copyalign benchmarks/profile/copyalign.c
 *     /tmp/copyalign FILE [CHUNK [BYTES [PASSES]]]
 *
 * FILE should be in the page cache (cat it to /dev/null first). Each pass
 * reads the first BYTES of FILE (default 32 MiB) in CHUNK-sized pread64
 * calls (default 65536) once per offset, in turn, so drift hits all
 * offsets alike. Printed: the time per call at each offset class (the
 * offset modulo 64) relative to the page-aligned destination, the spread
 * over all 256 offsets, and the slowest offsets.
 *
 * Why it matters: a read's bytes object starts 32 bytes into a malloc
 * block, so where its data lands within a page is decided by the heap's
 * history, the same in every run of the same program and different for
 * a different one (docs/performance.md, "Streaming with iter_chunked"). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"

#define OFFSETS 256

int main(int argc, char **argv)
{
    int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
    size_t chunk = argc > 2 ? (size_t)atol(argv[2]) : 65536;
    long long bytes = argc > 3 ? atoll(argv[3]) : 32LL << 20;
    int passes = argc > 4 ? atoi(argv[4]) : 3;
    double total[OFFSETS] = {0}, ratio[OFFSETS], sorted[OFFSETS], cls[4] = {0};
    long long calls;
    char *buf;

    if (fd < 0 || chunk == 0 || bytes < (long long)chunk || passes <= 0) {
        fprintf(stderr, "usage: %s FILE [CHUNK [BYTES [PASSES]]]\n", argv[0]);
        return 2;
    }
    if (lseek(fd, 0, SEEK_END) < bytes) {
        fprintf(stderr, "%s: shorter than %lld bytes\n", argv[1], bytes);
        return 2;
    }
    calls = bytes / (long long)chunk;
    if ((buf = aligned_alloc(4096, (chunk + 8191) / 4096 * 4096)) == NULL)
        return 1;
    for (int p = 0; p < passes; p++) {
        for (int k = 0; k < OFFSETS; k++) {
            double t = now_ns();

            for (long long i = 0; i < calls; i++) {
                if (pread(fd, buf + k * 16, chunk, (off_t)(i * (long long)chunk)) <= 0) {
                    perror("pread");
                    return 1;
                }
            }
            total[k] += now_ns() - t;
        }
    }
    for (int k = 0; k < OFFSETS; k++) {
        ratio[k] = sorted[k] = total[k] / total[0];
        cls[k % 4] += ratio[k] / (OFFSETS / 4);
    }
    qsort(sorted, OFFSETS, sizeof *sorted, by_value);
    printf("%lld reads of %zu bytes per offset, %d passes; offset 0: %.3f us per read\n", calls,
           chunk, passes, total[0] / passes / calls / 1e3);
    for (int c = 0; c < 4; c++)
        printf("offsets = %2d mod 64: mean %.3fx offset 0\n", c * 16, cls[c]);
    printf("all offsets: min %.3f, 10th %.3f, median %.3f, 90th %.3f, max %.3f\n", sorted[0],
           sorted[OFFSETS / 10], sorted[OFFSETS / 2], sorted[OFFSETS * 9 / 10],
           sorted[OFFSETS - 1]);
    printf("slowest:");
    for (int n = 0; n < 5; n++) {
        int worst = 0;

        for (int k = 1; k < OFFSETS; k++)
            if (ratio[k] > ratio[worst])
                worst = k;
        printf(" %d (%.3fx)", worst * 16, ratio[worst]);
        ratio[worst] = 0;
    }
    printf("\n");
    free(buf);
    close(fd);
    return 0;
}
