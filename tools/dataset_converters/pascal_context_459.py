"""PASCAL-Context full labels (``trainval/*.mat``) -> CAT-Seg's PC-459 validation labels.

Every val image's ``LabelMap`` (1..459) becomes ``LabelMap - 1`` (0..458; 255 is a real class) in a uint16 TIFF:

    <VOC2010>/annotations_detectron2/pc459_val/<id>.tif
    <VOC2010>/annotations_detectron2/pc459_val.txt          (the converted ids, the dataset's ann_file)

The val ids come from ``--split`` (default ``ImageSets/SegmentationContext/val.txt`` as written by mmseg's
``pascal_context.py`` converter; CAT-Seg's ``pascalcontext_val.txt`` works too).  Needs scipy.

Usage: python tools/dataset_converters/pascal_context_459.py data/VOCdevkit/VOC2010
           --mat-dir data/VOCdevkit/VOC2010/trainval
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np
from mmengine.utils import track_iter_progress
from PIL import Image


def convert_label_map(label_map: np.ndarray) -> np.ndarray:
    """PASCAL-Context ``LabelMap`` (1..459) -> uint16 0..458."""
    lab = np.asarray(label_map).astype(np.int64) - 1
    if lab.min() < 0:
        raise ValueError(f'LabelMap has value {lab.min() + 1} < 1: not a PASCAL-Context full label map')
    return lab.astype(np.uint16)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('voc2010', help='VOCdevkit/VOC2010 folder')
    p.add_argument('--mat-dir', default=None, help='folder of the trainval/*.mat files (default VOC2010/trainval)')
    p.add_argument('--split', default='ImageSets/SegmentationContext/val.txt')
    a = p.parse_args(argv)
    import scipy.io
    mat_dir = a.mat_dir or osp.join(a.voc2010, 'trainval')
    out_dir = osp.join(a.voc2010, 'annotations_detectron2', 'pc459_val')
    os.makedirs(out_dir, exist_ok=True)
    split = a.split if osp.isabs(a.split) else osp.join(a.voc2010, a.split)
    with open(split) as f:
        ids = [ln.strip() for ln in f if ln.strip()]
    done = []
    for fid in track_iter_progress(ids, file=sys.stdout):
        src = osp.join(mat_dir, fid + '.mat')
        if not osp.exists(src):
            continue
        lab = convert_label_map(scipy.io.loadmat(src)['LabelMap'])
        Image.fromarray(lab).save(osp.join(out_dir, fid + '.tif'), 'TIFF')
        done.append(fid)
    with open(osp.join(a.voc2010, 'annotations_detectron2', 'pc459_val.txt'), 'w') as f:
        f.write('\n'.join(done) + '\n')
    print(f'wrote {len(done)} of {len(ids)} labels to {out_dir}')


if __name__ == '__main__':
    main()
