"""A tiny generated image set with objects of known boxes and masks (the embedded default's data).

``generate_synthetic_dataset(out_dir, num_images=100)`` writes ``images/*.png`` and a COCO-style
``annotations.json`` (``images``, ``annotations`` with ``bbox`` [x, y, w, h], polygon ``segmentation``, ``area``,
``category_id``, ``iscrowd``; ``categories`` with ``isthing``). Things are coloured rectangles / ellipses / triangles
on one of a few textured backgrounds (the stuff class covering the rest of the image). Deterministic in ``seed``;
nothing is downloaded.
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

THING_CLASSES = ('red rectangle', 'green ellipse', 'blue triangle', 'yellow rectangle', 'magenta ellipse')
STUFF_CLASSES = ('striped background', 'checkered background', 'noisy background')
_THING_COLORS = ((220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 30), (210, 40, 210))
_SHAPES = ('rect', 'ellipse', 'tri', 'rect', 'ellipse')


def _background(kind: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(60, 160, size=3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:
        period = int(rng.integers(6, 14))
        img += ((yy // period) % 2)[..., None] * 50
    elif kind == 1:
        period = int(rng.integers(8, 16))
        img += (((yy // period) + (xx // period)) % 2)[..., None] * 50
    else:
        img += rng.normal(0, 25, size=(h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_polygon(shape: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    if shape == 'rect':
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.int32)
    if shape == 'tri':
        return np.array([[x + w // 2, y], [x + w, y + h], [x, y + h]], np.int32)
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return np.stack([x + w / 2 + w / 2 * np.cos(t), y + h / 2 + h / 2 * np.sin(t)], 1).round().astype(np.int32)


def make_image(rng: np.random.Generator, size_range: Tuple[int, int] = (80, 128), max_objects: int = 4):
    """One image -> (RGB uint8 (H, W, 3), list of (class index, polygon (P, 2)), stuff index, list of masks)."""
    h = int(rng.integers(size_range[0], size_range[1] + 1))
    w = int(rng.integers(size_range[0], size_range[1] + 1))
    stuff = int(rng.integers(len(STUFF_CLASSES)))
    img = _background(stuff, h, w, rng)
    objs = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        c = int(rng.integers(len(THING_CLASSES)))
        ow = int(rng.integers(max(8, w // 6), max(9, w // 2)))
        oh = int(rng.integers(max(8, h // 6), max(9, h // 2)))
        x, y = int(rng.integers(0, w - ow)), int(rng.integers(0, h - oh))
        poly = _shape_polygon(_SHAPES[c], x, y, ow, oh)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        for _, _, m in objs:  # later objects occlude earlier ones
            m[mask > 0] = 0
        img[mask > 0] = _THING_COLORS[c]
        objs.append((c, poly, mask))
    return img, objs, stuff


def generate_synthetic_dataset(out_dir: str, num_images: int = 100, seed: int = 0,
                               size_range: Tuple[int, int] = (80, 128)) -> str:
    """Write the images and ``annotations.json`` under ``out_dir`` (skipped when already complete).

    Returns the annotation path. Category ids: things 1..5, stuff 6..8.
    """
    ann_path = osp.join(out_dir, 'annotations.json')
    if osp.isfile(ann_path):
        with open(ann_path) as f:
            if len(json.load(f)['images']) == num_images:
                return ann_path
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    cats = [dict(id=i + 1, name=n, isthing=1) for i, n in enumerate(THING_CLASSES)]
    cats += [dict(id=len(THING_CLASSES) + i + 1, name=n, isthing=0) for i, n in enumerate(STUFF_CLASSES)]
    for i in range(num_images):
        img, objs, stuff = make_image(rng, size_range)
        name = f'images/{i:04d}.png'
        _atomic_imwrite(osp.join(out_dir, name), img)
        h, w = img.shape[:2]
        images.append(dict(id=i, file_name=name, height=h, width=w))
        thing_union = np.zeros((h, w), np.uint8)
        for c, poly, mask in objs:
            if mask.sum() == 0:
                continue
            thing_union |= mask
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=c + 1, iscrowd=0,
                             bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)], area=float(mask.sum()),
                             segmentation=[poly.reshape(-1).astype(float).tolist()]))
        bg = 1 - thing_union
        if bg.sum() > 0:
            ys, xs = np.nonzero(bg)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            from pycocotools import mask as mask_utils
            rle = mask_utils.encode(np.asfortranarray(bg))
            rle['counts'] = rle['counts'].decode('ascii')
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=len(THING_CLASSES) + stuff + 1, iscrowd=0,
                             bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)], area=float(bg.sum()),
                             segmentation=rle))
    tmp = f'{ann_path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    os.replace(tmp, ann_path)  # atomic: concurrent generators (several ranks) never expose a partial file
    return ann_path


def _atomic_imwrite(path: str, rgb: np.ndarray) -> None:
    tmp = f'{path}.{os.getpid()}.tmp.png'
    cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    os.replace(tmp, path)


def class_names() -> List[str]:
    return list(THING_CLASSES) + list(STUFF_CLASSES)
