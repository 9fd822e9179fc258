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

/* Records the size of k's file. */
void size_table_put(struct size_table *t, const struct size_key *k, uint64_t size);

/* Before encoding k's file: 1 when the caller is to encode it (then size_table_keep or
 * size_table_abandon), 0 with *size when its size is known, after waiting for another
 * caller that was encoding it (two lookups of one file, from `ls -l` and `cat` or from
 * the stat and open of one reader, encode it once). */
int size_table_claim(struct size_table *t, const struct size_key *k, uint64_t *size);

/* Gives a claim up (the encode failed): a waiting caller encodes in its place. */
void size_table_abandon(struct size_table *t, const struct size_key *k);

/* Records the size of k's file and keeps its bytes (taken over: malloc'd) for a while, for
 * the open that follows a lookup; releases the caller's claim. */
void size_table_keep(struct size_table *t, const struct size_key *k, uint8_t *bytes,
                     size_t size);

/* 1, handing over k's kept bytes (the caller frees them; they are kept no more), or 0. */
int size_table_take(struct size_table *t, const struct size_key *k, uint8_t **bytes,
                    size_t *size);

#endif
