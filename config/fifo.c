/* The line of waiting requests: a singly linked list in ticket order. */
#include "fifo.h"

#include <time.h>

void fifo_init(struct fifo *q)
{
    q->head = NULL;
    q->tickets = 0;
}

int fifo_turn(const struct fifo *q, const struct fifo_waiter *w)
{
    return w->queued ? q->head == w : !q->head;
}

uint64_t fifo_ticket(struct fifo *q)
{
    return ++q->tickets;
}

void fifo_join(struct fifo *q, struct fifo_waiter *w)
{
    if (w->queued)
        return;
    if (!w->ticket)
        w->ticket = fifo_ticket(q);
    struct fifo_waiter **pp = &q->head;
    while (*pp && (*pp)->ticket < w->ticket)
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    w->queued = 1;
}

void fifo_leave(struct fifo *q, struct fifo_waiter *w, pthread_cond_t *cond)
{
    if (!w->queued)
        return;
    struct fifo_waiter **pp = &q->head;
    while (*pp != w)
        pp = &(*pp)->next;
    *pp = w->next;
    w->queued = 0;
    pthread_cond_broadcast(cond);
}

void fifo_sleep(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t wake_ms)
{
    if (!wake_ms) {
        pthread_cond_wait(cond, lock);
        return;
    }
    struct timespec ts = {.tv_sec = wake_ms / 1000, .tv_nsec = (wake_ms % 1000) * 1000000};
    pthread_cond_timedwait(cond, lock, &ts);
}

int64_t fifo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fifo_count(const struct fifo *q)
{
    int n = 0;
    for (const struct fifo_waiter *w = q->head; w; w = w->next)
        n++;
    return n;
}
