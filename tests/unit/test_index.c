/* Index: start packets for B-frames and open GOPs, time lookups, and serialization that
 * survives a round trip and rejects damaged blobs. */
#include "index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Decode order I0 P3 B1 B2 | I6(open GOP) B4 B5 P9 B7 B8, pts in frames of 10 ticks. */
static struct index *make_open_gop(void)
{
    static const int pts[] = {0, 3, 1, 2, 6, 4, 5, 9, 7, 8};
    static const int key[] = {1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    struct index *ix = calloc(1, sizeof(*ix));
    int n = 10;
    ix->nb_packets = ix->nb_frames = n;
    ix->packets = calloc((size_t)n, sizeof(*ix->packets));
    ix->frames = calloc((size_t)n, sizeof(*ix->frames));
    ix->keyframes = calloc((size_t)n, sizeof(*ix->keyframes));
    ix->time_base = (AVRational){1, 100};
    for (int p = 0; p < n; p++) {
        ix->packets[p] = (struct index_packet){.pts = pts[p] * 10, .dts = p * 10 - 20,
                                               .pos = 1000 + p, .frame = pts[p], .key = (uint8_t)key[p]};
        ix->frames[pts[p]] = (struct index_frame){.pts = pts[p] * 10, .duration = 10,
                                                  .packet = p, .key = (uint8_t)key[p]};
    }
    for (int f = 0; f < n; f++)
        if (ix->frames[f].key)
            ix->keyframes[ix->nb_keyframes++] = f;
    return ix;
}

static void test_start_packet(void)
{
    struct index *ix = make_open_gop();
    CHECK(index_start_packet(ix, 0) == 0);
    CHECK(index_start_packet(ix, 3) == 0);
    /* Leading pictures 4 and 5 follow I6 in decode order but need the GOP before it. */
    CHECK(index_start_packet(ix, 4) == 0);
    CHECK(index_start_packet(ix, 5) == 0);
    CHECK(index_start_packet(ix, 6) == 4);
    CHECK(index_start_packet(ix, 9) == 4);
    CHECK(index_start_packet(ix, 8) == 4);
    index_free(&ix);
}

static void test_lookup(void)
{
    struct index *ix = make_open_gop();
    CHECK(index_find_pts(ix, 40) == 4);
    CHECK(index_find_pts(ix, 41) == -1);
    CHECK(index_frame_at_time(ix, 0) == 0);
    CHECK(index_frame_at_time(ix, 0.25) == 3); /* frame 3 is at 0.3 s */
    CHECK(index_frame_at_time(ix, 0.3) == 3);
    CHECK(index_frame_at_time(ix, 5) == 10);
    CHECK(index_frame_time(ix, 9) > 0.89 && index_frame_time(ix, 9) < 0.91);
    index_free(&ix);
}

static void test_serialize(void)
{
    struct index *ix = make_open_gop(), *back = NULL;
    uint8_t *buf;
    size_t size;
    CHECK(index_serialize(ix, &buf, &size) == 0);
    CHECK(index_deserialize(buf, size, &back) == 0);
    CHECK(back && back->nb_frames == 10 && back->nb_keyframes == 2 &&
          back->keyframes[1] == 6 && back->frames[4].packet == 5 &&
          back->time_base.den == 100);
    index_free(&back);
    CHECK(index_deserialize(buf, size - 1, &back) == -EINVAL);
    buf[0] ^= 1;
    CHECK(index_deserialize(buf, size, &back) == -EINVAL);
    buf[0] ^= 1;
    /* A frame pointing past the packets. */
    struct index_frame *f = (struct index_frame *)(void *)(buf + size - 10 * sizeof(struct index_packet) - sizeof(struct index_frame));
    f->packet = 99;
    CHECK(index_deserialize(buf, size, &back) == -EINVAL);
    free(buf);
    index_free(&ix);
}

int main(void)
{
    test_start_packet();
    test_lookup();
    test_serialize();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
