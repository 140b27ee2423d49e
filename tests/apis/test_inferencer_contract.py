"""The mmdet / mmseg Inferencer contract: our inferencers and the stock ``DetInferencer`` / ``MMSegInferencer`` (on a
tiny stock RetinaNet / FCN config with random weights, nothing downloaded) are called with the same arguments; the
output keys, the files written and the label conventions are compared."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch

from .conftest import DET_CFG, ZS_CFG, photo_path


@pytest.fixture(scope='module')
def two_photos(tmp_path_factory):
    import mmcv
    d = tmp_path_factory.mktemp('contract_photos')
    img = mmcv.imread(photo_path())
    mmcv.imwrite(img[:200, :160], str(d / 'first.jpg'))
    mmcv.imwrite(img[250:400, 100:300], str(d / 'second.png'))
    return [str(d / 'first.jpg'), str(d / 'second.png')]  # a list: mmdet lists a folder in directory order


def _files(root):
    return sorted(osp.relpath(p, root) for p in glob.glob(osp.join(root, '**', '*'), recursive=True)
                  if osp.isfile(p))


def stock_det_cfg():
    from mmengine.config import Config
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(160, 160), keep_ratio=True),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                      'scale_factor'))]
    return Config(dict(
        default_scope='mmdet',
        model=dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
            backbone=dict(type='ResNet', depth=18, base_channels=8, num_stages=4, out_indices=(1, 2, 3),
                          norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
            neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16, start_level=0, num_outs=3),
            bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=16, stacked_convs=1, feat_channels=16,
                           anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                                                 ratios=[1.0], strides=[8, 16, 32]),
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4, target_stds=[1.0] * 4),
                           loss_cls=dict(type='FocalLoss', use_sigmoid=True), loss_bbox=dict(type='L1Loss')),
            test_cfg=dict(nms_pre=50, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                          max_per_img=7)),
        test_dataloader=dict(dataset=dict(type='CocoDataset', data_root='', ann_file='', pipeline=pipeline,
                                          metainfo=dict(classes=('a', 'b', 'c')))),
        visualizer=dict(type='DetLocalVisualizer', name='stock_det_contract')))


def stock_seg_cfg():
    from mmengine.config import Config
    return Config(dict(
        default_scope='mmseg',
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, size_divisor=32),
            backbone=dict(type='ResNetV1c', depth=18, base_channels=8, stem_channels=8, num_stages=4,
                          out_indices=(3, ), init_cfg=None),
            decode_head=dict(type='FCNHead', in_channels=64, channels=16, num_convs=1, num_classes=4,
                             in_index=0, concat_input=False),
            test_cfg=dict(mode='whole')),
        test_dataloader=dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'),
                                                    dict(type='Resize', scale=(160, 160), keep_ratio=False),
                                                    dict(type='PackSegInputs')])),
        visualizer=dict(type='SegLocalVisualizer', name='stock_seg_contract')))


# ------------------------------------------------------------------------------------------------- detection
@pytest.fixture(scope='module')
def det_pair(det_ckpt):
    import warnings
    from mmdet.apis import DetInferencer
    from declip_mm.apis import OVDetInferencer
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        stock = DetInferencer(stock_det_cfg(), None, device='cpu', show_progress=False)
    ours = OVDetInferencer(DET_CFG, det_ckpt, device='cpu', cache_dir='', show_progress=False)
    return stock, ours


def test_det_contract_same_call_same_outputs(det_pair, two_photos, tmp_path, capsys):
    stock, ours = det_pair
    kw = dict(batch_size=2, return_vis=True, draw_pred=True, pred_score_thr=0.3, no_save_pred=False,
              no_save_vis=False, print_result=True, return_datasamples=False)
    a = stock(two_photos, out_dir=str(tmp_path / 'stock'), **kw)
    printed_stock = capsys.readouterr().out
    b = ours(two_photos, out_dir=str(tmp_path / 'ours'), texts='person, flag', **kw)
    printed_ours = capsys.readouterr().out
    assert set(a) <= set(b) and {'classes', 'skipped'} <= set(b)  # our extras on top
    assert len(a['predictions']) == len(b['predictions']) == 2
    assert len(a['visualization']) == len(b['visualization']) == 2
    import mmcv
    for va, vb, name in zip(a['visualization'], b['visualization'], ('first.jpg', 'second.png')):
        shape = mmcv.imread(osp.join(osp.dirname(two_photos[0]), name)).shape
        assert va.shape == vb.shape == shape and va.dtype == vb.dtype == np.uint8
    for pa, pb in zip(a['predictions'], b['predictions']):
        assert set(pa) <= set(pb)
        for key in pa:
            assert type(pa[key]) is type(pb[key]), key
        assert all(isinstance(x, int) for x in pb['labels'])  # integer labels, as mmdet
        assert pb['label_names'] == [b['classes'][i] for i in pb['labels']]  # plus names
        assert len(pb['labels']) == len(pb['scores']) == len(pb['bboxes'])
    # the same files: vis/<image> and preds/<stem>.json, one json holding what was returned
    assert _files(tmp_path / 'stock') == _files(tmp_path / 'ours') == [
        'preds/first.json', 'preds/second.json', 'vis/first.jpg', 'vis/second.png']
    for p in b['predictions']:
        stem = osp.splitext(osp.basename(p['input']))[0]
        with open(tmp_path / 'ours' / 'preds' / f'{stem}.json', encoding='utf-8') as f:
            assert json.load(f) == json.loads(json.dumps(p))
    assert 'predictions' in printed_stock and 'labels' in printed_ours
    # mmdet's defaults: out_dir alone writes pictures, no prediction files (no_save_pred=True)
    stock(two_photos, out_dir=str(tmp_path / 's2'))
    ours(two_photos, out_dir=str(tmp_path / 'o2'), texts='person, flag')
    assert _files(tmp_path / 's2') == _files(tmp_path / 'o2') == ['vis/first.jpg', 'vis/second.png']
    # no visualization asked: an empty list, as mmdet
    assert stock(two_photos)['visualization'] == ours(two_photos, texts='person, flag')['visualization'] == []


def test_det_contract_score_thr_only_affects_drawing(det_pair, two_photos):
    stock, ours = det_pair
    for inf, kw in ((stock, {}), (ours, dict(texts='person, flag'))):
        lo = inf(two_photos, pred_score_thr=0.0, return_vis=True, **kw)
        hi = inf(two_photos, pred_score_thr=0.99, return_vis=True, **kw)
        assert lo['predictions'] == hi['predictions']  # not filtered
        assert any(s < 0.99 for p in hi['predictions'] for s in p['scores'])
        assert not np.array_equal(lo['visualization'][0], hi['visualization'][0])  # fewer boxes drawn


def test_det_contract_datasamples_and_draw_pred(det_pair, two_photos):
    from mmdet.structures import DetDataSample
    stock, ours = det_pair
    for inf, kw in ((stock, {}), (ours, dict(texts='person, flag'))):
        res = inf(two_photos, return_datasamples=True, **kw)
        assert all(isinstance(p, DetDataSample) for p in res['predictions']) and len(res['predictions']) == 2
        raw = inf(two_photos, return_vis=True, draw_pred=False, pred_score_thr=0.0, **kw)['visualization'][0]
        import mmcv
        assert np.array_equal(raw, mmcv.imread(two_photos[0], channel_order='rgb'))


def test_det_contract_files_written_as_each_image_finishes(det_pair, two_photos, tmp_path, monkeypatch):
    stock, ours = det_pair
    for inf, kw, name in ((stock, {}, 's'), (ours, dict(texts='person, flag'), 'o')):
        orig = type(inf).forward
        calls = []

        def forward(self, *a, **k):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError('stopped')
            return orig(self, *a, **k)
        monkeypatch.setattr(type(inf), 'forward', forward)
        with pytest.raises(RuntimeError, match='stopped'):
            inf(two_photos, out_dir=str(tmp_path / name), no_save_pred=False, **kw)
        monkeypatch.undo()
        assert _files(tmp_path / name) == ['preds/first.json', 'vis/first.jpg']


# ------------------------------------------------------------------------------------------------- segmentation
@pytest.fixture(scope='module')
def seg_pair():
    import warnings
    from mmseg.apis import MMSegInferencer
    from declip_mm.apis import OVSegInferencer
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        stock = MMSegInferencer(stock_seg_cfg(), None, device='cpu')
    stock.show_progress = False
    ours = OVSegInferencer(ZS_CFG, None, device='cpu', cache_dir='', show_progress=False)
    return stock, ours


def test_seg_contract_same_call_same_outputs(seg_pair, two_photos, tmp_path):
    import mmcv
    stock, ours = seg_pair
    kw = dict(batch_size=2, return_vis=True, show=False, wait_time=0, img_out_dir='vis', pred_out_dir='pred',
              opacity=0.5, return_datasamples=False)
    a = stock(two_photos, out_dir=str(tmp_path / 'stock'), **kw)
    b = ours(two_photos, out_dir=str(tmp_path / 'ours'), texts='sky, person, flag', **kw)
    assert set(a) <= set(b) and {'classes', 'skipped', 'unlabelled'} <= set(b)
    # mmseg: one label map per image (pixel = class index); ours: the same map under "sem_seg", plus names
    assert len(a['predictions']) == len(b['predictions']) == 2
    for ma, pb, name in zip(a['predictions'], b['predictions'], ('first.jpg', 'second.png')):
        shape = mmcv.imread(osp.join(osp.dirname(two_photos[0]), name)).shape[:2]
        mb = pb['sem_seg']
        assert ma.shape == mb.shape == shape
        assert np.issubdtype(ma.dtype, np.integer) and np.issubdtype(mb.dtype, np.integer)
        assert set(pb['present']) == {b['classes'][i] for i in np.unique(mb)}
    for va, vb in zip(a['visualization'], b['visualization']):
        assert va.dtype == vb.dtype == np.uint8 and va.shape[0] == vb.shape[0] and vb.shape[1] >= va.shape[1]
    # the same folders; vis/<image> as mmseg; pred/ one PNG label map per image (ours named after the image)
    fa, fb = _files(tmp_path / 'stock'), _files(tmp_path / 'ours')
    assert [f for f in fa if f.startswith('vis/')] == [f for f in fb if f.startswith('vis/')] == [
        'vis/first.jpg', 'vis/second.png']
    assert len([f for f in fa if f.startswith('pred/')]) == 2
    assert [f for f in fb if f.startswith('pred/')] == ['pred/first.png', 'pred/second.png']
    for pb in b['predictions']:
        lab = mmcv.imread(osp.join(tmp_path, 'ours', pb['label_map']), flag='unchanged')
        assert np.array_equal(lab, pb['sem_seg'])
    # other sub-folder names, as mmseg's img_out_dir / pred_out_dir
    ours(two_photos, texts='sky, person', out_dir=str(tmp_path / 'o2'), img_out_dir='pics', pred_out_dir='maps')
    assert _files(tmp_path / 'o2') == ['maps/first.png', 'maps/second.png', 'pics/first.jpg', 'pics/second.png']
    ours(two_photos, texts='sky, person', out_dir=str(tmp_path / 'o3'), no_save_vis=True)
    assert _files(tmp_path / 'o3') == ['pred/first.png', 'pred/second.png']


def test_seg_contract_datasamples(seg_pair, two_photos):
    from mmseg.structures import SegDataSample
    stock, ours = seg_pair
    a = stock(two_photos, return_datasamples=True)
    b = ours(two_photos, texts='sky, person', return_datasamples=True)
    assert isinstance(a, list) and all(isinstance(p, SegDataSample) for p in a)
    assert all(isinstance(p, SegDataSample) for p in b['predictions']) and len(b['predictions']) == 2


def test_seg_contract_files_written_as_each_image_finishes(seg_pair, two_photos, tmp_path, monkeypatch):
    _, ours = seg_pair
    orig = type(ours).forward
    calls = []

    def forward(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('stopped')
        return orig(self, *a, **k)
    monkeypatch.setattr(type(ours), 'forward', forward)
    with pytest.raises(RuntimeError, match='stopped'):
        ours(two_photos, texts='sky, person', out_dir=str(tmp_path))
    assert _files(tmp_path) == ['pred/first.png', 'vis/first.jpg']
