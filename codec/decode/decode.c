/* The table of decode backends and the choice the `backend` setting makes from it. */
#include "decode.h"

#include <errno.h>
#include <string.h>

const struct decode_backend *const decode_backends[] = {
#if VIDFS_HAVE_NVDEC
    &decode_nvdec,
#endif
    &decode_cpu,
    NULL,
};

int decode_backends_allowed(const char *setting, const struct decode_backend **out)
{
    int n = 0, all = !strcmp(setting, "auto");
    for (int i = 0; decode_backends[i] && n < DECODE_MAX_BACKENDS; i++)
        if (all || !strcmp(setting, decode_backends[i]->name))
            out[n++] = decode_backends[i];
    out[n] = NULL;
    return n ? 0 : -ENOENT;
}
