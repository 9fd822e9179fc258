/* Frame file formats: the table that maps extensions to layouts and sizes. */
#include "format.h"

#include <string.h>

static const struct {
    const char *ext;
    int raw;
} formats[FORMAT_COUNT] = {
    [FORMAT_NV12] = {"nv12", 1}, [FORMAT_YUV420P] = {"yuv420p", 1},
    [FORMAT_GRAY] = {"gray", 1}, [FORMAT_RGB] = {"rgb", 1},
    [FORMAT_RGBP] = {"rgbp", 1}, [FORMAT_P010] = {"p010", 1},
    [FORMAT_PNG] = {"png", 0},   [FORMAT_JPG] = {"jpg", 0},
};

enum format format_from_ext(const char *ext, int len)
{
    for (int f = 0; f < FORMAT_COUNT; f++)
        if ((int)strlen(formats[f].ext) == len && !memcmp(formats[f].ext, ext, (size_t)len))
            return (enum format)f;
    return FORMAT_COUNT;
}

const char *format_ext(enum format f)
{
    return f < FORMAT_COUNT ? formats[f].ext : "";
}

int format_is_raw(enum format f)
{
    return f < FORMAT_COUNT && formats[f].raw;
}

uint64_t format_frame_size(enum format f, int w, int h)
{
    uint64_t luma = (uint64_t)w * (uint64_t)h;
    uint64_t chroma = 2 * (uint64_t)((w + 1) / 2) * (uint64_t)((h + 1) / 2);
    switch (f) {
    case FORMAT_NV12:
    case FORMAT_YUV420P:
        return luma + chroma;
    case FORMAT_GRAY:
        return luma;
    case FORMAT_RGB:
    case FORMAT_RGBP:
        return 3 * luma;
    case FORMAT_P010:
        return 2 * (luma + chroma);
    default:
        return 0;
    }
}
