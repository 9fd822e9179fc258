/* Image read-ahead: png/jpg frame files opened in order are encoded ahead by background
 * threads, one image each, so an in-order reader has the encoder running on every core
 * instead of one image at a time at open. */
#ifndef VIDFS_IMAGE_AHEAD_H
#define VIDFS_IMAGE_AHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "image.h"

struct media;
struct reader;
struct image_ahead;

/* Encodes as many images ahead of an in-order reader as there are cores, at most
 * readahead (the frame read-ahead setting; 0: none, image_ahead_get is render_image), one
 * thread each. The reader is borrowed and must outlive it. */
int image_ahead_new(struct reader *r, int readahead, struct image_ahead **out);
void image_ahead_free(struct image_ahead **ia);

/* render_image (same arguments, same bytes), from an image encoded ahead when there is
 * one; notes the access, and queues the next images when this view is read in order. */
int image_ahead_get(struct image_ahead *ia, struct media *m, int n, const struct convert_req *req,
                    const struct image_opts *opts, uint8_t **out, size_t *size);

struct image_ahead_stats {
    uint64_t ahead; /* images encoded by the background threads */
    uint64_t hits;  /* opens served by one of them */
};
void image_ahead_stats(struct image_ahead *ia, struct image_ahead_stats *st);

#endif
