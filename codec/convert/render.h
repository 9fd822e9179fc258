/* Frame files: a frame number of a media becomes the bytes of a view (a format and a size),
 * decoded through the reader and converted here, so the FUSE ops only copy bytes out. */
#ifndef VIDFS_RENDER_H
#define VIDFS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "image.h"

struct media;
struct reader;
struct reader_lease;

/* Writes frame n of m, converted as req says, into dst (size: format_frame_size of req).
 * end: the frame the caller stops before (read-ahead does not go past it); lease: the
 * request's hold on a decoder (reader_get_leased), or NULL. -EIO when the frame cannot be
 * decoded or converted (logged), -ENOENT past the end. */
int render_frame(struct reader *r, struct media *m, int n, int end, struct reader_lease *lease,
                 const struct convert_req *req, uint8_t *dst, size_t size);

/* Frame n of m as an encoded image (req->format png or jpg, scaled to req's size; jpg at
 * qscale jpeg_q): *out is malloc'd. */
int render_image(struct reader *r, struct media *m, int n, const struct convert_req *req,
                 const struct image_opts *opts, uint8_t **out, size_t *size);

#endif
