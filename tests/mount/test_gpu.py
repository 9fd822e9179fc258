"""NVDEC: the same bytes as FFmpeg's software decode (DESIGN.md: bit-exact on
every backend). Runs only with VIDFS_GPU=1 (scripts/test.sh --gpu)."""

import concurrent.futures as cf
import errno
import json
import os
import shutil
import subprocess

import pytest

import util

pytestmark = pytest.mark.gpu

# Every NVDEC since Maxwell decodes these (sizes above its minimums: 144x144 for HEVC,
# 128x128 for VP9).
NVDEC_CLIPS = ["h264_bframes.mp4", "h264_opengop.mkv", "hevc_8bit.mkv", "vp9.webm",
               "interlaced.ts", "h264_720p.mp4"]
# What some GPUs' NVDEC decodes and others' does not (cuvidGetDecoderCaps says which).
GPU_DEPENDENT_CLIPS = {
    "av1.mkv": "AV1 (Ampere and later; not every data-centre part)",
    "odd_177x99.webm": "VP9 of 99 rows (below the 128 that most NVDECs need)",
}


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


def decoded(m):
    """frames_decoded of the mount's stats.json: frames per backend."""
    with open(os.path.join(m.mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)["frames_decoded"]


def assert_all_from_nvdec(m):
    """backend=nvdec means NVDEC: every frame decoded came from it, none from the CPU."""
    d = decoded(m)
    assert d["nvdec"] > 0 and d["cpu"] == 0 and d["gpu_fallbacks"] == 0, d


@pytest.mark.parametrize("name", NVDEC_CLIPS)
def test_nvdec_frames_are_bit_exact(nvdec_mount, name):
    r = util.ref(name)
    wrong = []
    for i in r.sample_indices():
        got = util.read_all(os.path.join(nvdec_mount.mnt, name, "frames", f"{i}.nv12"))
        if got != r.frame("nv12", i):
            wrong.append(f"frame {i}: {util.describe_diff(got, r.frame('nv12', i))}")
    assert wrong == []
    assert_all_from_nvdec(nvdec_mount)


@pytest.mark.parametrize("name", sorted(GPU_DEPENDENT_CLIPS))
def test_nvdec_decodes_or_refuses_what_the_gpu_may_lack(nvdec_mount, name):
    """Bit-exact from NVDEC where this GPU decodes it; otherwise EIO and the log line that
    says no allowed decoder takes the stream (never a silent CPU decode). The second case is
    reported as a skip naming what this GPU lacks."""
    r = util.ref(name)
    nvdec_mount.new_log()
    try:
        got = util.read_all(os.path.join(nvdec_mount.mnt, name, "frames", "0.nv12"))
    except OSError as e:
        assert e.errno == errno.EIO, e
        assert "no decoder allowed by the backend setting" in nvdec_mount.new_log()
        assert decoded(nvdec_mount)["cpu"] == 0
        pytest.skip(f"this GPU's NVDEC cannot decode {name}: {GPU_DEPENDENT_CLIPS[name]}; "
                    "EIO and a log line under backend=nvdec, as it should")
    assert got == r.frame("nv12", 0), util.describe_diff(got, r.frame("nv12", 0))
    for i in r.sample_indices():
        assert util.read_all(os.path.join(nvdec_mount.mnt, name, "frames", f"{i}.nv12")) == \
            r.frame("nv12", i), i
    assert_all_from_nvdec(nvdec_mount)


def test_nvdec_refuses_mpeg4_part2(nvdec_mount):
    """vidfs leaves MPEG-2/4 to the CPU (their IDCT is not bit-exact by specification):
    under backend=nvdec a frame of one is EIO with a log line, not a CPU decode."""
    nvdec_mount.new_log()
    with pytest.raises(OSError) as e:
        util.read_all(os.path.join(nvdec_mount.mnt, "mpeg4.avi", "frames", "0.nv12"))
    assert e.value.errno == errno.EIO
    assert "no decoder allowed by the backend setting" in nvdec_mount.new_log()
    assert decoded(nvdec_mount)["cpu"] == 0


def test_nvdec_p010_is_bit_exact(nvdec_mount):
    r = util.ref("hevc_10bit.mp4")
    for i in r.sample_indices():
        got = util.read_all(os.path.join(nvdec_mount.mnt, "hevc_10bit.mp4", "frames", f"{i}.p010"))
        assert got == r.frame("p010", i), f"frame {i}: {util.describe_diff(got, r.frame('p010', i))}"
    assert_all_from_nvdec(nvdec_mount)


@pytest.mark.parametrize("fmt", ["rgb", "rgbp"])
def test_nvdec_rgb_close_to_ffmpeg(nvdec_mount, fmt):
    r = util.ref("h264_720p.mp4")
    for i in r.sample_indices()[:5]:
        got = util.read_all(os.path.join(nvdec_mount.mnt, "h264_720p.mp4", "frames", f"{i}.{fmt}"))
        assert util.psnr(got, r.frame(fmt, i)) >= 40, i
    assert_all_from_nvdec(nvdec_mount)


def test_nvdec_scaled_view(nvdec_mount):
    r = util.ref("h264_720p.mp4")
    got = util.read_all(os.path.join(nvdec_mount.mnt, "h264_720p.mp4", "frames_320x180", "5.rgb"))
    assert util.psnr(got, r.frame("rgb", 5, (320, 180))) >= 35
    assert_all_from_nvdec(nvdec_mount)


def test_nvdec_does_not_fall_back_to_the_cpu(gpu, make_mount, corpus):
    """H.264 4:4:4 is beyond NVDEC: backend=nvdec refuses its frames (EIO, a log line naming
    the codec); backend=auto serves them from the CPU."""
    strict = make_mount(corpus, "nvdec444", opts=["backend=nvdec"])
    with pytest.raises(OSError) as e:
        util.read_all(os.path.join(strict.mnt, "h264_444.mp4", "frames", "0.nv12"))
    assert e.value.errno == errno.EIO
    assert "h264" in strict.new_log()
    assert decoded(strict)["cpu"] == 0
    auto = make_mount(corpus, "auto444", opts=["backend=auto"])
    r = util.ref("h264_444.mp4")
    # gray is the Y plane, untouched by any conversion: bit-exact for 4:4:4 too
    assert util.read_all(os.path.join(auto.mnt, "h264_444.mp4", "frames", "0.gray")) == \
        r.frame("gray", 0)
    assert decoded(auto)["cpu"] > 0


def test_auto_backend_is_bit_exact(gpu, make_mount, corpus):
    m = make_mount(corpus, "auto", opts=["backend=auto"])
    for name in ["h264_bframes.mp4", "hevc_8bit.mkv", "mpeg2.mpg"]:
        r = util.ref(name)
        i = r.n // 2
        assert util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.nv12")) == r.frame("nv12", i)
    assert decoded(m)["nvdec"] > 0


def gpu_count():
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return sum(line.startswith("GPU ") for line in out.splitlines())


def read_in_parallel(m, names, frames):
    with cf.ThreadPoolExecutor(len(names)) as ex:
        return list(ex.map(lambda n: [util.read_all(os.path.join(m.mnt, n, "frames", f"{i}.nv12"))
                                      for i in frames], names))


@pytest.mark.parametrize("gpus", ["all", "0,7"])
def test_gpus_setting_uses_the_gpus_there_are(gpu, make_mount, corpus, gpus):
    """gpus=all lists every GPU; an ordinal with no GPU is dropped (a warning), not EIO."""
    # -o takes a comma inside a value escaped
    m = make_mount(corpus, "gpus" + gpus.replace(",", "_"),
                   opts=["gpus=" + gpus.replace(",", "\\,")])
    names = ["h264_bframes.mp4", "h264_720p.mp4", "vp9.webm", "hevc_8bit.mkv"]
    got = read_in_parallel(m, names, range(0, 20, 3))
    for name, frames in zip(names, got):
        r = util.ref(name)
        assert frames == [r.frame("nv12", i) for i in range(0, 20, 3)], name
    with open(os.path.join(m.mnt, ".vidfs", "stats.json")) as f:
        by_gpu = json.load(f)["frames_decoded"]["nvdec_by_gpu"]
    n = gpu_count()
    want = list(range(n)) if gpus == "all" else [g for g in (0, 7) if g < n]
    assert sorted(int(k) for k in by_gpu) == want, by_gpu
    assert sum(by_gpu.values()) > 0, by_gpu


def test_parallel_readers_spread_over_gpus(gpu, make_mount, corpus):
    n = gpu_count()
    if n < 2:
        pytest.skip(f"{n} GPU here: spreading needs two (scripts/test.sh --gpu on a multi-GPU "
                    "machine runs it)")
    m = make_mount(corpus, "spread", opts=["gpus=all", f"pool_size={2 * n}"])
    read_in_parallel(m, ["h264_bframes.mp4", "h264_720p.mp4", "vp9.webm", "hevc_8bit.mkv"],
                     range(10))
    with open(os.path.join(m.mnt, ".vidfs", "stats.json")) as f:
        by_gpu = json.load(f)["frames_decoded"]["nvdec_by_gpu"]
    assert sum(v > 0 for v in by_gpu.values()) >= 2, by_gpu
