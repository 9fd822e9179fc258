/* The one place FFmpeg's error codes become errno values. */
#include "averror.h"

#include <errno.h>

#include <libavutil/error.h>

int averror_errno(int averror)
{
    switch (averror) {
    case AVERROR(ENOMEM):
        return -ENOMEM;
    case AVERROR(EAGAIN):
        return -EAGAIN;
    case AVERROR(ENOENT):
        return -ENOENT;
    case AVERROR(EINVAL):
        return -EINVAL;
    case AVERROR(ENOSYS):
    case AVERROR_DECODER_NOT_FOUND:
    case AVERROR_PATCHWELCOME:
        return -ENOTSUP;
    case AVERROR_EOF:
        return -ENODATA;
    default:
        return -EIO;
    }
}
