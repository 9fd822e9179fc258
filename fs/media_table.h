/* The media of the mount, opened once and shared by every file of a video directory. */
#ifndef VIDFS_MEDIA_TABLE_H
#define VIDFS_MEDIA_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct media;
struct store;
struct media_table;

struct source;

/* Open media past this are dropped, least recently used first (each holds an fd). */
#define MEDIA_TABLE_BOUND 256

/* Where the table's media come from: the source directory, or fakes in unit tests. */
struct media_table_source {
    /* The stat of rel (NUL-terminated, relative to the source). */
    int (*stat)(void *opaque, const char *rel, struct stat *st);
    /* Opens stream `stream` of rel (-1: the default one): a new reference. */
    int (*open)(void *opaque, const char *rel, int stream, struct media **out);
};

/* source: the source directory's real path, looked up through src (borrowed: lookups stay
 * inside it); store (borrowed) keeps the indexes. Holds MEDIA_TABLE_BOUND media. */
int media_table_new(const char *source, struct source *src, struct store *store,
                    struct media_table **out);
/* A table over ops (borrowed, with opaque) holding about bound media (at least 1). */
int media_table_new_custom(const struct media_table_source *ops, void *opaque, int bound,
                           struct media_table **out);
void media_table_free(struct media_table **t);

/* The media for the video at rel[0..len) under the source (stream -1: the default one), a
 * new reference: opened (probed, indexed) on first use, again when the file changed.
 * st: the source's stat just taken by the caller, or NULL to take it here. -ENOENT when
 * it is not a regular file. Lookups of different media never wait on each other. */
int media_table_get(struct media_table *t, const char *rel, size_t len, int stream,
                    const struct stat *st, struct media **out);

/* frames.csv of the media at rel[0..rlen): *out is malloc'd, *len bytes (not terminated).
 * -EIO for a media FFmpeg cannot read. */
int media_table_csv(struct media_table *t, const char *rel, size_t rlen, int stream, char **out,
                    size_t *len);

/* The size of that frames.csv without making it: counted once a media, then kept. st as
 * for media_table_get. */
int media_table_csv_size(struct media_table *t, const char *rel, size_t rlen, int stream,
                         const struct stat *st, uint64_t *size);

#endif
