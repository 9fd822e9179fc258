/* /.vidfs/stats.json: the counters of every layer and the long work going on, read when
 * the file is opened (and looked up: its size is the text's length). */
#include "stats.h"
#include "bufpool.h"
#include "frame_cache.h"
#include "image_ahead.h"
#include "pool.h"
#include "progress.h"
#include "reader.h"
#include "segment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

static void add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

/* Long work going on: what, on what, how far, since when (UTC) and for how long. */
static json_object *in_progress(void)
{
    json_object *a = json_object_new_array();
    struct progress_info *works = malloc(sizeof(*works) * PROGRESS_SLOTS);
    int n = works ? progress_list(works, PROGRESS_SLOTS) : 0;
    for (int i = 0; i < n; i++) {
        const struct progress_info *w = &works[i];
        json_object *o = json_object_new_object();
        char text[32];
        struct tm tm;
        json_object_object_add(o, "kind", json_object_new_string(progress_kind_name(w->kind)));
        json_object_object_add(o, "name", json_object_new_string(w->name));
        add_u64(o, "done", w->done);
        add_u64(o, "total", w->total);
        json_object_object_add(o, "unit", json_object_new_string(w->unit));
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&w->started, &tm));
        json_object_object_add(o, "started", json_object_new_string(text));
        snprintf(text, sizeof(text), "%.3f", w->seconds);
        json_object_object_add(o, "seconds", json_object_new_double_s(w->seconds, text));
        json_object_array_add(a, o);
    }
    free(works);
    return a;
}

char *stats_json(const struct stats_sources *src)
{
    struct frame_cache_stats fc;
    struct pool_stats ps;
    struct reader_stats rs;
    struct segment_stats ss = {0};
    struct bufpool_stats bs;
    frame_cache_stats(src->cache, &fc);
    pool_stats(src->pool, &ps);
    reader_stats(src->reader, &rs);
    segment_stats(src->segmenter, &ss);
    bufpool_stats(src->bufs, &bs);
    struct image_ahead_stats is;
    image_ahead_stats(src->images, &is);
    json_object *o = json_object_new_object(), *x;
    add_u64(o, "frames_served", rs.frames_served);
    add_u64(o, "bytes_served", src->bytes_served);
    add_u64(o, "files_opened", src->files_opened);
    /* Decodes per delivered frame: 1 at best; GOPs decoded twice show as more. */
    uint64_t decoded = ps.frames_cpu + ps.frames_gpu;
    json_object_object_add(o, "decodes_per_frame_served",
                           json_object_new_double(rs.frames_served ? (double)decoded /
                                                                         (double)rs.frames_served
                                                                   : 0));
    json_object_object_add(o, "frame_cache", x = json_object_new_object());
    add_u64(x, "hits", fc.hits);
    add_u64(x, "misses", fc.misses);
    add_u64(x, "inserts", fc.inserts);
    add_u64(x, "evictions", fc.evictions);
    add_u64(x, "dropped", fc.dropped);
    add_u64(x, "buffers_allocated", fc.allocs);
    add_u64(x, "frames", fc.frames);
    add_u64(x, "bytes", fc.bytes);
    add_u64(x, "max_bytes", fc.max_bytes);
    json_object_object_add(o, "frame_buffers", x = json_object_new_object());
    add_u64(x, "bytes", bs.bytes);
    add_u64(x, "max_bytes", bs.max_bytes);
    add_u64(x, "allocs", bs.allocs);
    add_u64(x, "taken_back", bs.taken_back);
    add_u64(x, "waits", bs.waits);
    json_object_object_add(o, "decoders", x = json_object_new_object());
    add_u64(x, "created", ps.created);
    add_u64(x, "reused", ps.reused);
    add_u64(x, "continued", ps.continued);
    add_u64(x, "seeks", ps.seeks);
    add_u64(x, "busy", (uint64_t)ps.busy);
    add_u64(x, "idle", (uint64_t)ps.idle);
    add_u64(x, "bound", (uint64_t)ps.size);
    add_u64(x, "waiting", (uint64_t)ps.waiting);
    add_u64(x, "waits", ps.waits);
    json_object_object_add(o, "frames_decoded", x = json_object_new_object());
    add_u64(x, "cpu", ps.frames_cpu);
    add_u64(x, "nvdec", ps.frames_gpu);
    add_u64(x, "gpu_fallbacks", ps.gpu_fallbacks);
    json_object *g = json_object_new_object();
    json_object_object_add(x, "nvdec_by_gpu", g);
    for (int i = 0; i < ps.ngpus; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", ps.gpus[i]);
        add_u64(g, key, ps.frames_by_gpu[i]);
    }
    json_object_object_add(o, "readahead", x = json_object_new_object());
    add_u64(x, "frames", rs.readahead_frames);
    add_u64(x, "hits", rs.readahead_hits);
    /* png/jpg images encoded ahead of in-order readers, and opens they served. */
    json_object_object_add(o, "images", x = json_object_new_object());
    add_u64(x, "ahead", is.ahead);
    add_u64(x, "hits", is.hits);
    json_object_object_add(o, "segments", x = json_object_new_object());
    add_u64(x, "produced", ss.produced);
    add_u64(x, "store_hits", ss.store_hits);
    add_u64(x, "copies", ss.copies);
    add_u64(x, "nvenc_encodes", ss.nvenc_encodes);
    add_u64(x, "cpu_encodes", ss.cpu_encodes);
    add_u64(x, "nvenc_fallbacks", ss.nvenc_fallbacks);
    json_object_object_add(o, "in_progress", in_progress());
    char *s = NULL;
    const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    size_t n = strlen(txt);
    s = malloc(n + 2);
    if (s) {
        memcpy(s, txt, n);
        memcpy(s + n, "\n", 2);
    }
    json_object_put(o);
    return s;
}
