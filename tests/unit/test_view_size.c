/* Size of a view (convert_view_size): the named sides as named, the computed side even
 * and at least 2, and every view out of bounds -ENOENT, without overflow on the way. */
#include "convert.h"

#include <errno.h>
#include <stdio.h>

static int failures;

/* Checks that src_w x src_h viewed as want_w x want_h gives w x h (0 x 0: -ENOENT). */
static void check(int src_w, int src_h, int want_w, int want_h, int w, int h)
{
    int gw = -1, gh = -1;
    int ret = convert_view_size(src_w, src_h, want_w, want_h, &gw, &gh);
    int ok = w ? ret == 0 && gw == w && gh == h : ret == -ENOENT;
    if (!ok) {
        fprintf(stderr, "%dx%d as %dx%d: got %d (%dx%d), expected %dx%d\n", src_w, src_h, want_w,
                want_h, ret, gw, gh, w, h);
        failures++;
    }
}

int main(void)
{
    /* unscaled: the source's size, whatever it is */
    check(320, 240, 0, 0, 320, 240);
    check(300000, 2, 0, 0, 300000, 2);
    /* the computed side: nearest even, at least 2 */
    check(320, 240, 160, 0, 160, 120);
    check(177, 99, 88, 0, 88, 50);
    check(177, 99, 0, 50, 90, 50);
    check(320, 240, 3, 0, 3, 2);
    check(320, 240, 0, 1, 2, 1);
    /* named sides are what they say, odd ones and 1 too */
    check(320, 240, 1, 1, 1, 1);
    check(320, 240, 225, 223, 225, 223);
    /* sides: the computed one overflowed an int (issue 13) */
    check(300000, 2, 0, 224, 0, 0);
    check(2, 100000, 224, 0, 0, 0);
    check(320, 240, 0, 16384, 0, 0);
    check(320, 240, 16385, 16384, 0, 0);
    check(2, 2147483647, 16384, 0, 0, 0);
    check(2147483647, 2147483647, 16384, 0, 0, 0);
    check(2147483647, 2147483647, 4096, 0, 4096, 4096);
    /* pixels: 2^25 at most */
    check(320, 240, 8192, 4096, 8192, 4096);
    check(320, 240, 8192, 4097, 0, 0);
    check(320, 240, 16384, 2048, 16384, 2048);
    check(3840, 2160, 7680, 4320, 7680, 4320);
    /* upscale: 1024 times at most */
    check(2, 2, 2048, 2048, 2048, 2048);
    check(2, 2, 2050, 2050, 0, 0);
    check(1, 1, 0, 1024, 1024, 1024);
    check(1, 1, 0, 1025, 0, 0);
    /* stretch: the aspect ratio changed at most 16 times */
    check(320, 240, 2, 16384, 0, 0);
    check(320, 240, 16384, 2, 0, 0);
    check(320, 240, 320, 15, 320, 15);
    check(320, 240, 320, 14, 0, 0);
    check(300000, 2, 16384, 0, 0, 0);
    check(300000, 2, 16384, 1, 16384, 1);
    /* nothing to scale */
    check(0, 240, 160, 0, 0, 0);
    check(320, 0, 0, 0, 0, 0);
    check(320, 240, -1, 0, 0, 0);
    return failures ? 1 : 0;
}
