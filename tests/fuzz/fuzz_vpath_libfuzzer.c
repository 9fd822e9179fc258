/* libFuzzer target of the path grammar (meson -Dfuzzer=true, clang only): the same
 * promises as the bounded CI fuzzer, without a bound. The first byte picks skip. */
#include "../unit/vpath_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char path[4097];
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    struct vpath vp;
    int ret;
    if (vpath_check(path, "mp4,mkv,ts,avi", data[0] % 3, &ret, &vp))
        abort();
    return 0;
}
