"""Raw frame formats of a vidfs mount (DESIGN.md's table): bytes, numpy shapes, planes."""

import numpy as np

RAW_FORMATS = ("rgb", "rgbp", "gray", "nv12", "yuv420p", "p010")
IMAGE_FORMATS = ("png", "jpg")


def _check(fmt):
    if fmt not in RAW_FORMATS:
        raise ValueError(f"unknown raw frame format {fmt!r}: one of {', '.join(RAW_FORMATS)}"
                         + (" (png/jpg are encoded: Video.image reads them)"
                            if fmt in IMAGE_FORMATS else ""))


def dtype(fmt):
    """numpy dtype of a frame's samples: uint8, or little-endian uint16 for p010."""
    _check(fmt)
    return np.dtype("<u2") if fmt == "p010" else np.dtype(np.uint8)


def shape(fmt, w, h):
    """Shape of one frame as Video.frame returns it:
    rgb (H, W, 3) (HWC); rgbp (3, H, W) (CHW); gray (H, W);
    nv12, yuv420p, p010: flat (samples,), as the file lays them out (split_planes views
    them as planes; a 4:2:0 plane of an odd-sized frame has no 2-D shape in common with Y)."""
    _check(fmt)
    if fmt == "rgb":
        return (h, w, 3)
    if fmt == "rgbp":
        return (3, h, w)
    if fmt == "gray":
        return (h, w)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    return (w * h + 2 * cw * ch,)


def nbytes(fmt, w, h):
    """Bytes of one frame file (and of each frame in a batch file)."""
    return int(np.prod(shape(fmt, w, h))) * dtype(fmt).itemsize


def split_planes(frame, fmt, w, h):
    """Views of the planes of one flat frame: nv12 and p010 -> (Y (H, W), UV (H/2, W/2, 2));
    yuv420p -> (Y, U (H/2, W/2), V); chroma sizes rounded up. Other formats: (frame,)."""
    if fmt in ("rgb", "rgbp", "gray"):
        return (frame,)
    _check(fmt)
    frame = np.asarray(frame).reshape(-1)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y = frame[:w * h].reshape(h, w)
    if fmt == "yuv420p":
        u = frame[w * h:w * h + cw * ch].reshape(ch, cw)
        v = frame[w * h + cw * ch:].reshape(ch, cw)
        return y, u, v
    return y, frame[w * h:].reshape(ch, cw, 2)


def view_dir(size):
    """The frames directory of a view: frames/, frames_WxH/, frames_Wx/ or frames_xH/.
    size: None, an int (square), or (W, H) with one of them None to keep the aspect."""
    w, h = normalize_size(size) or (None, None)
    if w is None and h is None:
        return "frames"
    return f"frames_{w or ''}x{h or ''}"


def normalize_size(size):
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    w, h = size
    for v in (w, h):
        if v is not None and (not isinstance(v, (int, np.integer)) or v <= 0):
            raise ValueError(f"size {size!r}: sides are positive ints or None")
    if w is None and h is None:
        return None
    return (None if w is None else int(w), None if h is None else int(h))


def view_size(src_w, src_h, size):
    """The frame size a view gives (what vidfs's convert_view_size computes): one side
    given keeps the aspect ratio, the other rounded to the nearest even number."""
    s = normalize_size(size)
    if s is None:
        return src_w, src_h
    w, h = s
    if w is None:
        w = (src_w * h + src_h) // (2 * src_h) * 2
    elif h is None:
        h = (src_h * w + src_w) // (2 * src_w) * 2
    return max(w, 2), max(h, 2)
