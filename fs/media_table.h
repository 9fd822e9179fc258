/* The media of the mount, opened once and shared by every file of a video directory. */
#ifndef VIDFS_MEDIA_TABLE_H
#define VIDFS_MEDIA_TABLE_H

#include <stddef.h>

struct media;
struct store;
struct media_table;

struct source;

/* source: the source directory's real path, looked up through src (borrowed: lookups stay
 * inside it); store (borrowed) keeps the indexes. */
int media_table_new(const char *source, struct source *src, struct store *store,
                    struct media_table **out);
void media_table_free(struct media_table **t);

/* The media for the video at rel[0..len) under the source (stream -1: the default one), a
 * new reference: opened (probed, indexed) on first use, again when the file changed.
 * -ENOENT when it is not a regular file. */
int media_table_get(struct media_table *t, const char *rel, size_t len, int stream,
                    struct media **out);

/* frames.csv of the media at rel[0..rlen), made once: *out is a malloc'd copy of *len bytes
 * (not terminated). -EIO for
 * a media FFmpeg cannot read. */
int media_table_csv(struct media_table *t, const char *rel, size_t rlen, int stream, char **out,
                    size_t *len);

#endif
