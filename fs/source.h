/* The source directory, seen only from inside. Paths are resolved here one component at a
 * time with O_NOFOLLOW, so every symlink is read and followed where it can be checked:
 * one that leads out of the directory is refused unless follow_out is set, and nothing on
 * the mount's own device is ever entered (a daemon that looks itself up nests a thread a
 * level until it wedges). Opens never block: types are checked on the descriptor. */
#ifndef VIDFS_SOURCE_H
#define VIDFS_SOURCE_H

#include <sys/stat.h>

struct source;

/* dir_fd (borrowed: it must outlive the source) is the directory, root its realpath. */
int source_new(int dir_fd, const char *root, int follow_out, struct source **out);
void source_free(struct source **s);

/* Never enter the filesystem mounted at mountpoint (a realpath): its device is looked up
 * in /proc/self/mountinfo, so once it is mounted. */
void source_avoid_mount(struct source *s, const char *mountpoint);

/* stat of what rel (relative to the directory; "" is the directory) names, symlinks
 * followed as above; -ENOENT for a refused one. */
int source_stat(const struct source *s, const char *rel, struct stat *st);

/* The same for entry name of the directory dirfd, itself reached by rel_dir: a cheap
 * fstatat unless the entry is a symlink. Refusals are not logged (listings repeat). */
int source_stat_entry(const struct source *s, int dirfd, const char *rel_dir, const char *name,
                      struct stat *st);

/* Opens rel read-only and non-blocking: a regular file, or a directory when dir is set;
 * anything else (a FIFO, a device) is -ENOENT. *st is the stat of the opened file. */
int source_open(const struct source *s, const char *rel, int dir, int *fd, struct stat *st);

#endif
