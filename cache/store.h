/* Disk store: files under the cache directory keyed by strings, bounded in bytes with LRU
 * eviction (by access time). Holds indexes and segments across mounts; keys carry the
 * source's (dev, ino, size, mtime) so a changed source is never served stale data.
 * Several daemons may share one directory: entries are written under a per-key lock
 * (flock, released by the kernel when a daemon dies), and every file carries its length
 * and a checksum, checked before it is served. */
#ifndef VIDFS_STORE_H
#define VIDFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct store;
struct store_lock;

/* Creates dir if needed, removes the temporaries and lock files a crash left, and evicts
 * down to the bound. max_bytes 0 = unbounded. */
int store_new(const char *dir, uint64_t max_bytes, struct store **out);
void store_free(struct store **s);

/* Writes "<kind>-<dev>-<ino>-<size>-<mtime>-<ctime>[-<extra>]" into buf (for file st):
 * ctime too, as a rewrite in place can keep size and mtime. */
void store_key(char *buf, size_t size, const char *kind, const struct stat *st,
               const char *extra);

/* Opens key read-only after checking its length and checksum (and marks it used for
 * LRU): an fd whose first *size bytes are the entry (the rest is the store's; never serve
 * it), or -ENOENT when absent or damaged (then removed, with a log line). */
int store_open(struct store *s, const char *key, int *fd, uint64_t *size);
/* The entry's size from its length record, without reading it: -ENOENT when absent or
 * cut short. */
int store_size(struct store *s, const char *key, uint64_t *size);
/* Small blobs (indexes): get allocates *buf (caller frees); -ENOENT when absent. */
int store_get(struct store *s, const char *key, uint8_t **buf, size_t *size);

/* Waits until no thread or daemon on the same directory holds key's lock, then takes it.
 * Writing an entry needs its lock; a writer that dies releases it. */
int store_lock(struct store *s, const char *key, struct store_lock **out);
/* Releases the lock, removing the temporary of an entry neither committed nor aborted. */
void store_unlock(struct store_lock **l);

/* Large files (segments), under l: store_tmp creates the entry's temporary file (*fd open
 * for reading and writing, *path borrowed from l until unlock). store_commit appends the
 * length and checksum, syncs, renames it into place and evicts to stay in bound; *size is
 * the entry's size. It returns 1 when the file is larger than the whole store: then it
 * is unlinked but stays readable through fd, and the log says so. abort removes it. The
 * caller closes fd in every case. */
int store_tmp(struct store_lock *l, int *fd, const char **path);
int store_commit(struct store_lock *l, int fd, uint64_t *size);
void store_abort(struct store_lock *l);

/* store_tmp, write, store_commit: 0 when stored, 1 when too large, or an error. */
int store_put(struct store_lock *l, const void *buf, size_t size);

#endif
