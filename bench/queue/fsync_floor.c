/*
 * The disk's floor under bench/queue's trickle (SYSTEMS=disk): no database,
 * only what every durable commit waits for. A 16 MB file, preallocated and
 * synced like a WAL segment, in DIR (the server's own file system); then
 * RATE times a second for COUNT writes: one 8 kB page written at the WAL's
 * pace (about 1 kB of WAL per enqueue, so each page is rewritten about
 * eight times before the next, as a commit rewrites the partly filled WAL
 * page) and fdatasync(), PostgreSQL's default wal_sync_method on Linux.
 * Each write+sync is timed; prints "P50_MS P99_MS MAX_MS". An enqueue
 * durably committed cannot return before its WAL is synced, so no queue's
 * call->start p99 in the same run can be below this one's by much.
 *
 *   fsync_floor DIR RATE COUNT
 *
 * Bench code, not part of apexops; built by bench/queue/run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEGMENT (16L << 20)
#define PAGE	8192L

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	static char page[PAGE];
	char path[4096];
	struct timespec due;
	long long *lat, step_ns;
	long rate, count;
	int fd;

	if (argc != 4 || (rate = strtol(argv[2], NULL, 10)) <= 0 ||
	    (count = strtol(argv[3], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: fsync_floor DIR RATE COUNT\n");
		return 64;
	}
	snprintf(path, sizeof(path), "%s/fsync_floor.seg", argv[1]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	lat = calloc((size_t)count, sizeof(*lat));
	if (fd < 0 || lat == NULL) {
		fprintf(stderr, "fsync_floor: cannot create %s\n", path);
		return 1;
	}
	memset(page, 0, sizeof(page));
	for (long off = 0; off < SEGMENT; off += PAGE)
		if (pwrite(fd, page, PAGE, off) != PAGE) {
			fprintf(stderr, "fsync_floor: cannot write %s\n", path);
			return 1;
		}
	if (fsync(fd) != 0) {
		fprintf(stderr, "fsync_floor: cannot sync %s\n", path);
		return 1;
	}
	step_ns = 1000000000LL / rate;
	clock_gettime(CLOCK_MONOTONIC, &due);
	for (long k = 0; k < count; k++) {
		long off = (k * 1024 / PAGE * PAGE) % SEGMENT;
		long long t;

		due.tv_nsec += (long)step_ns;
		while (due.tv_nsec >= 1000000000L) {
			due.tv_nsec -= 1000000000L;
			due.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due,
				       NULL) != 0)
			;
		memset(page + (k * 1024) % PAGE, (int)(k & 0x7f) + 1, 1024);
		t = now_ns();
		if (pwrite(fd, page, PAGE, off) != PAGE || fdatasync(fd) != 0) {
			fprintf(stderr, "fsync_floor: cannot write %s\n", path);
			return 1;
		}
		lat[k] = now_ns() - t;
	}
	close(fd);
	unlink(path);
	qsort(lat, (size_t)count, sizeof(*lat), cmp_ll);
	printf("%.3f %.3f %.3f\n", lat[count / 2] / 1e6,
	       lat[(count * 99) / 100 < count ? (count * 99) / 100
					      : count - 1] /
		       1e6,
	       lat[count - 1] / 1e6);
	free(lat);
	return 0;
}
