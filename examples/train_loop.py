#!/usr/bin/env python3
"""A training loop fed by vidfs: a tiny 3-D conv net learns which video a clip comes from.

    scripts/run.sh                            # mounts the sample videos at ./mnt
    /usr/bin/python3 examples/train_loop.py mnt --steps 20
    /usr/bin/python3 examples/train_loop.py --source samples     # mounts it here, then trains

Clips are read by vidfs.ClipDataset through DataLoader workers: one batch file per clip
(frames_WxH/A-B.rgbp, scaled inside vidfs), uint8 (T, C, H, W) turned into normalized
floats. On a machine with CUDA the model runs there and batches come through pinned memory.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))  # the source tree's vidfs first

import torch  # noqa: E402
from torch import nn  # noqa: E402

import vidfs  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", nargs="?", default="mnt", help="a vidfs mount (default ./mnt)")
    p.add_argument("--source", help="a directory of videos to mount for the run instead")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clip-len", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="frames scaled to SIZE x SIZE")
    p.add_argument("--sampler", default="random_indices",
                   help="random_indices, regular_indices, random_timestamps, keyframes ...")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


class TinyNet(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 16, kernel_size=3, stride=(1, 2, 2), padding=1), nn.ReLU(),
            nn.Conv3d(16, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Linear(32, classes)

    def forward(self, x):  # x: (B, T, C, H, W) as the dataset gives it
        return self.head(self.features(x.transpose(1, 2)))  # Conv3d wants (B, C, T, H, W)


def train(root, a):
    videos = [os.path.relpath(p, root) for p in vidfs.find_videos(root)]
    label = {name: k for k, name in enumerate(videos)}
    ds = vidfs.ClipDataset(root, clip_len=a.clip_len, size=a.size, fmt="rgbp",
                           sampler=a.sampler, seed=a.seed, dtype=torch.float32,
                           mean=[0.45, 0.45, 0.45], std=[0.225, 0.225, 0.225],
                           target=label.__getitem__)
    print(f"{len(ds.videos)} videos, {len(ds)} clips ({len(ds.skipped)} videos left out: "
          f"{', '.join(os.path.relpath(p, root) for p, _ in ds.skipped) or 'none'})")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(a.seed)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, pin_memory=cuda,
        drop_last=True, generator=torch.Generator().manual_seed(a.seed))
    model = TinyNet(len(videos)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    step, epoch, t0, losses = 0, 0, time.monotonic(), []
    while step < a.steps:
        ds.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            print(f"step {step} epoch {epoch} batch {tuple(x.shape)} loss {losses[-1]:.4f}",
                  flush=True)
            if step == a.steps:
                break
        epoch += 1
    dt = time.monotonic() - t0
    print(f"done: {step} steps, {step * a.batch / dt:.1f} clips/s, loss {losses[0]:.4f} -> "
          f"{losses[-1]:.4f}")


def main():
    a = parse_args()
    if a.source:
        with vidfs.mount(a.source) as m:
            train(m.path, a)
    else:
        if not os.path.ismount(a.root):
            sys.exit(f"{a.root} is not a mount point: run scripts/run.sh, or use --source DIR")
        train(a.root, a)


if __name__ == "__main__":
    main()
