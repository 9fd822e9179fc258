/* Disk store: files under the cache directory keyed by strings, bounded in bytes with LRU
 * eviction (by access time). Holds indexes and segments across mounts; keys carry the
 * source's (dev, ino, size, mtime) so a changed source is never served stale data. */
#ifndef VIDFS_STORE_H
#define VIDFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct store;

/* Creates dir if needed. max_bytes 0 = unbounded. */
int store_new(const char *dir, uint64_t max_bytes, struct store **out);
void store_free(struct store **s);

/* Writes "<kind>-<dev>-<ino>-<size>-<mtime>-<ctime>[-<extra>]" into buf (for file st):
 * ctime too, as a rewrite in place can keep size and mtime. */
void store_key(char *buf, size_t size, const char *kind, const struct stat *st,
               const char *extra);

/* Small blobs (indexes): get allocates *buf (caller frees); -ENOENT when absent. */
int store_get(struct store *s, const char *key, uint8_t **buf, size_t *size);
int store_put(struct store *s, const char *key, const void *buf, size_t size);

/* Large files (segments): a new temporary file in the store (fd open for writing, path
 * malloc'd); commit renames it to key atomically and evicts to stay in bound; abort
 * removes it. */
int store_tmp(struct store *s, int *fd, char **tmp_path);
int store_commit(struct store *s, const char *tmp_path, const char *key);
void store_abort(struct store *s, const char *tmp_path);

/* Opens key read-only (and marks it used for LRU): an fd, or -ENOENT. */
int store_open(struct store *s, const char *key, int *fd);

#endif
