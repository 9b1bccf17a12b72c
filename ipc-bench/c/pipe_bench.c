/* pipe_bench.c: the ipc-bench lesson's pipe and socketpair loops, in C, with the
 * same system calls, for the side-by-side comparison in the book's chapter.
 *
 * Usage: pipe_bench pipe|socketpair SIZE BYTES ROUNDS REPS
 *
 * Like the Rust lesson: fork; the child streams BYTES/SIZE messages of SIZE bytes
 * (at most BYTES/256 of them; partial writes resent), the parent reads them into a
 * buffer of SIZE bytes and sums every byte (the same checksum); then ROUNDS round trips
 * of 64 bytes. Pipes get F_SETPIPE_SZ 1 MiB. Each figure is the best of REPS.
 * Output, one line per figure:
 *   c <mechanism> tp <size> <GB/s>
 *   c <mechanism> rt 64 <median ns> <p99 ns>
 * Built and run by ipc-bench/c/compare.sh; not part of the tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMALL 64

static void die(const char *what) {
    perror(what);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += k;
        n -= (size_t)k;
    }
}

static void read_exact(int fd, unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        if (k == 0) {
            fprintf(stderr, "read: end of file\n");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* The lesson's checksum: the sum of the bytes, in blocks of 256 into 16 bits. */
static uint64_t checksum(const unsigned char *p, size_t n) {
    uint64_t total = 0;
    while (n > 0) {
        size_t chunk = n < 256 ? n : 256;
        uint16_t sum = 0;
        for (size_t i = 0; i < chunk; i++) sum += p[i];
        total += sum;
        p += chunk;
        n -= chunk;
    }
    return total;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "Usage: %s pipe|socketpair SIZE BYTES ROUNDS REPS\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    size_t size = strtoul(argv[2], NULL, 10);
    uint64_t bytes = strtoull(argv[3], NULL, 10);
    unsigned long rounds = strtoul(argv[4], NULL, 10);
    unsigned reps = (unsigned)strtoul(argv[5], NULL, 10);
    if (size == 0 || bytes == 0 || rounds == 0 || reps == 0) {
        fprintf(stderr, "%s: every number must be positive\n", argv[0]);
        return 2;
    }
    uint64_t max_messages = bytes / 256 > 16 ? bytes / 256 : 16;
    uint64_t count = bytes / size;
    if (count < 1) count = 1;
    if (count > max_messages) count = max_messages;

    int a_rx, a_tx, b_rx, b_tx; /* a: the measuring parent, b: the child */
    if (strcmp(name, "pipe") == 0) {
        int to_a[2], to_b[2];
        if (pipe2(to_a, O_CLOEXEC) < 0 || pipe2(to_b, O_CLOEXEC) < 0) die("pipe2");
        fcntl(to_a[1], F_SETPIPE_SZ, 1 << 20);
        fcntl(to_b[1], F_SETPIPE_SZ, 1 << 20);
        a_rx = to_a[0], b_tx = to_a[1], b_rx = to_b[0], a_tx = to_b[1];
    } else {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) die("socketpair");
        a_rx = a_tx = pair[0];
        b_rx = b_tx = pair[1];
    }
    unsigned char *message = malloc(size), *buffer = malloc(size);
    uint64_t *times = malloc(rounds * sizeof *times);
    if (!message || !buffer || !times) die("malloc");
    for (size_t i = 0; i < size; i++) message[i] = (unsigned char)(i % 251 + 1);
    uint64_t expected = checksum(message, size) * count;

    fflush(stdout);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(a_rx);
        if (a_tx != a_rx) close(a_tx);
        unsigned char go, echo[SMALL];
        for (unsigned rep = 0; rep < reps; rep++) {
            read_exact(b_rx, &go, 1);
            for (uint64_t m = 0; m < count; m++) write_all(b_tx, message, size);
            for (unsigned long r = 0; r < rounds; r++) {
                read_exact(b_rx, echo, SMALL);
                write_all(b_tx, echo, SMALL);
            }
        }
        _exit(0);
    }
    close(b_rx);
    if (b_tx != b_rx) close(b_tx);

    double best_rate = 0;
    uint64_t best_median = UINT64_MAX, best_p99 = 0;
    unsigned char request[SMALL];
    memcpy(request, message, SMALL < size ? SMALL : size);
    for (unsigned rep = 0; rep < reps; rep++) {
        uint64_t total = (uint64_t)size * count, got = 0, sum = 0;
        uint64_t start = now_ns();
        write_all(a_tx, (const unsigned char *)"g", 1);
        while (got < total) {
            size_t max = total - got < size ? (size_t)(total - got) : size;
            ssize_t k = read(a_rx, buffer, max);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) die("read stream");
            sum += checksum(buffer, (size_t)k);
            got += (uint64_t)k;
        }
        double rate = (double)got / (double)(now_ns() - start);
        if (sum != expected) {
            fprintf(stderr, "checksum %llu, sent %llu\n", (unsigned long long)sum,
                    (unsigned long long)expected);
            return 1;
        }
        if (rate > best_rate) best_rate = rate;
        for (unsigned long r = 0; r < rounds; r++) {
            uint64_t t = now_ns();
            write_all(a_tx, request, SMALL);
            read_exact(a_rx, buffer, SMALL);
            times[r] = now_ns() - t;
        }
        qsort(times, rounds, sizeof *times, compare);
        uint64_t median = times[(rounds * 50 + 99) / 100 - 1];
        if (median < best_median) {
            best_median = median;
            best_p99 = times[(rounds * 99 + 99) / 100 - 1];
        }
    }
    int status;
    if (waitpid(child, &status, 0) < 0) die("waitpid");
    printf("c %s tp %zu %.3f\n", name, size, best_rate);
    printf("c %s rt %d %llu %llu\n", name, SMALL, (unsigned long long)best_median,
           (unsigned long long)best_p99);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
