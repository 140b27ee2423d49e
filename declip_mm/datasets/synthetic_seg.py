"""Embedded default: a small synthetic open-vocabulary segmentation set (no download).

Each image is a generated scene: a sky band, a ground band (grass / sand / water / road), buildings (rectangles),
trees (discs) and cars (small rectangles), each class drawn with its own colour plus noise; the label map holds the
class index of every pixel, and a 1-pixel ring around each object is 255 (ignored), like real boundary labels.
:class:`SyntheticSegDataset` writes the set on first use (deterministic seed) and reads it like any mmseg dataset.

    python -m declip_mm.datasets.synthetic_seg OUT_DIR --num 8   # write it yourself
"""
import argparse
import os
import os.path as osp
from typing import Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset

from declip_mm.registry import DATASETS, SEG_DATASETS, register_everywhere

SYNTH_CLASSES = ('sky', 'grass', 'sand', 'water', 'road', 'building', 'tree', 'car')
SYNTH_PALETTE = [[135, 190, 235], [60, 160, 60], [220, 200, 140], [40, 90, 200], [90, 90, 90], [170, 80, 60],
                 [20, 90, 30], [220, 30, 30]]

__all__ = ['SYNTH_CLASSES', 'SYNTH_PALETTE', 'make_scene', 'write_synthetic_seg', 'SyntheticSegDataset']


def make_scene(rng: np.random.RandomState, size: Tuple[int, int] = (96, 128)) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 (H, W, 3) and label uint8 (H, W) with values in [0, 8) or 255."""
    H, W = size
    label = np.zeros((H, W), np.uint8)
    horizon = rng.randint(H // 4, H // 2)
    label[horizon:] = rng.choice([1, 2, 3, 4])  # ground
    yy, xx = np.mgrid[:H, :W]
    objects = []
    for _ in range(rng.randint(1, 3)):  # buildings standing on the horizon
        w = rng.randint(W // 8, W // 4)
        x0 = rng.randint(0, W - w)
        h = rng.randint(H // 6, horizon + 1)
        objects.append((5, (yy >= max(horizon - h, 0)) & (yy < horizon + 2) & (xx >= x0) & (xx < x0 + w)))
    for _ in range(rng.randint(1, 3)):  # trees
        r = rng.randint(H // 12, H // 6)
        cy, cx = rng.randint(horizon - r, horizon + r), rng.randint(r, W - r)
        objects.append((6, (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r))
    for _ in range(rng.randint(0, 3)):  # cars on the ground
        w, h = rng.randint(W // 10, W // 5), rng.randint(H // 14, H // 8)
        y0, x0 = rng.randint(horizon, H - h), rng.randint(0, W - w)
        objects.append((7, (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)))
    for cls, m in objects:
        label[m] = cls
    img = np.zeros((H, W, 3), np.float32)
    pal = np.asarray(SYNTH_PALETTE, np.float32)
    img[:] = pal[label]
    img += rng.normal(0, 12, img.shape)
    # ignore ring around every object
    ring = np.zeros((H, W), bool)
    for _, m in objects:
        grown = m.copy()
        grown[1:] |= m[:-1]
        grown[:-1] |= m[1:]
        grown[:, 1:] |= m[:, :-1]
        grown[:, :-1] |= m[:, 1:]
        ring |= grown & ~m
    label[ring & (rng.rand(H, W) < 0.5)] = 255
    return np.clip(img, 0, 255).astype(np.uint8), label


def write_synthetic_seg(root: str, num: int = 8, size: Tuple[int, int] = (96, 128), seed: int = 0,
                        split: str = 'train') -> str:
    """Write ``root/images/<split>/*.jpg`` and ``root/annotations/<split>/*.png``; returns ``root``."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    img_dir, ann_dir = osp.join(root, 'images', split), osp.join(root, 'annotations', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num):
        # vary the size a little so that test batches mix shapes
        hw = (size[0] + 8 * (i % 3), size[1] - 8 * (i % 2))
        img, lab = make_scene(rng, hw)
        Image.fromarray(img).save(osp.join(img_dir, f'synth_{i:04d}.jpg'), quality=95)
        Image.fromarray(lab).save(osp.join(ann_dir, f'synth_{i:04d}.png'))
    with open(osp.join(root, f'{split}.done'), 'w') as f:
        f.write(f'{num} {size} {seed}\n')
    return root


@register_everywhere(DATASETS, SEG_DATASETS)
class SyntheticSegDataset(BaseSegDataset):
    """The synthetic scenes (8 named classes, 255 ignore); generated into ``data_root`` when missing.

    Args:
        num_images / image_size / seed / split: generation parameters (``data_prefix`` defaults to this split).
    """
    METAINFO = dict(classes=SYNTH_CLASSES, palette=SYNTH_PALETTE)

    def __init__(self, data_root: str = 'data/synthetic_seg', split: str = 'train', num_images: int = 8,
                 image_size: Tuple[int, int] = (96, 128), seed: int = 0, data_prefix: dict = None, **kwargs):
        if not osp.isfile(osp.join(data_root, f'{split}.done')):
            write_synthetic_seg(data_root, num_images, tuple(image_size), seed, split)
        data_prefix = data_prefix or dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}')
        super().__init__(data_root=data_root, data_prefix=data_prefix, img_suffix='.jpg', seg_map_suffix='.png',
                         **kwargs)


def main(argv=None):
    p = argparse.ArgumentParser(description='write the synthetic segmentation set')
    p.add_argument('out_dir')
    p.add_argument('--num', type=int, default=8)
    p.add_argument('--split', default='train')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    print(write_synthetic_seg(a.out_dir, a.num, seed=a.seed, split=a.split))


if __name__ == '__main__':
    main()
