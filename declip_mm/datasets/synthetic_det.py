"""A tiny synthetic open-vocabulary detection set (the embedded default): coloured shapes of named classes on
noisy backgrounds, COCO-format annotations (boxes + polygons), split base / novel like OV-COCO.

Layout written by :func:`make_synthetic_ov_det` under ``out_dir``::

    images/train/000000.png ...   images/val/000000.png ...
    annotations/train_base.json   train images, base annotations only, all classes listed (like *_65_cat.json)
    annotations/train_all.json    train images, all annotations
    annotations/val.json          val images, all annotations (evaluate base / novel AP50)
    annotations/train_pseudo.json open-world pseudo boxes of the train images in OV-DQUO's format (a json list of
                                  {image_id, bbox xywh, category_id -1, pseudo 1, weight}): every novel object's box,
                                  jittered, weight 0.6-1.0, plus 0-2 background boxes, weight 0.05-0.4
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

SYNTH_CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')
SYNTH_NOVEL_CLASSES = ('triangle', 'ring')
SYNTH_BASE_CLASSES = tuple(c for c in SYNTH_CLASSES if c not in SYNTH_NOVEL_CLASSES)


def synth_categories():
    return [dict(id=i + 1, name=n, split='novel' if n in SYNTH_NOVEL_CLASSES else 'base')
            for i, n in enumerate(SYNTH_CLASSES)]


def _shape_mask(name: str, size: int, cx: int, cy: int, r: int, H: int, W: int) -> np.ndarray:
    import cv2
    m = np.zeros((H, W), np.uint8)
    if name == 'circle':
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif name == 'ring':
        cv2.circle(m, (cx, cy), r, 1, -1)
        cv2.circle(m, (cx, cy), max(r // 2, 1), 0, -1)
    elif name == 'square':
        cv2.rectangle(m, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    elif name == 'triangle':
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif name == 'diamond':
        pts = np.array([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif name == 'cross':
        t = max(r // 3, 1)
        cv2.rectangle(m, (cx - r, cy - t), (cx + r, cy + t), 1, -1)
        cv2.rectangle(m, (cx - t, cy - r), (cx + t, cy + r), 1, -1)
    else:
        raise ValueError(f'unknown synthetic shape {name!r}')
    return m


def _polygons(mask: np.ndarray):
    import cv2
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.flatten().astype(float).tolist() for c in contours if len(c) >= 3]


def _make_split(out_dir: str, split: str, num: int, size: int, rng: np.random.Generator, ann_id0: int):
    import cv2
    img_dir = osp.join(out_dir, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    aid = ann_id0
    cats = synth_categories()
    for i in range(num):
        H = W = size
        img = (rng.integers(0, 60, (H, W, 3)) + rng.integers(40, 120, (1, 1, 3))).clip(0, 255).astype(np.uint8)
        n_obj = int(rng.integers(1, 4))
        occupied = np.zeros((H, W), bool)
        for _ in range(n_obj):
            for _try in range(10):
                c = cats[int(rng.integers(len(cats)))]
                r = int(rng.integers(size // 10, size // 4))
                cx, cy = int(rng.integers(r, W - r)), int(rng.integers(r, H - r))
                m = _shape_mask(c['name'], size, cx, cy, r, H, W)
                if not (occupied & m.astype(bool)).any():
                    break
            else:
                continue
            occupied |= m.astype(bool)
            colour = rng.integers(150, 256, 3)
            img[m.astype(bool)] = colour
            ys, xs = np.nonzero(m)
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            anns.append(dict(id=aid, image_id=i + 1, category_id=c['id'], bbox=[x1, y1, x2 - x1, y2 - y1],
                             area=float(m.sum()), iscrowd=0, segmentation=_polygons(m)))
            aid += 1
        fname = f'{i:06d}.png'
        cv2.imwrite(osp.join(img_dir, fname), img[..., ::-1])
        images.append(dict(id=i + 1, file_name=fname, height=H, width=W))
    cat_list = [dict(id=c['id'], name=c['name'], supercategory='shape') for c in cats]
    return dict(images=images, annotations=anns, categories=cat_list), aid


def make_pseudo_labels(train_all: dict, novel_names: Sequence[str] = SYNTH_NOVEL_CLASSES, seed: int = 0,
                       jitter: float = 0.1, max_background: int = 2) -> List[dict]:
    """Open-world pseudo boxes for the train images (OV-DQUO's json format), deterministic for a given seed.

    For every object of a novel class (the ones the base-only training file drops): its box with each edge moved by
    up to ``jitter`` x its size, weight in [0.6, 1.0]; plus 0..``max_background`` random background boxes per image,
    weight in [0.05, 0.4].  Boxes stay inside the image and at least 2 px wide and high.
    """
    rng = np.random.default_rng(seed + 7919)
    novel_ids = {c['id'] for c in train_all['categories'] if c['name'] in set(novel_names)}
    by_img: Dict[int, List[dict]] = {}
    for a in train_all['annotations']:
        by_img.setdefault(a['image_id'], []).append(a)
    out = []

    def box(x1, y1, x2, y2, W, H):
        x1, y1 = float(np.clip(x1, 0, W - 2)), float(np.clip(y1, 0, H - 2))
        x2, y2 = float(np.clip(x2, x1 + 2, W)), float(np.clip(y2, y1 + 2, H))
        return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]

    for im in train_all['images']:
        W, H = im['width'], im['height']
        for a in by_img.get(im['id'], ()):
            if a['category_id'] not in novel_ids:
                continue
            x, y, w, h = a['bbox']
            d = rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
            out.append(dict(image_id=im['id'], bbox=box(x + d[0], y + d[1], x + w + d[2], y + h + d[3], W, H),
                            category_id=-1, pseudo=1, weight=round(float(rng.uniform(0.6, 1.0)), 4)))
        for _ in range(int(rng.integers(0, max_background + 1))):
            bw, bh = rng.uniform(0.1, 0.4, 2) * np.array([W, H])
            x1, y1 = rng.uniform(0, W - bw), rng.uniform(0, H - bh)
            out.append(dict(image_id=im['id'], bbox=box(x1, y1, x1 + bw, y1 + bh, W, H), category_id=-1, pseudo=1,
                            weight=round(float(rng.uniform(0.05, 0.4)), 4)))
    return out


def make_synthetic_ov_det(out_dir: str, num_train: int = 32, num_val: int = 16, size: int = 128,
                          seed: int = 0, pseudo: bool = True) -> Dict[str, str]:
    """Write the synthetic set (deterministic for a given seed); returns the annotation file paths.

    ``pseudo``: also write ``annotations/train_pseudo.json`` (:func:`make_pseudo_labels`, key ``train_pseudo``).
    """
    from .ov_detection import make_ov_coco_split
    rng = np.random.default_rng(seed)
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    train, next_id = _make_split(out_dir, 'train', num_train, size, rng, 1)
    val, _ = _make_split(out_dir, 'val', num_val, size, rng, next_id)
    cats = synth_categories()
    files = dict(train_base=make_ov_coco_split(train, 'base', categories=cats, all_categories=True),
                 train_all=train, val=make_ov_coco_split(val, 'all', categories=cats, all_categories=True))
    if pseudo:
        files['train_pseudo'] = make_pseudo_labels(train, seed=seed)
    paths = {}
    for k, obj in files.items():
        paths[k] = osp.join(ann_dir, f'{k}.json')
        with open(paths[k], 'w') as f:
            json.dump(obj, f)
    return paths


def write_class_list(path: str, names: Sequence[str] = SYNTH_CLASSES) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(names) + '\n')
