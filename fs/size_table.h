/* Sizes of png/jpg frame files already produced, so stat is exact after the first open
 * (before it, a file's size is a guess: an encoded size is known only once encoded). */
#ifndef VIDFS_SIZE_TABLE_H
#define VIDFS_SIZE_TABLE_H

#include <stdint.h>

#include "format.h"

struct size_table;

int size_table_new(struct size_table **out);
void size_table_free(struct size_table **t);

/* 1 and *size when the file (media id, frame, view size, format) was produced, else 0. */
int size_table_get(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                   uint64_t *size);
void size_table_put(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                    uint64_t size);

#endif
