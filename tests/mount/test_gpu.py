"""NVDEC: the same bytes as FFmpeg's software decode (DESIGN.md: bit-exact on
every backend). Runs only with VIDFS_GPU=1 (scripts/test.sh --gpu)."""

import os
import shutil

import pytest

import util

pytestmark = pytest.mark.gpu

NVDEC_CLIPS = ["h264_bframes.mp4", "h264_opengop.mkv", "hevc_8bit.mkv", "vp9.webm", "av1.mkv",
               "interlaced.ts", "odd_177x99.webm", "h264_720p.mp4", "mpeg4.avi"]


@pytest.fixture(scope="module")
def gpu():
    if os.environ.get("VIDFS_GPU") != "1":
        pytest.skip("no GPU: VIDFS_GPU is not 1 (scripts/test.sh --gpu on a machine with an "
                    "NVIDIA GPU runs these)")
    if not shutil.which("nvidia-smi") and not os.path.exists("/dev/nvidia0"):
        pytest.fail("VIDFS_GPU=1 but no NVIDIA driver (/dev/nvidia0, nvidia-smi) here")


@pytest.fixture
def nvdec_mount(gpu, make_mount, corpus):
    return make_mount(corpus, "nvdec", opts=["backend=nvdec"])


@pytest.mark.parametrize("name", NVDEC_CLIPS)
def test_nvdec_frames_are_bit_exact(nvdec_mount, name):
    r = util.ref(name)
    wrong = []
    for i in r.sample_indices():
        got = util.read_all(os.path.join(nvdec_mount.mnt, name, "frames", f"{i}.nv12"))
        if got != r.frame("nv12", i):
            wrong.append(f"frame {i}: {util.describe_diff(got, r.frame('nv12', i))}")
    assert wrong == []


def test_nvdec_p010_is_bit_exact(nvdec_mount):
    r = util.ref("hevc_10bit.mp4")
    for i in r.sample_indices():
        got = util.read_all(os.path.join(nvdec_mount.mnt, "hevc_10bit.mp4", "frames", f"{i}.p010"))
        assert got == r.frame("p010", i), f"frame {i}: {util.describe_diff(got, r.frame('p010', i))}"


@pytest.mark.parametrize("fmt", ["rgb", "rgbp"])
def test_nvdec_rgb_close_to_ffmpeg(nvdec_mount, fmt):
    r = util.ref("h264_720p.mp4")
    for i in r.sample_indices()[:5]:
        got = util.read_all(os.path.join(nvdec_mount.mnt, "h264_720p.mp4", "frames", f"{i}.{fmt}"))
        assert util.psnr(got, r.frame(fmt, i)) >= 40, i


def test_nvdec_scaled_view(nvdec_mount):
    r = util.ref("h264_720p.mp4")
    got = util.read_all(os.path.join(nvdec_mount.mnt, "h264_720p.mp4", "frames_320x180", "5.rgb"))
    assert util.psnr(got, r.frame("rgb", 5, (320, 180))) >= 35


def test_auto_backend_is_bit_exact(gpu, make_mount, corpus):
    m = make_mount(corpus, "auto", opts=["backend=auto"])
    for name in ["h264_bframes.mp4", "hevc_8bit.mkv", "mpeg2.mpg"]:
        r = util.ref(name)
        i = r.n // 2
        assert util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.nv12")) == r.frame("nv12", i)
