/* Frame file buffers without a mount: a parked buffer keeps its contents for its handle,
 * the byte bound holds, a buffer parked for a while is taken back for a waiting request,
 * a dropped one is reused by the next request of its size, and trim frees it. */
#include "bufpool.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define MIB (1 << 20)

struct holder {
    struct bufpool *p;
    struct bufpool_buf *b;
    int ret;
};

static void *hold_main(void *arg)
{
    struct holder *h = arg;
    h->ret = bufpool_hold(h->p, h->b, 2 * MIB);
    return NULL;
}

int main(void)
{
    struct bufpool *p;
    struct bufpool_stats st;
    struct bufpool_buf a = {0}, b = {0}, c = {0};
    CHECK(bufpool_new(4 * MIB, &p) == 0);

    /* Parked and held again: the same contents. */
    CHECK(bufpool_hold(p, &a, 2 * MIB) == 0);
    memset(a.data, 7, 2 * MIB);
    bufpool_park(p, &a);
    CHECK(bufpool_hold(p, &a, 2 * MIB) == 1 && a.data[2 * MIB - 1] == 7);
    bufpool_park(p, &a);

    /* The bound: b fits beside a; c waits until a's park goes stale, then takes it back. */
    CHECK(bufpool_hold(p, &b, 2 * MIB) == 0);
    struct holder h = {p, &c, -1};
    pthread_t t;
    pthread_create(&t, NULL, hold_main, &h);
    pthread_join(t, NULL);
    CHECK(h.ret == 0);
    bufpool_stats(p, &st);
    CHECK(st.bytes <= 4 * MIB && st.taken_back == 1 && st.waits == 1);
    CHECK(a.mem == NULL); /* a's handle learns it at its next hold */
    bufpool_park(p, &b);
    bufpool_park(p, &c);

    /* Dropped: reused by the next request of its size, freed by trim. */
    bufpool_drop(p, &c);
    uint64_t allocs = st.allocs;
    CHECK(bufpool_hold(p, &a, 2 * MIB) == 0);
    bufpool_stats(p, &st);
    CHECK(st.allocs == allocs && st.bytes == 4 * MIB);
    bufpool_drop(p, &a);
    bufpool_drop(p, &b);
    bufpool_trim(p);
    bufpool_stats(p, &st);
    CHECK(st.bytes == 0);

    /* Larger than the bound: served alone. */
    CHECK(bufpool_hold(p, &a, 6 * MIB) == 0 && a.data);
    bufpool_drop(p, &a);
    bufpool_free(&p);
    return failures != 0;
}
