/* Disk store without a mount: what is put comes back; a file cut short, grown or with one
 * bit flipped anywhere is refused and removed; a blob larger than the bound is not kept;
 * a temporary is swept at the next store_new only once its writer's lock is free. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[64];

static char *path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static int put(struct store *s, const char *key, const void *buf, size_t size)
{
    struct store_lock *l;
    int ret = store_lock(s, key, &l);
    if (ret == 0)
        ret = store_put(l, buf, size);
    store_unlock(&l);
    return ret;
}

static void test_round_trip(struct store *s, const uint8_t *data, size_t n)
{
    uint8_t *got = NULL;
    size_t size = 0;
    uint64_t len = 0;
    CHECK(put(s, "k", data, n) == 0);
    CHECK(store_get(s, "k", &got, &size) == 0 && size == n && !memcmp(got, data, n));
    CHECK(store_size(s, "k", &len) == 0 && len == n);
    free(got);
    CHECK(store_get(s, "absent", &got, &size) == -ENOENT);
}

/* Damages the stored "k" by fn, then checks that it is refused and gone. */
static void check_refused(struct store *s, const uint8_t *data, size_t n, off_t flip,
                          off_t truncate_to)
{
    CHECK(put(s, "k", data, n) == 0);
    int fd = open(path("k"), O_RDWR);
    if (truncate_to >= 0) {
        CHECK(ftruncate(fd, truncate_to) == 0);
    } else {
        uint8_t b;
        CHECK(pread(fd, &b, 1, flip) == 1);
        b ^= 0x01;
        CHECK(pwrite(fd, &b, 1, flip) == 1);
    }
    close(fd);
    uint8_t *got = NULL;
    size_t size;
    CHECK(store_get(s, "k", &got, &size) == -ENOENT);
    CHECK(access(path("k"), F_OK) < 0);
    free(got);
}

static void test_damage(struct store *s, const uint8_t *data, size_t n)
{
    for (off_t at = 0; at < (off_t)n + 24; at += 997)
        check_refused(s, data, n, at, -1);
    check_refused(s, data, n, (off_t)n + 23, -1); /* the trailer's last byte */
    check_refused(s, data, n, 0, (off_t)n / 2);
    check_refused(s, data, n, 0, (off_t)n + 23);
    check_refused(s, data, n, 0, 0);
}

static void test_too_large(void)
{
    struct store *s;
    CHECK(store_new(dir, 1000, &s) == 0);
    uint8_t big[2000] = {1};
    CHECK(put(s, "big", big, sizeof(big)) == 1);
    CHECK(access(path("big"), F_OK) < 0);
    store_free(&s);
}

static void test_sweep(void)
{
    struct store *s, *t;
    CHECK(store_new(dir, 0, &s) == 0);
    struct store_lock *l;
    CHECK(store_lock(s, "live", &l) == 0);
    for (int i = 0; i < 2; i++) {
        int fd = open(path(i ? "tmp-live" : "tmp-dead"), O_WRONLY | O_CREAT, 0600);
        CHECK(fd >= 0);
        close(fd);
    }
    CHECK(store_new(dir, 0, &t) == 0);
    CHECK(access(path("tmp-dead"), F_OK) < 0);
    CHECK(access(path("tmp-live"), F_OK) == 0); /* its writer holds the lock */
    store_free(&t);
    store_unlock(&l);
    CHECK(store_new(dir, 0, &t) == 0);
    CHECK(access(path("tmp-live"), F_OK) < 0);
    store_free(&t);
    store_free(&s);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/vidfs-store-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    size_t n = 100000;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 8));
    struct store *s;
    CHECK(store_new(dir, 0, &s) == 0);
    test_round_trip(s, data, n);
    test_round_trip(s, data, 1);
    test_damage(s, data, n);
    test_damage(s, data, 13);
    store_free(&s);
    test_too_large();
    test_sweep();
    free(data);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        failures++;
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
