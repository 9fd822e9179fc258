/* Buffers of the frame files being read, all together bounded in bytes. A handle holds its
 * buffer while a read fills it and parks it between reads, so its next read finds the
 * frame still there; a buffer parked for a while, or one whose handle closed, is taken
 * back when another needs the room. A request that finds the room held by reads in
 * progress waits for one to park, in arrival order. */
#ifndef VIDFS_BUFPOOL_H
#define VIDFS_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool;
struct bufpool_mem;

/* A handle's claim on one buffer; zero-initialised, ended with bufpool_drop. */
struct bufpool_buf {
    uint8_t *data; /* valid between bufpool_hold and bufpool_park */
    struct bufpool_mem *mem;
};

int bufpool_new(size_t max_bytes, struct bufpool **out);
void bufpool_free(struct bufpool **p);

/* Holds b with at least size bytes at b->data, waiting for room. 1: the contents are
 * those b had when parked; 0: new or taken back since (contents undefined); -ENOMEM. A
 * request larger than the bound is served alone. */
int bufpool_hold(struct bufpool *p, struct bufpool_buf *b, size_t size);
/* Ends a hold: the contents stay for b's next hold unless the room is needed. */
void bufpool_park(struct bufpool *p, struct bufpool_buf *b);
/* Gives b's buffer (held or parked) back for others to reuse. */
void bufpool_drop(struct bufpool *p, struct bufpool_buf *b);
/* Frees the buffers no handle holds or has parked (memory returned when idle). */
void bufpool_trim(struct bufpool *p);

struct bufpool_stats {
    uint64_t bytes, max_bytes, allocs, taken_back, waits;
};
void bufpool_stats(struct bufpool *p, struct bufpool_stats *st);

#endif
