/* Long work going on now (indexing a source, making a segment): a fixed table of what runs,
 * which stats.json lists, and a log line for work that runs past a second. Thread-safe;
 * the table is the process's, as the log is. */
#ifndef VIDFS_PROGRESS_H
#define VIDFS_PROGRESS_H

#include <stdint.h>
#include <time.h>

enum progress_kind { PROGRESS_INDEX, PROGRESS_SEGMENT };

#define PROGRESS_NAME_MAX 512
/* At most this many listed at once; more work runs unlisted. */
#define PROGRESS_SLOTS 64

struct progress;

/* Lists work of this kind on name (copied) that counts done in units (a static string:
 * "bytes", "frames", "packets") up to total (0: unknown). NULL when the table is full: the
 * work goes on unlisted, and progress_update and progress_end accept NULL. */
struct progress *progress_begin(enum progress_kind kind, const char *name, uint64_t total,
                                const char *unit);

/* done units so far; logs once, at info, that the work has run for over a second. Cheap
 * enough for every packet: an atomic store and a coarse clock. */
void progress_update(struct progress *p, uint64_t done);

/* Takes the work off the list and NULLs *p. Its end is logged by the caller, which knows
 * what was made. */
void progress_end(struct progress **p);

struct progress_info {
    enum progress_kind kind;
    char name[PROGRESS_NAME_MAX];
    const char *unit;
    uint64_t done, total;
    time_t started;  /* wall clock */
    double seconds;  /* running for */
};

/* Copies up to max of the works running now into out; returns how many.
 * Work past a second not yet logged (no update since) is logged here. */
int progress_list(struct progress_info *out, int max);

/* "index" or "segment". */
const char *progress_kind_name(enum progress_kind kind);

#endif
