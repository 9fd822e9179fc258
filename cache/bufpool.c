/* Frame file buffers under one bound. Each buffer is its own mapping: freeing one gives
 * its pages back at once, where a heap chunk would stay in its thread's arena. Parked
 * buffers sit on one list, least recently parked first; those whose handle closed stay
 * there for the next request of the same size (a sequential reader's next frame file),
 * warm, until the room is needed or the mount goes idle. */
#include "bufpool.h"
#include "fifo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* How long a handle's parked buffer is kept for it against others' requests. Far above
 * the gap between the reads of one file, short for a request waiting for the room. */
#define STALE_MS 1000
/* Buffers of closed files kept for reuse: a few frames, enough for the next frame file of
 * a sequential reader or two to find its buffer warm. */
#define FREE_KEEP ((size_t)32 << 20)

struct bufpool_mem {
    uint8_t *data;
    size_t size;               /* mapped bytes */
    struct bufpool_buf *owner; /* NULL: free for any request of this size */
    int held;
    int64_t parked_at;               /* ms, monotonic */
    struct bufpool_mem *prev, *next; /* the parked list, while not held */
};

struct bufpool {
    pthread_mutex_t lock;
    pthread_cond_t room; /* a buffer parked or was given back */
    size_t bytes;        /* mapped, held or parked */
    size_t free_bytes;   /* of those, parked with no owner */
    struct bufpool_mem *head, *tail;
    struct fifo queue; /* requests waiting for room */
    struct bufpool_stats st; /* allocs, taken_back, waits; bytes and max_bytes on read */
};

#ifdef __SANITIZE_ADDRESS__
/* Under ASan, heap buffers of the exact size: a write past a frame is reported. */
static size_t buf_size(size_t size)
{
    return size;
}

static void *buf_alloc(size_t size)
{
    return malloc(size);
}

static void buf_free(void *data, size_t size)
{
    (void)size;
    free(data);
}
#else
static size_t buf_size(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) / page * page;
}

static void *buf_alloc(size_t size)
{
    void *data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return data == MAP_FAILED ? NULL : data;
}

static void buf_free(void *data, size_t size)
{
    munmap(data, size);
}
#endif

int bufpool_new(size_t max_bytes, struct bufpool **out)
{
    struct bufpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* for the end of a park */
    pthread_cond_init(&p->room, &ca);
    pthread_condattr_destroy(&ca);
    p->st.max_bytes = max_bytes;
    fifo_init(&p->queue);
    *out = p;
    return 0;
}

static void list_unlink(struct bufpool *p, struct bufpool_mem *m)
{
    *(m->prev ? &m->prev->next : &p->head) = m->next;
    *(m->next ? &m->next->prev : &p->tail) = m->prev;
    m->prev = m->next = NULL;
}

static void list_append(struct bufpool *p, struct bufpool_mem *m)
{
    m->prev = p->tail;
    m->next = NULL;
    *(p->tail ? &p->tail->next : &p->head) = m;
    p->tail = m;
}

/* Frees m, which is on no list and has no owner. */
static void mem_free(struct bufpool *p, struct bufpool_mem *m)
{
    buf_free(m->data, m->size);
    p->bytes -= m->size;
    free(m);
}

/* Takes parked m off the list. Under the lock. */
static void unpark(struct bufpool *p, struct bufpool_mem *m)
{
    list_unlink(p, m);
    if (!m->owner)
        p->free_bytes -= m->size;
}

/* Takes parked m back from the list and its owner, and frees it. Under the lock. */
static void take_back(struct bufpool *p, struct bufpool_mem *m)
{
    unpark(p, m);
    if (m->owner) {
        m->owner->mem = NULL;
        p->st.taken_back++;
    }
    mem_free(p, m);
}

void bufpool_free(struct bufpool **pp)
{
    struct bufpool *p = *pp;
    if (!p)
        return;
    while (p->head)
        take_back(p, p->head);
    pthread_cond_destroy(&p->room);
    pthread_mutex_destroy(&p->lock);
    free(p);
    *pp = NULL;
}

/* A buffer of size bytes for a request that may go now, or NULL to wait (until *wake, ms,
 * when a parked buffer goes stale; 0: until one parks). Frees stale buffers, oldest
 * first, to make room. -ENOMEM in *err when mapping fails. Under the lock. */
static struct bufpool_mem *find_room(struct bufpool *p, size_t size, int64_t *wake, int *err)
{
    int64_t now = fifo_now_ms();
    *wake = 0;
    for (struct bufpool_mem *m = p->head; m; m = m->next)
        if (!m->owner && m->size == size) {
            unpark(p, m);
            return m;
        }
    for (struct bufpool_mem *m = p->head, *next; m && p->bytes + size > p->st.max_bytes;
         m = next) {
        next = m->next;
        if (!m->owner || now - m->parked_at >= STALE_MS)
            take_back(p, m);
        else if (!*wake || m->parked_at + STALE_MS < *wake)
            *wake = m->parked_at + STALE_MS;
    }
    if (p->bytes && p->bytes + size > p->st.max_bytes)
        return NULL;
    struct bufpool_mem *m = calloc(1, sizeof(*m));
    void *data = m ? buf_alloc(size) : NULL;
    if (!data) {
        free(m);
        *err = -ENOMEM;
        return NULL;
    }
    m->data = data;
    m->size = size;
    p->bytes += size;
    p->st.allocs++;
    return m;
}

/* Waits for room for size bytes, in arrival order. Under the lock. */
static int wait_room(struct bufpool *p, size_t size, struct bufpool_mem **out)
{
    struct fifo_waiter w = {0};
    int err = 0;
    struct bufpool_mem *m = NULL;
    for (;;) {
        int64_t wake = 0; /* behind others: woken when the first goes */
        if (fifo_turn(&p->queue, &w))
            m = find_room(p, size, &wake, &err);
        if (m || err)
            break;
        if (!w.queued) {
            fifo_join(&p->queue, &w);
            p->st.waits++;
        }
        fifo_sleep(&p->room, &p->lock, wake);
    }
    fifo_leave(&p->queue, &w, &p->room);
    *out = m;
    return err;
}

int bufpool_hold(struct bufpool *p, struct bufpool_buf *b, size_t size)
{
    size = buf_size(size);
    pthread_mutex_lock(&p->lock);
    struct bufpool_mem *m = b->mem;
    int kept = m && m->size == size;
    if (m && !kept) /* another size: not this handle's frame any more */
        take_back(p, m);
    if (kept)
        unpark(p, m);
    int ret = kept ? 0 : wait_room(p, size, &m);
    if (ret == 0) {
        m->owner = b;
        m->held = 1;
        b->mem = m;
        b->data = m->data;
    }
    pthread_mutex_unlock(&p->lock);
    return ret < 0 ? ret : kept;
}

void bufpool_park(struct bufpool *p, struct bufpool_buf *b)
{
    pthread_mutex_lock(&p->lock);
    struct bufpool_mem *m = b->mem;
    b->data = NULL;
    if (m && m->held) {
        m->held = 0;
        m->parked_at = fifo_now_ms();
        list_append(p, m);
        pthread_cond_broadcast(&p->room);
    }
    pthread_mutex_unlock(&p->lock);
}

void bufpool_drop(struct bufpool *p, struct bufpool_buf *b)
{
    pthread_mutex_lock(&p->lock);
    struct bufpool_mem *m = b->mem;
    b->mem = NULL;
    b->data = NULL;
    if (m) {
        if (!m->held)
            unpark(p, m);
        m->held = 0;
        m->owner = NULL;
        m->parked_at = fifo_now_ms();
        list_append(p, m);
        p->free_bytes += m->size;
        for (struct bufpool_mem *o = p->head, *next; o && p->free_bytes > FREE_KEEP; o = next) {
            next = o->next;
            if (!o->owner)
                take_back(p, o);
        }
        pthread_cond_broadcast(&p->room);
    }
    pthread_mutex_unlock(&p->lock);
}

void bufpool_trim(struct bufpool *p)
{
    pthread_mutex_lock(&p->lock);
    for (struct bufpool_mem *m = p->head, *next; m; m = next) {
        next = m->next;
        if (!m->owner)
            take_back(p, m);
    }
    pthread_mutex_unlock(&p->lock);
}

void bufpool_stats(struct bufpool *p, struct bufpool_stats *st)
{
    pthread_mutex_lock(&p->lock);
    *st = p->st;
    st->bytes = p->bytes;
    pthread_mutex_unlock(&p->lock);
}
