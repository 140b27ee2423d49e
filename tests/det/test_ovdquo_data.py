"""OV-DQUO data: open-world pseudo boxes merged into the datasets, kept aligned through every transform, DETR's
resize rule, the dataset ``_base_`` configs (pipelines on a real photo, padding after normalisation), the synthetic
pseudo labels.  Expected values are computed here independently (plain arithmetic, PIL and numpy)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(REPO, 'configs', 'ovdquo', '_base_', 'datasets')
GRACE = osp.join(osp.dirname(__import__('matplotlib').__file__), 'mpl-data', 'sample_data', 'grace_hopper.jpg')
CLIP_MEAN, CLIP_STD = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
IN_MEAN, IN_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(autouse=True)
def _scope():
    import declip_mm.datasets  # noqa: F401  (registers the transforms, datasets, sampler)
    init_default_scope('mmdet')


def build(cfg):
    from mmdet.registry import TRANSFORMS
    return TRANSFORMS.build(cfg)


# ------------------------------------------------------------------------------------------------------------
# pseudo-label files -> dataset instances
# ------------------------------------------------------------------------------------------------------------
def _coco_json(path, images, anns):
    cats = [dict(id=1, name='cat'), dict(id=2, name='dog')]
    with open(path, 'w') as f:
        json.dump(dict(images=[dict(id=i, file_name=f'{i}.png', width=w, height=h) for i, w, h in images],
                       annotations=[dict(id=k + 1, area=b[2] * b[3], **a, bbox=b) for k, (a, b) in enumerate(anns)],
                       categories=cats), f)


def _write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)
    return str(path)


def _dataset(tmp_path, pseudo, pipeline=(), filter_cfg=None, test_mode=False, images=None, anns=None):
    from declip_mm.datasets.ov_detection import OVCocoDataset
    images = images or [(1, 100, 80), (2, 50, 40)]
    anns = anns if anns is not None else [
        (dict(image_id=1, category_id=2, iscrowd=0), [10, 10, 20, 20]),
        (dict(image_id=1, category_id=1, iscrowd=1), [0, 0, 30, 30]),
        (dict(image_id=2, category_id=1, iscrowd=0), [5, 5, 10, 10])]
    _coco_json(tmp_path / 'ann.json', images, anns)
    return OVCocoDataset(data_root=str(tmp_path), ann_file='ann.json', pseudo_ann_file=pseudo,
                         metainfo=dict(classes=('cat', 'dog')), data_prefix=dict(img=''), pipeline=list(pipeline),
                         filter_cfg=filter_cfg,
                         test_mode=test_mode)


def test_pseudo_boxes_appended_clipped_and_counted(tmp_path):
    _write(tmp_path / 'ow.json', [
        dict(image_id=1, bbox=[50, 40, 10, 20], category_id=-1, pseudo=1, weight=0.7),
        dict(image_id=1, bbox=[90, 70, 30, 30], category_id=-1, pseudo=1),            # clipped, weight 1.0
        dict(image_id=1, bbox=[120, 10, 5, 5], category_id=-1, pseudo=1, weight=0.2),  # outside -> skipped
        dict(image_id=1, bbox=[1, 1, 5, 5], category_id=-1, pseudo=1, weight=0.3, iscrowd=1),  # crowd -> dropped
        dict(image_id=2, bbox=[-4, -6, 14, 16], category_id=-1, weight=0.5),           # pseudo key optional
        dict(image_id=9, bbox=[1, 1, 5, 5], category_id=-1, pseudo=1, weight=0.4),     # not in the dataset
    ])
    ds = _dataset(tmp_path, 'ow.json')
    inst1 = ds.get_data_info(0)['instances']
    # true boxes first (crowd kept as ignored, mmdet's convention), then the pseudo boxes in file order
    assert [i['bbox_label'] for i in inst1] == [1, 0, -1, -1]
    assert [i.get('pseudo', 0) for i in inst1] == [0, 0, 1, 1]
    assert inst1[2]['bbox'] == [50, 40, 60, 60] and inst1[2]['pseudo_weight'] == 0.7
    assert inst1[3]['bbox'] == [90, 70, 100, 80] and inst1[3]['pseudo_weight'] == 1.0
    inst2 = ds.get_data_info(1)['instances']
    assert inst2[-1]['bbox'] == [0, 0, 10, 10] and inst2[-1]['pseudo_weight'] == 0.5
    assert all(i['ignore_flag'] == 0 for i in inst1[2:] + inst2[1:])
    assert ds.pseudo_stats == dict(entries=6, crowd_dropped=1, kept=5, merged=3, outside_image_skipped=1,
                                   unknown_image_skipped=1, images_with_pseudo=2, images_without_box=0)
    # the mmdet pipeline view: flags / weights aligned with the boxes, true boxes 1.0
    res = build(dict(type='LoadPseudoAnnotations', with_bbox=True))(dict(ds.get_data_info(0)))
    assert res['gt_pseudo_flags'].tolist() == [False, False, True, True]
    assert res['gt_pseudo_weights'].dtype == np.float32
    np.testing.assert_allclose(res['gt_pseudo_weights'], [1, 1, 0.7, 1])
    assert res['gt_bboxes_labels'].tolist() == [1, 0, -1, -1]


BAD_FILES = [
    ({'annotations': []}, r'must be a json list'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2], category_id=-1), dict(image_id=1, category_id=-1)], r'entry #1 misses'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2], category_id=3)], r'entry #0 has category_id 3'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2])], r'entry #0 misses the key\(s\) \[.category_id.\]'),
    ([dict(image_id=1, bbox=[1, 1, 0, 2], category_id=-1)], r'entry #0 has a bbox with non-positive'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2], category_id=-1), dict(image_id=1, bbox=[1, 1, 2, -2], category_id=-1)],
     r'entry #1 has a bbox with non-positive'),
    ([dict(image_id=1, bbox=[1, 1, 2], category_id=-1)], r'entry #0 has a bbox that is not 4'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2], category_id=-1, weight=-0.1)], r'entry #0 has weight -0.1'),
    ([dict(image_id=1, bbox=[1, 1, 2, 2], category_id=-1, pseudo=0)], r'entry #0 has pseudo 0'),
    ([[1, 2, 3]], r'entry #0 is a list'),
]


@pytest.mark.parametrize('content,message', BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_malformed_pseudo_file_names_file_and_entry(tmp_path, content, message):
    path = _write(tmp_path / 'bad_ow.json', content)
    with pytest.raises(ValueError, match=message) as e:
        _dataset(tmp_path, 'bad_ow.json')
    assert path in str(e.value)


def test_missing_or_invalid_json_pseudo_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'pseudo-label file not found: .*missing_ow\.json'):
        _dataset(tmp_path, 'missing_ow.json')
    (tmp_path / 'trunc.json').write_text('[{"image_id": 1, ')
    with pytest.raises(ValueError, match=r'trunc\.json: not a json file'):
        _dataset(tmp_path, 'trunc.json')


def test_filter_empty_counts_pseudo_only_images(tmp_path):
    images = [(1, 100, 80), (2, 50, 40), (3, 60, 60)]
    anns = [(dict(image_id=1, category_id=2, iscrowd=0), [10, 10, 20, 20]),
            (dict(image_id=3, category_id=1, iscrowd=1), [0, 0, 30, 30])]  # image 3: crowd only
    _write(tmp_path / 'ow.json', [dict(image_id=2, bbox=[1, 1, 5, 5], category_id=-1, pseudo=1, weight=0.5)])
    ds = _dataset(tmp_path, 'ow.json', filter_cfg=dict(filter_empty_gt=True), images=images, anns=anns)
    # image 2 has only a pseudo box: kept (mmdet alone would drop it); image 3 has no usable box: dropped, counted
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [1, 2]
    assert ds.pseudo_stats['images_without_box'] == 1
    ds = _dataset(tmp_path, 'ow.json', filter_cfg=dict(filter_empty_gt=False), images=images, anns=anns)
    assert len(ds) == 3 and ds.pseudo_stats['images_without_box'] == 1


def test_image_emptied_by_the_pipeline_is_replaced_and_counted(tmp_path):
    images = [(1, 100, 80), (2, 50, 40)]
    anns = [(dict(image_id=1, category_id=2, iscrowd=0), [10, 10, 20, 20])]
    _write(tmp_path / 'ow.json', [dict(image_id=1, bbox=[1, 1, 5, 5], category_id=-1, pseudo=1, weight=0.5)])
    pipeline = [dict(type='LoadPseudoAnnotations', with_bbox=True),
                dict(type='PseudoFilterAnnotations', min_gt_bbox_wh=(0, 0), drop_empty=True),
                dict(type='PackPseudoDetInputs', meta_keys=('img_id', ))]
    ds = _dataset(tmp_path, 'ow.json', pipeline=pipeline, images=images, anns=anns)
    out = ds[1]  # image 2 has no box at all -> another image is loaded instead
    assert out['data_samples'].img_id == 1 and ds.num_empty_refetched >= 1
    assert out['data_samples'].gt_instances.pseudo.tolist() == [False, True]


# ------------------------------------------------------------------------------------------------------------
# transforms keep pseudo flags / weights aligned with their boxes
# ------------------------------------------------------------------------------------------------------------
BOXES = np.array([[10, 10, 40, 30],    # true, label 3
                  [150, 5, 190, 50],   # pseudo w .9  (outside the crop below)
                  [60, 55, 120, 90],   # pseudo w .8  (partly inside)
                  [5, 70, 30, 95],     # true, label 1 (outside)
                  [80, 20, 110, 40]],  # pseudo w .7  (inside)
                 np.float32)
LABELS = [3, -1, -1, 1, -1]
WEIGHTS = [1.0, 0.9, 0.8, 1.0, 0.7]


def _results():
    inst = []
    for b, lab, w in zip(BOXES.tolist(), LABELS, WEIGHTS):
        d = dict(bbox=b, bbox_label=lab, ignore_flag=0)
        if lab < 0:
            d.update(pseudo=1, pseudo_weight=w)
        inst.append(d)
    img = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    res = dict(img=img, img_shape=(100, 200), ori_shape=(100, 200), instances=inst)
    return build(dict(type='LoadPseudoAnnotations', with_bbox=True))(res)


def _rows(res):
    """(label, pseudo, weight) per box, the alignment a transform must keep."""
    return list(zip(res['gt_bboxes_labels'].tolist(), res['gt_pseudo_flags'].tolist(),
                    np.round(res['gt_pseudo_weights'].astype(np.float64), 4).tolist()))


def test_crop_drops_boxes_and_keeps_flags_aligned():
    crop = build(dict(type='PseudoRandomCrop', crop_type='absolute', crop_size=(90, 60)))  # (w, h)
    oy, ox = 25, 50
    crop._rand_offset = lambda margin: (oy, ox)
    out = crop(_results())
    # independent: shift, clip to the 90 x 60 crop, keep positive width and height (the original's rule)
    b = BOXES - np.array([ox, oy, ox, oy], np.float32)
    b[:, 0::2] = b[:, 0::2].clip(0, 90)
    b[:, 1::2] = b[:, 1::2].clip(0, 60)
    keep = np.where((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]))[0]
    assert keep.tolist() == [2, 4]
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), b[keep])
    assert _rows(out) == [(LABELS[k], LABELS[k] < 0, WEIGHTS[k]) for k in keep]
    assert out['img'].shape[:2] == (60, 90)


def test_flip_resize_filter_pack_keep_flags_aligned():
    res = build(dict(type='RandomFlip', prob=1.0))(_results())
    np.testing.assert_allclose(res['gt_bboxes'].numpy()[:, [0, 2]], 200 - BOXES[:, [2, 0]])
    assert _rows(res) == [(lab, lab < 0, w) for lab, w in zip(LABELS, WEIGHTS)]
    res = build(dict(type='DETRResize', scale=50, max_size=1333))(res)  # 100x200 -> 50x100
    assert res['img'].shape[:2] == (50, 100)
    np.testing.assert_allclose(res['gt_bboxes'].numpy()[:, [0, 2]], (200 - BOXES[:, [2, 0]]) / 2)
    assert _rows(res) == [(lab, lab < 0, w) for lab, w in zip(LABELS, WEIGHTS)]
    # filter: boxes wider than 15.5 and higher than 10.5 px survive (w: 15, 20, 30, 12.5, 15; h: 10, 22.5, 17.5, ...)
    res = build(dict(type='PseudoFilterAnnotations', min_gt_bbox_wh=(15.5, 10.5)))(res)
    keep = [1, 2]
    assert _rows(res) == [(LABELS[k], LABELS[k] < 0, WEIGHTS[k]) for k in keep]
    # pack: an ignored (crowd) box goes to ignored_instances, the pseudo keys follow the split
    res['gt_ignore_flags'] = np.array([True, False])
    packed = build(dict(type='PackPseudoDetInputs'))(res)
    gi = packed['data_samples'].gt_instances
    assert gi.labels.tolist() == [-1] and gi.pseudo.tolist() == [True] and gi.pseudo.dtype == torch.bool
    assert gi.pseudo_weights.dtype == torch.float32 and gi.pseudo_weights.tolist() == pytest.approx([0.8])
    assert packed['data_samples'].ignored_instances.pseudo_weights.tolist() == pytest.approx([0.9])


def test_filter_drop_empty_returns_none_only_when_asked():
    res = _results()
    for k in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_pseudo_flags', 'gt_pseudo_weights'):
        res[k] = res[k][:0]
    assert build(dict(type='PseudoFilterAnnotations', min_gt_bbox_wh=(0, 0), drop_empty=True))(dict(res)) is None
    assert build(dict(type='PseudoFilterAnnotations', min_gt_bbox_wh=(0, 0)))(dict(res)) is not None


def test_misaligned_input_is_an_error():
    res = _results()
    res['gt_pseudo_weights'] = res['gt_pseudo_weights'][:3]
    with pytest.raises(ValueError, match='gt_pseudo_weights has 3 entries but gt_bboxes has 5'):
        build(dict(type='PseudoRandomCrop', crop_type='absolute', crop_size=(90, 60)))(res)


@pytest.mark.parametrize('hw,size,max_size,expected', [
    ((600, 512), 800, 1333, (937, 800)),      # floor of 937.5 (mmdet's Resize rounds to 938)
    ((480, 640), 800, 1333, (800, 1066)),     # 1066.67 -> 1066
    ((427, 640), 1024, 1024, (683, 1023)),    # capped: short = round(1024 * 427 / 640) = 683, long = int(1023.7)
    ((100, 1000), 800, 1333, (133, 1330)),    # capped: round(133.3) = 133, long = 1330
    ((800, 1000), 800, 1333, (800, 1000)),    # already at size
    ((703, 600), 500, None, (585, 500)),      # no cap
    ((600, 512), 1024, 1024, (1024, 874)),    # capped: round(873.8) = 874, long int(1024.2) = 1024
])
def test_detr_resize_rule(hw, size, max_size, expected):
    res = dict(img=np.zeros((*hw, 3), np.uint8), img_shape=hw,
               gt_bboxes=np.array([[0, 0, hw[1], hw[0]]], np.float32))
    out = build(dict(type='DETRResize', scale=size, max_size=max_size))(res)
    assert out['img'].shape[:2] == expected
    np.testing.assert_allclose(out['gt_bboxes'][0], [0, 0, expected[1], expected[0]], rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# the dataset _base_ configs: structure, a real photo through the pipeline, padding after normalisation
# ------------------------------------------------------------------------------------------------------------
def _cfg(name):
    return Config.fromfile(osp.join(CFG_DIR, name))


@pytest.mark.parametrize('name', ['ov_coco_ms_480_800.py', 'ov_coco_1024.py', 'ov_coco_896.py',
                                  'ov_lvis_1024.py', 'ov_lvis_896.py', 'ov_shapes_synthetic.py'])
def test_dataset_configs_build(name):
    from mmdet.registry import MODELS
    cfg = _cfg(name)
    Compose(cfg.train_dataloader.dataset.pipeline)
    Compose(cfg.test_dataloader.dataset.pipeline)
    pre = MODELS.build(cfg.data_preprocessor)
    assert pre.pad_value == 0 and pre._channel_conversion
    res = cfg.get('resolution')
    if res:  # ViT recipes: every image padded to R x R, the train and test resizes at R
        assert cfg.data_preprocessor.pad_size_divisor == res
        text = json.dumps(cfg.train_dataloader.dataset.pipeline + cfg.test_dataloader.dataset.pipeline)
        assert text.count(f'"scale": {res}, "max_size": {res}') == 3
    if 'lvis' in name:
        assert cfg.train_dataloader.sampler == dict(type='RepeatFactorMultinomialSampler', repeat_thr=1.0, seed=0)
        assert cfg.train_dataloader.dataset.pipeline[-2] == dict(
            type='PseudoFilterAnnotations', min_gt_bbox_wh=(0, 0), drop_empty=True)
        assert cfg.val_evaluator.metric == 'bbox'
    mean = np.array(cfg.data_preprocessor.mean) / 255
    np.testing.assert_allclose(mean, CLIP_MEAN if name == 'ov_coco_ms_480_800.py' else IN_MEAN, rtol=1e-7)


def _force(pipeline, flip=None, branch=None, scales=(), crop=None):
    """Replace the random draws of the config's transforms by fixed values (the structure stays the config's)."""
    from mmcv.transforms import RandomChoice, RandomChoiceResize
    from mmdet.datasets.transforms import RandomCrop, RandomFlip
    scales = list(scales)

    def visit(t):
        if isinstance(t, Compose):
            for s in t.transforms:
                visit(s)
        elif isinstance(t, RandomFlip):
            t._choose_direction = lambda: flip
        elif isinstance(t, RandomChoice):
            t.random_pipeline_index = lambda: branch
            for s in t.transforms:
                visit(s)
        elif isinstance(t, RandomChoiceResize):
            t._random_select = lambda: (scales.pop(0), 0)
        elif isinstance(t, RandomCrop):
            t._get_crop_size = lambda hw: crop[0]
            t._rand_offset = lambda margin: crop[1]
    visit(pipeline)
    return pipeline


def _grace_results():
    from PIL import Image
    w, h = Image.open(GRACE).size
    boxes = [[100, 80, 300, 330], [10, 400, 70, 550], [200, 300, 320, 500], [5, 5, 45, 45]]
    inst = [dict(bbox=boxes[0], bbox_label=3, ignore_flag=0), dict(bbox=boxes[1], bbox_label=7, ignore_flag=0),
            dict(bbox=boxes[2], bbox_label=-1, ignore_flag=0, pseudo=1, pseudo_weight=0.9),
            dict(bbox=boxes[3], bbox_label=-1, ignore_flag=0, pseudo=1, pseudo_weight=0.35)]
    return dict(img_path=GRACE, img_id=0, instances=inst, height=h, width=w), np.array(boxes, np.float32)


def _preprocess(cfg, packed, other_hw=None):
    from mmdet.registry import MODELS
    pre = MODELS.build(cfg.data_preprocessor)
    inputs, samples = [packed['inputs']], [packed['data_samples']]
    if other_hw:
        inputs.append(torch.randint(0, 255, (3, *other_hw), dtype=torch.uint8))
        samples.append(packed['data_samples'].clone())
    return pre(dict(inputs=inputs, data_samples=samples), False)['inputs'][0]


def test_coco_train_pipeline_on_a_photo_equals_pil_numpy():
    """Crop branch: flip -> short side 500 -> crop 420 x 390 at (37, 55) -> short side 608 (long <= 1333), then CLIP
    normalisation and batch padding: the tensor that enters the backbone, the boxes and the pseudo keys."""
    from PIL import Image, ImageOps
    cfg = _cfg('ov_coco_ms_480_800.py')
    pipe = _force(Compose(cfg.train_dataloader.dataset.pipeline), flip='horizontal', branch=1, scales=[500, 608],
                  crop=((420, 390), (37, 55)))
    res, boxes = _grace_results()
    packed = pipe(res)
    x = _preprocess(cfg, packed, other_hw=(700, 640))
    # independent: PIL decode, mirror, bilinear (antialiased) resizes, crop, numpy normalisation
    im = ImageOps.mirror(Image.open(GRACE).convert('RGB'))           # 512 x 600 (w x h)
    im = im.resize((500, 585), Image.BILINEAR)                       # short 500, long int(500 * 600 / 512) = 585
    im = im.crop((55, 37, 55 + 390, 37 + 420))
    im = im.resize((608, 654), Image.BILINEAR)                       # short 608, long int(608 * 420 / 390) = 654
    ref = ((np.asarray(im, np.float32) / 255 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
    assert packed['data_samples'].img_shape == (654, 608)
    assert tuple(x.shape) == (3, 700, 640)
    np.testing.assert_allclose(x[:, :654, :608].numpy(), ref, atol=2e-5)
    assert (x[:, 654:, :] == 0).all() and (x[:, :, 608:] == 0).all()  # padded after normalisation
    b = boxes.copy()
    b[:, [0, 2]] = 512 - boxes[:, [2, 0]]
    b *= np.array([500 / 512, 585 / 600] * 2, np.float32)
    b -= np.array([55, 37, 55, 37], np.float32)
    b[:, 0::2], b[:, 1::2] = b[:, 0::2].clip(0, 390), b[:, 1::2].clip(0, 420)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b = b[keep] * np.array([608 / 390, 654 / 420] * 2, np.float32)
    gi = packed['data_samples'].gt_instances
    assert keep.tolist() == [True, True, True, False]
    np.testing.assert_allclose(gi.bboxes.tensor.numpy(), b, rtol=1e-5)
    assert gi.labels.tolist() == [3, 7, -1] and gi.pseudo.tolist() == [False, False, True]
    assert gi.pseudo_weights.tolist() == pytest.approx([1.0, 1.0, 0.9])


def test_lvis_test_pipeline_on_a_photo_pads_to_square_with_zeros():
    from PIL import Image
    cfg = _cfg('ov_lvis_1024.py')
    res, _ = _grace_results()
    packed = Compose(cfg.test_dataloader.dataset.pipeline)(res)
    x = _preprocess(cfg, packed)
    # long side 1024: short = round(1024 * 512 / 600) = 874, long = int(874 * 600 / 512) = 1024
    im = Image.open(GRACE).convert('RGB').resize((874, 1024), Image.BILINEAR)
    ref = ((np.asarray(im, np.float32) / 255 - IN_MEAN) / IN_STD).transpose(2, 0, 1)
    assert tuple(x.shape) == (3, 1024, 1024) and packed['data_samples'].img_shape == (1024, 874)
    np.testing.assert_allclose(x[:, :, :874].numpy(), ref, atol=2e-5)
    assert (x[:, :, 874:] == 0).all()
    np.testing.assert_allclose(packed['data_samples'].scale_factor, (874 / 512, 1024 / 600))


def test_exif_orientation_is_ignored_as_the_original(tmp_path):
    """The original reads images with PIL without applying the EXIF orientation (boxes refer to the stored pixels);
    mmcv's default 'color' would rotate such an image."""
    from PIL import Image
    path = str(tmp_path / 'rotated.jpg')
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(path, exif=exif.tobytes())
    for name in ('ov_coco_ms_480_800.py', 'ov_lvis_1024.py', 'ov_shapes_synthetic.py'):
        cfg = _cfg(name)
        for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
            assert Compose(pipe[:1])(dict(img_path=path))['img'].shape[:2] == (30, 50), name


def test_config_pipelines_keep_pseudo_rows_over_random_draws():
    """Every random branch of the OV-COCO and OV-LVIS train pipelines: each output box keeps its own (label,
    pseudo, weight) row (unique weights make a misalignment visible)."""
    rng = np.random.default_rng(0)
    W, H = 640, 480
    xy = rng.uniform(0, 560, (30, 2)) * [1, 0.75]
    wh = rng.uniform(15, 80, (30, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [W, H])], 1).astype(np.float32)
    labels = [int(k) if k % 3 else -1 for k in range(30)]
    weights = [1.0 if lab >= 0 else round(0.01 * (k + 1), 2) for k, lab in enumerate(labels)]
    rows_in = {(lab, lab < 0, w) for lab, w in zip(labels, weights)}
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    for name in ('ov_coco_ms_480_800.py', 'ov_lvis_1024.py'):
        steps = _cfg(name).train_dataloader.dataset.pipeline[1:]  # images given in memory
        pipe = Compose(steps)
        seen_branches = set()
        for seed in range(12):
            np.random.seed(seed)
            inst = [dict(bbox=b.tolist(), bbox_label=lab, ignore_flag=0,
                         **(dict(pseudo=1, pseudo_weight=w) if lab < 0 else {}))
                    for b, lab, w in zip(boxes, labels, weights)]
            out = pipe(dict(img=img.copy(), img_shape=(H, W), ori_shape=(H, W), instances=inst))
            if out is None:  # OV-LVIS: a crop without any box -> skipped
                continue
            gi = out['data_samples'].gt_instances
            rows = list(zip(gi.labels.tolist(), gi.pseudo.tolist(),
                            np.round(gi.pseudo_weights.numpy().astype(np.float64), 4).tolist()))
            assert len(rows) == len(gi.bboxes) and set(rows) <= rows_in, (name, seed)
            seen_branches.add(len(rows) < 30)
        assert seen_branches == {True, False}  # both the crop and the resize-only branch were exercised


def test_synthetic_config_dataset_batches(synthetic_det):
    """The tiny OV-DQUO data config on the generated shapes set: pseudo boxes loaded, 128 x 128 batches, padding 0."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    cfg = _cfg('ov_shapes_synthetic.py')
    dcfg = cfg.train_dataloader.dataset
    dcfg.data_root = synthetic_det['root'] + '/'
    ds = DATASETS.build(dcfg)
    pseudo = json.load(open(synthetic_det['train_pseudo']))
    ids = {ds.get_data_info(i)['img_id'] for i in range(len(ds))}
    assert ds.pseudo_stats['merged'] == sum(1 for a in pseudo if a['image_id'] in ids) > 0
    np.random.seed(1)
    batch = pseudo_collate([ds[i] for i in range(min(4, len(ds)))])
    from mmdet.registry import MODELS
    data = MODELS.build(cfg.data_preprocessor)(batch, True)
    assert tuple(data['inputs'].shape[1:]) == (3, 128, 128)
    for x, s in zip(data['inputs'], data['data_samples']):
        h, w = s.img_shape
        assert (x[:, h:, :] == 0).all() and (x[:, :, w:] == 0).all()
        gi = s.gt_instances
        assert (gi.pseudo == (gi.labels == -1)).all()
        assert ((gi.pseudo_weights == 1) | gi.pseudo).all()


def test_synthetic_pseudo_labels_cover_novel_objects():
    from declip_mm.datasets.pseudo_labels import load_pseudo_labels
    from declip_mm.datasets.synthetic_det import make_pseudo_labels, synth_categories
    cats = [dict(id=c['id'], name=c['name']) for c in synth_categories()]
    novel = {c['id'] for c in synth_categories() if c['split'] == 'novel'}
    anns = [dict(id=1, image_id=1, category_id=sorted(novel)[0], bbox=[10, 20, 30, 40]),
            dict(id=2, image_id=1, category_id=1, bbox=[60, 60, 30, 30]),
            dict(id=3, image_id=2, category_id=sorted(novel)[1], bbox=[100, 100, 28, 28])]
    train_all = dict(images=[dict(id=1, width=128, height=128), dict(id=2, width=128, height=128)],
                     annotations=anns, categories=cats)
    out = make_pseudo_labels(train_all, seed=3)
    assert out == make_pseudo_labels(train_all, seed=3)  # deterministic
    assert all(a['category_id'] == -1 and a['pseudo'] == 1 for a in out)
    objects = [a for a in out if a['weight'] >= 0.6]
    background = [a for a in out if a['weight'] <= 0.4]
    assert len(objects) == 2 and len(objects) + len(background) == len(out)  # one per novel object, none for base

    def iou(a, b):
        ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
    assert iou(objects[0]['bbox'], anns[0]['bbox']) > 0.6 and iou(objects[1]['bbox'], anns[2]['bbox']) > 0.6
    for a in out:
        x, y, w, h = a['bbox']
        assert x >= 0 and y >= 0 and x + w <= 128 + 1e-6 and y + h <= 128 + 1e-6 and w >= 2 and h >= 2
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        by_img, stats = load_pseudo_labels(_write(osp.join(d, 'p.json'), out))
    assert stats['kept'] == len(out) and set(by_img) <= {1, 2}
