"""COCO-Stuff-164k 171-class train-id maps -> COCO-Object (background + 80 things) for training-free evaluation.

Input: ``<root>/annotations/<split>/*_labelTrainIds.png`` written by mmseg's ``coco_stuff164k.py`` converter
(0..79 things, 80..170 stuff, 255 unlabeled).  Output next to them: ``*_instanceTrainIds.png`` with
0 = background (every stuff class **and** the unlabeled pixels), 1..80 = things.  This is the conversion behind the
published training-free COCO-Object numbers (GroupViT's ``convert_coco_object.py``, reused by TCL, ProxyCLIP and
DeCLIP): its background rule covers every id above 90, which includes 255, so nothing is left as ignore.

Usage: python tools/dataset_converters/coco_object.py data/coco_stuff164k [--split val2017]
"""
import argparse
import glob
import os.path as osp

import numpy as np
from PIL import Image


def stuff171_to_object(lab: np.ndarray) -> np.ndarray:
    """(H, W) COCO-Stuff-171 train ids -> COCO-Object ids (uint8): things 0..79 -> 1..80, everything else -> 0."""
    lab = np.asarray(lab)
    out = np.zeros(lab.shape, np.uint8)
    things = lab < 80
    out[things] = lab[things].astype(np.uint8) + 1
    return out


def main(argv=None):
    from mmengine.utils import track_iter_progress
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('root')
    p.add_argument('--split', default='val2017')
    a = p.parse_args(argv)
    files = sorted(glob.glob(osp.join(a.root, 'annotations', a.split, '*_labelTrainIds.png')))
    if not files:
        raise FileNotFoundError(f'no *_labelTrainIds.png under {a.root}/annotations/{a.split}: run mmseg\'s '
                                'coco_stuff164k.py converter first')
    for f in track_iter_progress(files):
        out = f.replace('_labelTrainIds.png', '_instanceTrainIds.png')
        Image.fromarray(stuff171_to_object(np.asarray(Image.open(f)))).save(out)
    print(f'wrote {len(files)} COCO-Object label maps')


if __name__ == '__main__':
    main()
