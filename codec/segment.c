#include "segment.h"
#include <errno.h>
#include <stdlib.h>
struct segmenter { int unused; };
int segmenter_new(struct reader *reader, struct store *store, const struct config *cfg, struct segmenter **out)
{ (void)reader, (void)store, (void)cfg; *out = calloc(1, sizeof(**out)); return *out ? 0 : -ENOMEM; }
void segmenter_free(struct segmenter **sg) { free(*sg); *sg = NULL; }
int segment_valid(const struct media *m, const struct segment_req *req) { (void)m, (void)req; return 0; }
int segment_open(struct segmenter *sg, struct media *m, const struct segment_req *req, int *fd)
{ (void)sg, (void)m, (void)req, (void)fd; return -ENOENT; }
int segment_size(struct segmenter *sg, const struct media *m, const struct segment_req *req, uint64_t *size)
{ (void)sg, (void)m, (void)req, (void)size; return -ENOENT; }
void segment_stats(struct segmenter *sg, struct segment_stats *st) { (void)sg; *st = (struct segment_stats){0}; }
