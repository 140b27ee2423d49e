"""16-bit label loading, class-name data, datasets, converters, synthetic data."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from declip_mm.datasets.ov_segmentation import (LoadSegAnnotations16, first_synonym, load_class_names,
                                                 load_name_sets)
from declip_mm.datasets.synthetic_seg import SYNTH_CLASSES, write_synthetic_seg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_uint16_tiff_round_trip(tmp_path):
    lab = np.array([[300, 0, 65535], [255, 846, 12]], np.uint16)
    path = str(tmp_path / 'x.tif')
    Image.fromarray(lab).save(path)
    res = LoadSegAnnotations16()(dict(seg_map_path=path, reduce_zero_label=False, seg_fields=[]))
    assert res['gt_seg_map'].dtype == np.uint16
    assert np.array_equal(res['gt_seg_map'], lab)          # 300 stays 300 (uint8 cast would give 44)
    # mmseg's stock loader truncates: the reason this transform exists
    from mmseg.datasets.transforms import LoadAnnotations
    stock = LoadAnnotations()(dict(seg_map_path=path, reduce_zero_label=False, seg_fields=[]))
    assert stock['gt_seg_map'][0, 0] == 44
    # packed for the metric as int64 with the values intact
    from mmseg.datasets.transforms import PackSegInputs
    res['img'] = np.zeros((2, 3, 3), np.uint8)
    res['img_shape'] = res['ori_shape'] = (2, 3)
    packed = PackSegInputs(meta_keys=())(res)
    assert packed['data_samples'].gt_sem_seg.data[0, 0, 0].item() == 300


def test_8bit_png_and_reduce_zero_label(tmp_path):
    path = str(tmp_path / 'y.png')
    Image.fromarray(np.array([[0, 1, 151]], np.uint8)).save(path)
    res = LoadSegAnnotations16(reduce_zero_label=True)(dict(seg_map_path=path, seg_fields=[]))
    assert res['gt_seg_map'].tolist() == [[255, 0, 150]]


def test_corrupt_label_is_named(tmp_path):
    path = str(tmp_path / 'bad.tif')
    open(path, 'wb').write(b'not an image')
    with pytest.raises(OSError, match='bad.tif'):
        LoadSegAnnotations16()(dict(seg_map_path=path, seg_fields=[]))


def test_class_lists_shipped_as_data():
    sizes = dict(catseg_coco171=171, catseg_ade150=150, catseg_ade847=847, catseg_pc59=59, catseg_pc459=459,
                 catseg_voc20=20, catseg_voc20b=59)
    for name, n in sizes.items():
        assert len(load_class_names(name)) == n, name
    assert load_class_names('catseg_voc20b')[:20] == load_class_names('catseg_voc20')
    assert first_synonym('building, edifice') == 'building'
    assert first_synonym('bed ') == 'bed'
    zs = dict(cls_voc21=21, cls_context60=60, cls_coco_object=81, cls_voc20=20, cls_city_scapes=19,
              cls_context59=59, cls_ade20k=150, cls_coco_stuff=171)
    for name, n in zs.items():
        assert len(load_name_sets(name)) == n, name
    assert len(load_name_sets('cls_voc21')[0]) > 10  # background line = stuff words
    with pytest.raises(FileNotFoundError, match='catseg_ade150'):
        load_class_names('no_such_list')


def test_ade847_id_map_and_converter_helpers():
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    import ade20k_847
    import coco_object
    import pascal_context_459
    ids = json.load(open(ade20k_847.IDS))
    assert len(ids) == 847 and ids[0] == 2978 and ids[1] == 312  # wall, building
    seg = np.zeros((1, 2, 3), np.uint8)
    seg[0, 0] = (10 * 11, 162, 0)  # (110/10)*256 + 162 = 2978 -> train id 0
    seg[0, 1] = (10, 56, 0)        # 256 + 56 = 312 -> train id 1
    m = ade20k_847.class_mask(seg)
    assert m.tolist() == [[2978, 312]]
    id_map = {int(i): t for t, i in enumerate(ids)}
    out = ade20k_847.to_train_ids(np.array([[2978, 312, 5]]), id_map)
    assert out.dtype == np.uint16 and out.tolist() == [[0, 1, 65535]]
    assert ade20k_847.short_side_512(1024, 2048) == (512, 1024)
    assert pascal_context_459.convert_label_map(np.array([[1, 256, 459]])).tolist() == [[0, 255, 458]]
    # unlabeled (255) is background, as in GroupViT / TCL / ProxyCLIP (see test_coco_object_matches_groupvit_rule)
    assert coco_object.stuff171_to_object(np.array([[0, 79, 80, 170, 255]])).tolist() == [[1, 80, 0, 0, 0]]


def test_coco_object_matches_groupvit_rule():
    """mmseg's COCO-Stuff converter followed by ours == GroupViT's rule on the raw stuffthingmaps ids.

    GroupViT (reused by TCL / ProxyCLIP / DeCLIP) maps raw id k to (its 171 train id) + 1 for k <= 90 (things) and to
    0 for every k > 90, which includes the unlabeled 255.  The 171 train ids come from mmseg's own converter table.
    """
    import importlib.util
    import mmseg
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    import coco_object
    conv = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'dataset_converters', 'coco_stuff164k.py')
    spec = importlib.util.spec_from_file_location('mmseg_coco_stuff164k', conv)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    raw_to_171 = mod.clsID_to_trID
    assert len(raw_to_171) == 172 and raw_to_171[255] == 255
    raw = np.array(sorted(raw_to_171), np.uint8)[None]          # every raw id, incl. 255
    train171 = np.vectorize(raw_to_171.get)(raw).astype(np.uint8)
    groupvit = np.array([[0 if k > 90 else raw_to_171[k] + 1 for k in raw[0].tolist()]])
    out = coco_object.stuff171_to_object(train171)
    assert out.tolist() == groupvit.tolist()
    assert out.max() == 80 and (out == 0).sum() == 92  # 91 stuff ids + unlabeled


def test_synthetic_dataset(tmp_path):
    from declip_mm.datasets.synthetic_seg import SyntheticSegDataset
    ds = SyntheticSegDataset(data_root=str(tmp_path), split='val', num_images=3, pipeline=[])
    assert len(ds) == 3 and ds.metainfo['classes'] == SYNTH_CLASSES
    lab = np.array(Image.open(ds[0]['seg_map_path']))
    vals = set(np.unique(lab).tolist())
    assert vals <= set(range(len(SYNTH_CLASSES))) | {255} and 255 in vals and len(vals) >= 3
    # deterministic
    write_synthetic_seg(str(tmp_path / 'again'), num=3, seed=0, split='val')
    assert np.array_equal(lab, np.array(Image.open(str(tmp_path / 'again/annotations/val/synth_0000.png'))))


def test_converters_end_to_end(tmp_path):
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    import ade20k_847
    import coco_object
    # ADE-847: fake ADE20K_2021_17_01 with one val and one train image
    root = tmp_path / 'ADE20K_2021_17_01'
    (root / 'images' / 'ADE' / 'validation').mkdir(parents=True)
    img = np.full((600, 700, 3), 100, np.uint8)
    seg = np.zeros((600, 700, 3), np.uint8)
    seg[:300] = (110, 162, 0)  # wall (2978) -> 0
    seg[300:] = (0, 5, 0)      # id 5: not one of the 847 -> 65535
    for name in ('ADE_val_00000001', 'ADE_train_00000001'):
        Image.fromarray(img).save(root / 'images' / 'ADE' / 'validation' / f'{name}.jpg')
        Image.fromarray(seg).save(root / 'images' / 'ADE' / 'validation' / f'{name}_seg.png')
    import pickle
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(dict(folder=[str(root / 'images' / 'ADE' / 'validation')] * 2,
                         filename=['ADE_val_00000001.jpg', 'ADE_train_00000001.jpg']), f)
    ade20k_847.main([str(root), '--nproc', '1'])
    lab = LoadSegAnnotations16()(dict(
        seg_map_path=str(root / 'annotations_detectron2' / 'validation' / 'ADE_val_00000001.tif'), seg_fields=[]))
    g = lab['gt_seg_map']
    assert g.shape == (512, 597) and g.dtype == np.uint16  # short side 512
    assert g[0, 0] == 0 and g[-1, -1] == 65535
    assert not (root / 'annotations_detectron2' / 'validation' / 'ADE_train_00000001.tif').exists()
    # COCO-Object from 171 train ids
    ann = tmp_path / 'coco' / 'annotations' / 'val2017'
    ann.mkdir(parents=True)
    Image.fromarray(np.array([[0, 79, 80, 255]], np.uint8)).save(ann / '1_labelTrainIds.png')
    coco_object.main([str(tmp_path / 'coco')])
    assert np.array(Image.open(ann / '1_instanceTrainIds.png')).tolist() == [[1, 80, 0, 0]]
    # PC-459 from a trainval .mat
    import pascal_context_459
    import scipy.io
    voc = tmp_path / 'VOC2010'
    (voc / 'trainval').mkdir(parents=True)
    (voc / 'ImageSets' / 'SegmentationContext').mkdir(parents=True)
    (voc / 'ImageSets' / 'SegmentationContext' / 'val.txt').write_text('2008_000001\n2008_000002\n')
    scipy.io.savemat(str(voc / 'trainval' / '2008_000001.mat'), dict(LabelMap=np.array([[1, 301], [459, 256]])))
    pascal_context_459.main([str(voc)])
    out = LoadSegAnnotations16()(dict(seg_map_path=str(voc / 'annotations_detectron2' / 'pc459_val' /
                                                        '2008_000001.tif'), seg_fields=[]))['gt_seg_map']
    assert out.tolist() == [[0, 300], [458, 255]]
    assert (voc / 'annotations_detectron2' / 'pc459_val.txt').read_text().split() == ['2008_000001']
