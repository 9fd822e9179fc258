/* Requests waiting in arrival order on one condition variable (decoder slots, frame
 * buffers): only the first in line may take what comes free, so that no request waits
 * behind later ones (under 64 readers, unordered wake-ups let some wait a minute). All
 * calls under the mutex the condition variable goes with. */
#ifndef VIDFS_FIFO_H
#define VIDFS_FIFO_H

#include <pthread.h>
#include <stdint.h>

struct fifo_waiter {
    struct fifo_waiter *next;
    int queued;
    /* Place in line, kept by a request that comes back for more (0: a new one, numbered
     * on joining). The line is in ticket order. */
    uint64_t ticket;
};

struct fifo {
    struct fifo_waiter *head;
    uint64_t tickets;
};

void fifo_init(struct fifo *q);
/* 1 when w may take what is free: first in line, or not in line behind anyone. */
int fifo_turn(const struct fifo *q, const struct fifo_waiter *w);
/* A new place in line, later than every one given so far. */
uint64_t fifo_ticket(struct fifo *q);
/* Puts w in line by its ticket: a new one (ticket 0) at the end, one that keeps an older
 * ticket before every later one (no-op when in line). */
void fifo_join(struct fifo *q, struct fifo_waiter *w);
/* Takes w out of the line and wakes the others on cond: the next may go now. */
void fifo_leave(struct fifo *q, struct fifo_waiter *w, pthread_cond_t *cond);
/* Waits on cond (made for CLOCK_MONOTONIC) until woken or until wake_ms, monotonic
 * milliseconds (0: until woken). */
void fifo_sleep(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t wake_ms);
/* Monotonic milliseconds. */
int64_t fifo_now_ms(void);
/* Requests in line. */
int fifo_count(const struct fifo *q);

#endif
