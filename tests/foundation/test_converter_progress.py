"""Dataset tools that walk many files run end to end on tiny inputs and show mmengine progress bars."""
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))


def _ade_root(tmp_path, n=3):
    root = tmp_path / 'ADE20K_2021_17_01'
    folder = root / 'images' / 'ADE' / 'validation' / 'x'
    folder.mkdir(parents=True)
    names = []
    for i in range(n):
        name = f'ADE_val_{i:08d}.jpg'
        Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)).save(folder / name)
        seg = np.zeros((8, 10, 3), np.uint8)
        seg[..., 0], seg[..., 1] = 10, 5  # class id (10 // 10) * 256 + 5 = 261
        Image.fromarray(seg).save(folder / name.replace('.jpg', '_seg.png'))
        names.append(name)
    rel = osp.relpath(str(folder), osp.dirname(str(root)))
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump({'folder': [rel] * n + [rel], 'filename': names + ['ADE_train_00000001.jpg']}, f)
    return root, names


@pytest.mark.parametrize('nproc', [1, 2])
def test_ade20k_847_converts_with_progress(tmp_path, capfd, nproc):
    import ade20k_847
    root, names = _ade_root(tmp_path)
    ade20k_847.main([str(root), '--nproc', str(nproc)])
    out = capfd.readouterr().out
    assert '3/3' in out and 'task/s' in out  # mmengine's progress bar reached the end
    labs = sorted(os.listdir(root / 'annotations_detectron2' / 'validation'))
    assert labs == [n.replace('.jpg', '.tif') for n in names]  # the train image is skipped
    ids = json.load(open(ade20k_847.IDS))
    want = ids.index(261) if 261 in ids else 65535
    assert (np.asarray(Image.open(root / 'annotations_detectron2' / 'validation' / labs[0])) == want).all()


def test_pascal_context_459_converts_with_progress(tmp_path, capfd):
    scipy_io = pytest.importorskip('scipy.io')
    import pascal_context_459
    voc = tmp_path / 'VOC2010'
    (voc / 'trainval').mkdir(parents=True)
    (voc / 'ImageSets' / 'SegmentationContext').mkdir(parents=True)
    ids = ['2008_000001', '2008_000002', '2008_000003']
    for fid in ids[:2]:  # the third has no .mat: skipped and not listed
        scipy_io.savemat(str(voc / 'trainval' / f'{fid}.mat'), {'LabelMap': np.full((4, 5), 3, np.uint16)})
    (voc / 'ImageSets' / 'SegmentationContext' / 'val.txt').write_text('\n'.join(ids) + '\n')
    pascal_context_459.main([str(voc)])
    out = capfd.readouterr().out
    assert '3/3' in out and 'task/s' in out
    done = (voc / 'annotations_detectron2' / 'pc459_val.txt').read_text().split()
    assert done == ids[:2]
    lab = np.asarray(Image.open(voc / 'annotations_detectron2' / 'pc459_val' / f'{ids[0]}.tif'))
    assert (lab == pascal_context_459.convert_label_map(np.full((4, 5), 3, np.uint16))).all()
