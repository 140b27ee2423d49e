"""Dataset / sampler behaviour and the region-classification metric."""
import os.path as osp

import pytest
import torch

from distill_helpers import build_distiller


def _pipeline(det=128):
    return [dict(type='DeCLIPGridCrops', det_size=det, student_patch=16, vfm_patch=14, crop_size=32, seed=0)]


def test_dataset_json_and_folder_modes(tiny_data):
    from mmengine.registry import init_default_scope
    from declip_mm.datasets.distill_dataset import DistillImageDataset
    init_default_scope('declip_mm')
    a = DistillImageDataset(data_root=tiny_data, ann_file='annotations.json', data_prefix=dict(img=''),
                            pipeline=_pipeline())
    b = DistillImageDataset(data_root=tiny_data, ann_file='', data_prefix=dict(img='images'), pipeline=_pipeline())
    assert len(a) == len(b) == 30
    assert [osp.basename(x['img_path']) for x in a.data_list] == [osp.basename(x['img_path']) for x in b.data_list]
    s = a[3]
    assert s['inputs']['student'].shape == (3, 128, 128) and s['data_samples']['sample_idx'] == 3
    # index epoch * N + i means (epoch, i): same image, a different (but reproducible) crop draw
    e2 = a[2 * 30 + 3]
    assert e2['data_samples']['epoch'] == 2 and e2['data_samples']['sample_idx'] == 3
    assert torch.equal(e2['inputs']['student'], s['inputs']['student'])
    again = b[2 * 30 + 3]
    assert torch.equal(again['inputs']['boxes'], e2['inputs']['boxes'])
    with pytest.raises(FileNotFoundError, match='not found'):
        DistillImageDataset(data_root=tiny_data, ann_file='nope.json', pipeline=_pipeline())


def test_dataset_reads_through_the_configured_storage_backend(tiny_data):
    """Issue 12: the json, the folder scan and every image go through mmengine file I/O with ``backend_args``,
    so a user's registered storage backend is used; the decoded image equals Pillow's RGB conversion."""
    import numpy as np
    from mmengine.fileio import LocalBackend, register_backend
    from PIL import Image
    from declip_mm.datasets.distill_dataset import DistillImageDataset

    class Counting(LocalBackend):
        calls = []

        def get(self, filepath):
            Counting.calls.append(('get', str(filepath)))
            return super().get(filepath)

        def get_text(self, filepath, encoding='utf-8'):
            Counting.calls.append(('get_text', str(filepath)))
            return super().get_text(filepath, encoding)

        def list_dir_or_file(self, *args, **kwargs):
            Counting.calls.append(('list', str(args[0] if args else kwargs['dir_path'])))
            return super().list_dir_or_file(*args, **kwargs)

    register_backend('declip_test_counting', Counting, force=True)
    args = dict(backend='declip_test_counting')
    a = DistillImageDataset(data_root=tiny_data, ann_file='annotations.json', data_prefix=dict(img=''),
                            pipeline=[], backend_args=args)
    b = DistillImageDataset(data_root=tiny_data, ann_file='', data_prefix=dict(img='images'), pipeline=[],
                            backend_args=args)
    assert ('get_text', osp.join(tiny_data, 'annotations.json')) in Counting.calls
    assert ('list', osp.join(tiny_data, 'images')) in Counting.calls
    r = a.prepare_sample(4)
    assert ('get', r['img_path']) in Counting.calls
    assert np.array_equal(r['img'], np.asarray(Image.open(r['img_path']).convert('RGB')))
    assert b.prepare_sample(4)['img_path'] == r['img_path']


def test_sampler_encodes_epoch_and_skips(tiny_data):
    from declip_mm.datasets.distill_dataset import DistillImageDataset, DistillSampler
    ds = DistillImageDataset(data_root=tiny_data, ann_file='annotations.json', pipeline=[])
    smp = DistillSampler(ds, shuffle=True, seed=5)
    e0 = list(smp)
    assert sorted(e0) == list(range(30))
    smp.set_epoch(3)
    e3 = list(smp)
    assert sorted(e3) == list(range(90, 120))
    smp.skip(7)
    assert list(smp) == e3[7:]
    assert list(smp) == e3  # the skip applies once


def test_class_mean_topk_hand_computation():
    from declip_mm.evaluation.region_cls_metric import RegionClsMetric, class_mean_topk
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 1, 1, 2, 2])
    # class 0: 1/1 ; class 1: 1/2 ; class 2: 1/2 -> mean 2/3 (a region-mean would be 3/5)
    assert class_mean_topk(logits, labels, 1) == pytest.approx(100 * 2 / 3)
    # top-2: class 0 ok, class 1: both ok, class 2: [0.7 ok], [0.6,0.3 -> 0,1] miss -> (1 + 1 + .5) / 3
    assert class_mean_topk(logits, labels, 2) == pytest.approx(100 * 2.5 / 3)
    m = RegionClsMetric(scores=('rois', ), topk=(1, ))
    m.process(None, [dict(rois=logits[:3], labels=labels[:3], isthing=torch.tensor([True, True, True])),
                     dict(rois=logits[3:], labels=labels[3:], isthing=torch.tensor([False, False]))])
    res = m.compute_metrics(m.results)
    assert res['rois_thing_top1'] == pytest.approx(100 * 1.5 / 2)
    assert res['rois_stuff_top1'] == pytest.approx(100 * 0.5)


def test_region_eval_end_to_end(tiny_data):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from declip_mm.datasets.distill_dataset import RegionClsDataset
    from declip_mm.evaluation.region_cls_metric import RegionClsMetric
    init_default_scope('declip_mm')
    ds = RegionClsDataset(data_root=tiny_data, ann_file='annotations.json', data_prefix=dict(img=''),
                          pipeline=[dict(type='DeCLIPRegionInputs', det_size=128, student_patch=16, crop_size=32)])
    assert len(ds.metainfo['classes']) == 8 and sum(ds.metainfo['thing_flags']) == 5
    s = ds[0]
    ds_ = s['data_samples']
    m = len(ds_.labels)
    assert m >= 2 and ds_.masks.shape == (m, 8, 8) and s['inputs']['crops'].shape == (m, 3, 32, 32)
    assert ds_.isthing.any() and (~ds_.isthing).any()
    assert len(ds_.classes) == 8
    # boxes are normalised to the padded canvas and masks lie inside the content area of the grid
    assert ds_.boxes.max() <= 1.0 and ds_.masks.any(dim=(1, 2)).all()
    d = build_distiller('csa')
    d.eval()
    metric = RegionClsMetric()
    for i in range(0, 4, 2):
        batch = pseudo_collate([ds[i], ds[i + 1]])
        preds = d.val_step(batch)
        assert preds[0]['rois'].shape == (len(batch['data_samples'][0].labels), 8)
        metric.process(batch, preds)
    res = metric.compute_metrics(metric.results)
    assert {'rois_thing_top1', 'maskpool_stuff_top5', 'crops_thing_top1'} <= set(res)
    assert all(0 <= v <= 100 for v in res.values() if v == v)
