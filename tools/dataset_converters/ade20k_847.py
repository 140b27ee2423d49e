"""ADE20K-full (ADE20K_2021_17_01) -> CAT-Seg's ADE-847 validation set.

Reads ``index_ade20k.pkl``; for every validation image decodes the class mask from ``*_seg.png``
(R/10*256 + G), downsizes image and mask so that the short side is <= 512 (bilinear / nearest), maps the full-ADE
object ids to the 847 train ids (``declip_mm/data/seg_classes/ade847_full_ids.json``; others -> 65535) and writes

    <root>/images_detectron2/validation/<name>.jpg
    <root>/annotations_detectron2/validation/<name>.tif     (uint16; ignore 65535)

Usage: python tools/dataset_converters/ade20k_847.py data/ADE20K_2021_17_01 [--nproc 8]
Evaluate with configs/catseg/*_ade847.py (LoadSegAnnotations16, OVSegMetric ignore_index=65535).
"""
import argparse
import json
import os
import os.path as osp
import sys
import pickle

import numpy as np
from mmengine.utils import track_iter_progress, track_parallel_progress
from PIL import Image

IDS = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'declip_mm', 'data', 'seg_classes',
               'ade847_full_ids.json')


def class_mask(seg_rgb: np.ndarray) -> np.ndarray:
    """ADE20K full ``_seg.png`` (H, W, 3) -> object class ids (H, W) int32."""
    r = seg_rgb[..., 0].astype(np.int32)
    g = seg_rgb[..., 1].astype(np.int32)
    return (r // 10) * 256 + g


def to_train_ids(mask: np.ndarray, id_map: dict) -> np.ndarray:
    """Full-ADE class ids -> uint16 train ids (65535 = not one of the 847)."""
    out = np.full(mask.shape, 65535, np.uint16)
    for v in np.unique(mask):
        if int(v) in id_map:
            out[mask == v] = id_map[int(v)]
    return out


def short_side_512(h: int, w: int, max_size: int = 512):
    if w >= h > max_size:
        return max_size, round(w / float(h) * max_size)
    if h >= w > max_size:
        return round(h / float(w) * max_size), max_size
    return h, w


def convert_one(args):
    img_path, out_img, out_lab, id_map = args
    img = Image.open(img_path).convert('RGB')
    seg = np.asarray(Image.open(img_path.replace('.jpg', '_seg.png')).convert('RGB'))
    lab = class_mask(seg)
    h, w = lab.shape
    nh, nw = short_side_512(h, w)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.BILINEAR)
        lab = np.asarray(Image.fromarray(lab).resize((nw, nh), Image.NEAREST))
    img.save(out_img)
    Image.fromarray(to_train_ids(lab, id_map)).save(out_lab)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('root', help='ADE20K_2021_17_01 folder (contains index_ade20k.pkl)')
    p.add_argument('--nproc', type=int, default=4)
    a = p.parse_args(argv)
    with open(osp.join(a.root, 'index_ade20k.pkl'), 'rb') as f:
        index = pickle.load(f)
    with open(IDS) as f:
        id_map = {int(i): t for t, i in enumerate(json.load(f))}
    img_dir = osp.join(a.root, 'images_detectron2', 'validation')
    lab_dir = osp.join(a.root, 'annotations_detectron2', 'validation')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lab_dir, exist_ok=True)
    base = osp.dirname(osp.abspath(a.root))
    jobs = []
    for folder, name in zip(index['folder'], index['filename']):
        if name.split('_')[1] != 'val':
            continue
        src = osp.join(folder, name)
        if not osp.isabs(src):
            src = osp.join(base, src)
        jobs.append((src, osp.join(img_dir, name), osp.join(lab_dir, name.replace('.jpg', '.tif')), id_map))
    if a.nproc > 1:
        track_parallel_progress(convert_one, jobs, nproc=a.nproc, file=sys.stdout)
    else:
        for job in track_iter_progress(jobs, file=sys.stdout):
            convert_one(job)
    print(f'wrote {len(jobs)} validation images to {img_dir} and {lab_dir}')


if __name__ == '__main__':
    main()
