/* The progress table: what begins is listed with its counts until it ends; a full table
 * lists no more and the work goes on; a work past a second is logged once. */
#include "check.h"
#include "progress.h"

#include <string.h>
#include <unistd.h>

static struct progress_info out[PROGRESS_SLOTS];

static void test_listed_until_ended(void)
{
    struct progress *p = progress_begin(PROGRESS_SEGMENT, "a.mp4/segments/0-10.mp4", 250,
                                        "frames");
    CHECK(p != NULL);
    progress_update(p, 17);
    CHECK(progress_list(out, PROGRESS_SLOTS) == 1);
    CHECK(out[0].kind == PROGRESS_SEGMENT && !strcmp(out[0].name, "a.mp4/segments/0-10.mp4"));
    CHECK(out[0].done == 17 && out[0].total == 250 && !strcmp(out[0].unit, "frames"));
    CHECK(out[0].seconds >= 0 && out[0].started > 0);
    CHECK(!strcmp(progress_kind_name(out[0].kind), "segment"));
    progress_end(&p);
    CHECK(p == NULL);
    CHECK(progress_list(out, PROGRESS_SLOTS) == 0);
}

static void test_full_table(void)
{
    struct progress *all[PROGRESS_SLOTS + 1];
    for (int i = 0; i < PROGRESS_SLOTS; i++)
        CHECK((all[i] = progress_begin(PROGRESS_INDEX, "v.mkv", 0, "bytes")) != NULL);
    all[PROGRESS_SLOTS] = progress_begin(PROGRESS_INDEX, "one too many", 0, "bytes");
    CHECK(all[PROGRESS_SLOTS] == NULL);
    progress_update(all[PROGRESS_SLOTS], 5); /* a work left unlisted goes on */
    progress_end(&all[PROGRESS_SLOTS]);
    CHECK(progress_list(out, 3) == 3);
    for (int i = 0; i < PROGRESS_SLOTS; i++)
        progress_end(&all[i]);
    CHECK(progress_list(out, PROGRESS_SLOTS) == 0);
}

static void test_long_work_is_listed_with_its_time(void)
{
    struct progress *p = progress_begin(PROGRESS_INDEX, "long.mp4", 1000, "bytes");
    usleep(1100 * 1000);
    progress_update(p, 10); /* logs "long.mp4: indexing: over 1 s so far" on stderr */
    CHECK(progress_list(out, PROGRESS_SLOTS) == 1 && out[0].seconds >= 1);
    progress_end(&p);
}

int main(void)
{
    test_listed_until_ended();
    test_full_table();
    test_long_work_is_listed_with_its_time();
    return failures != 0;
}
