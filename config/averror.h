/* FFmpeg's error codes as errno values: every layer that calls libav* returns negative
 * errno up the stack, so the FUSE ops can return them unchanged. */
#ifndef VIDFS_AVERROR_H
#define VIDFS_AVERROR_H

/* Maps an FFmpeg error to a negative errno (EIO by default). */
int averror_errno(int averror);

#endif
