/* The unit tests' one assertion: CHECK logs the failing condition with its place and
 * counts it; main returns failures != 0. One counter per test program. */
#ifndef VIDFS_TEST_CHECK_H
#define VIDFS_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);                 \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

#endif
