/* A segment name's time span as frames of the index (and, for copies, packets). */
#include "range.h"
#include "index.h"
#include "media.h"

#include <errno.h>

int range_find(const struct media *m, const struct segment_req *req, struct range *r)
{
    const struct index *ix = m->index;
    int n = ix->nb_frames;
    /* NaN fails every comparison, so these also reject it. */
    if (!(req->start >= 0) || !(req->end > req->start) ||
        !(req->start < index_frame_time(ix, n - 1) - 1e-9))
        return -ENOENT;
    r->first = index_frame_at_time(ix, req->start);
    r->last = index_frame_at_time(ix, req->end);
    if (r->last <= r->first)
        return -ENOENT; /* no frame between start and end, e.g. 1.01-1.02 at 25 fps */
    const struct index_frame *last = &ix->frames[r->last - 1];
    r->t1 = r->last < n ? ix->frames[r->last].pts : last->pts + last->duration;
    r->base = r->first;
    r->start_packet = r->end_packet = -1;
    if (req->copy) {
        r->start_packet = index_start_packet(ix, r->first);
        int key = ix->packets[r->start_packet].frame;
        /* The packets of every frame up to the last one named; packets between them that
         * display later are references those frames need (B-frames), so they stay. */
        for (int f = r->first; f < r->last; f++)
            if (ix->frames[f].packet + 1 > r->end_packet)
                r->end_packet = ix->frames[f].packet + 1;
        /* The first frame shown: the keyframe, or with an edit list's discarded lead-in
         * (key < 0) the first frame the source shows. */
        r->base = key >= 0 ? key : r->first;
        for (int p = r->start_packet; p < r->end_packet; p++) {
            int f = ix->packets[p].frame;
            if (f >= 0 && f < r->base && key < 0)
                r->base = f;
        }
    }
    r->t0 = ix->frames[r->base].pts;
    return 0;
}
