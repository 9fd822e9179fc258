/* Frame files: the reader gives a decoded frame, a converter or an image encoder makes the
 * file's bytes. */
#include "render.h"
#include "format.h"
#include "image.h"
#include "log.h"
#include "media.h"
#include "reader.h"

#include <errno.h>

int render_frame(struct reader *r, struct media *m, int n, int end, struct reader_lease *lease,
                 const struct convert_req *req, uint8_t *dst, size_t size)
{
    AVFrame *f;
    int ret = reader_get_leased(r, m, n, end, lease, &f);
    if (ret < 0)
        return ret;
    ret = convert_frame(f, req, dst, size);
    av_frame_free(&f);
    if (ret < 0) {
        log_error_once(m->path, "conversion failed", "frame %d to %s", n,
                       format_ext(req->format));
        return -EIO;
    }
    return 0;
}

int render_image(struct reader *r, struct media *m, int n, const struct convert_req *req,
                 const struct image_opts *opts, uint8_t **out, size_t *size)
{
    AVFrame *f;
    int ret = reader_get(r, m, n, &f);
    if (ret < 0)
        return ret;
    /* The container's aspect wins over the codec's, as in ffmpeg's CLI (JFIF density). */
    if (m->sar.num > 0)
        f->sample_aspect_ratio = m->sar;
    ret = image_encode(f, req->format, req->width, req->height, opts, out, size);
    av_frame_free(&f);
    return ret < 0 && ret != -ENOMEM ? -EIO : ret;
}
