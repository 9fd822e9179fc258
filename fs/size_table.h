/* Encoded frame files (png, jpg) already produced: the size of each, so that stat is exact
 * without encoding again, and the bytes of the last few, so that the open that follows a
 * lookup serves what the lookup encoded (an encoded size is known only once encoded). */
#ifndef VIDFS_SIZE_TABLE_H
#define VIDFS_SIZE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* One encoded frame file: a frame of a media (its id), at a view size, in a format. */
struct size_key {
    uint64_t media;
    int frame, w, h;
    enum format format;
};

struct size_table;

int size_table_new(struct size_table **out);
void size_table_free(struct size_table **t);

/* 1 and *size when k's file was produced (and its size not forgotten since), else 0. */
int size_table_get(struct size_table *t, const struct size_key *k, uint64_t *size);

/* Records that k's file is bytes (size of them), and keeps a copy of them for a while. */
void size_table_put(struct size_table *t, const struct size_key *k, const uint8_t *bytes,
                    size_t size);

/* 1 and a malloc'd copy of k's bytes in *bytes when they are still kept, else 0; -ENOMEM. */
int size_table_bytes(struct size_table *t, const struct size_key *k, uint8_t **bytes,
                     size_t *size);

#endif
