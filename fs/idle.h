/* Memory given back after a burst: once the mount has opened and served nothing for a
 * second, the frame file buffers no handle holds are freed and the heap's free pages go
 * back to the system (malloc_trim). Never while busy: there, freed frames are reused warm
 * (main.c's mallopt). */
#ifndef VIDFS_IDLE_H
#define VIDFS_IDLE_H

struct vidfs;
struct idle;

/* Watches fs's counters from a thread of its own; fs must outlive it. */
int idle_new(struct vidfs *fs, struct idle **out);
void idle_free(struct idle **idle);

#endif
