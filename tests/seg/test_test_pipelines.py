"""CAT-Seg and training-free test pipelines on real photos against the originals' own pipelines, transcribed here
with the original file:line (the tensor that enters the backbone, img_shape, scale factor, padding).

* CAT-Seg evaluates with detectron2's DatasetMapper: ``read_image(format='RGB')`` then ``ResizeShortestEdge(640,
  2560)`` on uint8 = PIL bilinear (antialiased when shrinking), then ``inference_sliding_window``: 640 x 640 resize,
  four 384 windows + a 384 global view, CLIP normalisation, resize to the CLIP input.
* DeCLIP's training-free evaluator (mmseg 1.x): ``Resize(scale, keep_ratio)`` (cv2 bilinear), SegDataPreProcessor
  with CLIP's mean / std rounded to 3 decimals, 336 / 112 windows each zero-padded (centred) to a multiple of 16.
"""
import copy
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from PIL import Image

from .conftest import REPO, build_seg_model

CATSEG = sorted(p for p in glob.glob(osp.join(REPO, 'configs', 'catseg', '*.py'))
                if 'test_dataloader' in Config.fromfile(p))
ZS = sorted(glob.glob(osp.join(REPO, 'configs', 'zeroshot_seg', '*.py')))


def sample_path(name):
    import matplotlib
    return osp.join(matplotlib.get_data_path(), 'sample_data', name)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """grace_hopper (600 x 512: enlarged to short side 640) and the same photo at 1300 x 1000 (shrunk), as files."""
    d = tmp_path_factory.mktemp('photos')
    big = str(d / 'hopper_1300x1000.png')
    Image.open(sample_path('grace_hopper.jpg')).resize((1000, 1300), Image.BICUBIC).save(big)
    return [sample_path('grace_hopper.jpg'), big]


def _pipeline(cfg):
    return Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'Annotations' not in t['type']])


# ------------------------------------------------------------------------------------------------ CAT-Seg
def detectron2_resize_shortest_edge(path, short, max_size):
    """(H, W, 3) RGB uint8 after detectron2's DatasetMapper(is_train=False) with ResizeShortestEdge(short, max_size)."""
    # detectron2/data/detection_utils.py:181-185 read_image: PIL open, EXIF orientation, convert('RGB'), asarray
    with Image.open(path) as im:
        img = np.asarray(im.convert('RGB'))  # (no EXIF orientation in these files)
    h, w = img.shape[:2]
    # detectron2/data/transforms/augmentation_impl.py:187-200 ResizeShortestEdge.get_output_shape
    size = short * 1.0
    scale = size / min(h, w)
    newh, neww = (size, scale * w) if h < w else (scale * h, size)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    neww, newh = int(neww + 0.5), int(newh + 0.5)
    # detectron2/data/transforms/transform.py:117-123 ResizeTransform.apply_image on uint8: PIL resize, BILINEAR
    return np.asarray(Image.fromarray(img).resize((neww, newh), Image.BILINEAR))


def catseg_clip_input(rgb, out_res=640, kernel=384, stride=256, clip_res=384,
                      mean=(122.7709383, 116.7460125, 104.09373615), std=(68.5005327, 66.6321579, 70.3231630)):
    """CAT-Seg cat_seg/cat_seg_model.py:189-201 (inference_sliding_window) up to the CLIP input: (5, 3, c, c)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None]  # dataset_mapper.py:171
    image = F.interpolate(x, size=(out_res, out_res), mode='bilinear', align_corners=False)[0]
    win = F.unfold(image[None], kernel_size=kernel, stride=stride)[0]  # (C*k*k, L), L in row-major window order
    win = win.T.reshape(-1, 3, kernel, kernel)
    glob_img = F.interpolate(x, size=(kernel, kernel), mode='bilinear', align_corners=False)
    image = torch.cat([win, glob_img])
    clip = (image - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    return F.interpolate(clip, size=(clip_res, clip_res), mode='bilinear', align_corners=False)


@pytest.mark.parametrize('path', CATSEG, ids=[osp.basename(p) for p in CATSEG])
def test_catseg_test_pipeline_equals_detectron2(path, photos):
    """The resized image equals detectron2's uint8 PIL resize pixel for pixel (was: cv2 bilinear, up to 25 grey
    levels apart when shrinking 1000 x 1300 to 640 x 832); img_shape and scale_factor follow."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    r = [t for t in cfg.test_dataloader.dataset.pipeline if 'Resize' in t['type']]
    assert len(r) == 1 and r[0]['type'] == 'mmdet.ResizeShortestEdge' and r[0]['backend'] == 'pillow'
    pipe = _pipeline(cfg)
    for p in photos:
        ref = detectron2_resize_shortest_edge(p, r[0]['scale'], r[0]['max_size'])
        out = pipe(dict(img_path=p))
        ours = out['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]  # BGR -> RGB
        assert ours.shape == ref.shape and np.array_equal(ours, ref), osp.basename(p)
        meta = out['data_samples'].metainfo
        H, W = cv2.imread(p).shape[:2]
        assert meta['img_shape'] == ref.shape[:2] and meta['ori_shape'] == (H, W)
        assert meta['scale_factor'] == pytest.approx((ref.shape[1] / W, ref.shape[0] / H))


@pytest.mark.parametrize('name', ['catseg_eva02-b16-declip_4xb1-80k_ade150.py', 'catseg_vitl14-336_4xb1-80k_pc59.py'])
def test_catseg_backbone_input_equals_the_original(name, photos):
    """The five CLIP views that enter the backbone equal CAT-Seg's on a shrunk photo (tiny random towers with the
    config's clip size and sliding settings)."""
    from declip_mm.models.backbones import clip_family, tiny_clip_overrides
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'catseg', name))
    m = copy.deepcopy(cfg.model)
    ov = tiny_clip_overrides(clip_family(m.backbone.model_name))
    if 'L-14' in m.backbone.model_name:
        ov['vision_cfg']['patch_size'] = 14
        if 'timm_kwargs' in ov['vision_cfg']:
            ov['vision_cfg']['timm_kwargs']['patch_size'] = 14
    m.backbone.update(checkpoint=None, model_overrides=ov, out_indices=(1, 2))
    m.text_encoder.update(checkpoint=None, model_overrides=ov)
    tiny = Config.fromfile(osp.join(REPO, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py'))
    m.decode_head = dict(copy.deepcopy(tiny.model.decode_head), feature_resolution=(24, 24), window_size=12)
    m.class_names = m.test_class_names = ['cat', 'dog', 'sky']
    model = build_seg_model(m).eval()
    seen = []
    extract = model.backbone.extract
    model.backbone.extract = lambda x, outputs=None: (seen.append(x.clone()), extract(x, outputs))[1]
    with torch.no_grad():
        model.test_step(pseudo_collate([_pipeline(cfg)(dict(img_path=photos[1]))]))
    sc = cfg.model.slide_cfg
    ref = catseg_clip_input(detectron2_resize_shortest_edge(photos[1], 640, 2560), sc['out_size'], sc['kernel'],
                            sc['stride'], cfg.model.clip_size)
    x = torch.cat(seen)
    assert x.shape == ref.shape == (5, 3, cfg.model.clip_size, cfg.model.clip_size)
    assert (x - ref).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------------ training-free
def declip_trainingfree_input(path, scale):
    """DeCLIP declip_segmentor.py + configs/cfg_*.py: (1, 3, h, w) normalised RGB, img_shape, scale_factor."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # mmcv LoadImageFromFile: BGR uint8
    H, W = img.shape[:2]
    # cfg_voc21.py Resize(scale=(4096, 448), keep_ratio=True) -> mmcv/image/geometric.py:242-250 rescale_size
    f = min(max(scale) / max(H, W), min(scale) / min(H, W))
    w, h = int(W * f + 0.5), int(H * f + 0.5)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)  # geometric.py:116
    # declip_segmentor.py:24-27 SegDataPreProcessor(mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323],
    # bgr_to_rgb=True) (mmseg data_preprocessor.py:113-118: channel flip, then (x - mean) / std in float32)
    x = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float()
    mean, std = torch.tensor([122.771, 116.746, 104.094]), torch.tensor([68.501, 66.632, 70.323])
    x = (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
    return x[None], (h, w), (w / W, h / H)


def declip_slide_crops(img, stride=112, crop=336, patch=16):
    """declip_segmentor.py:105-150 forward_slide + compute_padsize: every crop as it enters encode_dense."""
    _, _, h_img, w_img = img.shape
    h_grids = max(h_img - crop + stride - 1, 0) // stride + 1
    w_grids = max(w_img - crop + stride - 1, 0) // stride + 1
    crops = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * stride, w_idx * stride
            y2, x2 = min(y1 + crop, h_img), min(x1 + crop, w_img)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            c = img[:, :, y1:y2, x1:x2]
            H, W = c.shape[2:]
            lr, tb = (patch - W % patch) % patch, (patch - H % patch) % patch
            crops.append(F.pad(c, (lr // 2, lr - lr // 2, tb // 2, tb - tb // 2)))  # zero padding
    return crops


@pytest.mark.parametrize('path', ZS, ids=[osp.basename(p) for p in ZS])
def test_trainingfree_input_equals_declip(path, photos):
    """The normalised image (incl. the original's 3-decimal CLIP mean / std), img_shape and scale factor equal DeCLIP's
    training-free evaluator (was: full-precision mean / std, 1.4e-5 off)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    scale = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize'][0]['scale']
    pre = build_seg_model(cfg.model.data_preprocessor)
    for p in photos:
        ref, img_shape, sf = declip_trainingfree_input(p, scale)
        out = pre(pseudo_collate([_pipeline(cfg)(dict(img_path=p))]), False)
        meta = out['data_samples'][0].metainfo
        assert out['inputs'].shape == ref.shape and (out['inputs'] - ref).abs().max() < 1e-6
        assert meta['img_shape'] == img_shape and meta['scale_factor'] == pytest.approx(sf)


def test_trainingfree_crops_equal_declip(tmp_path):
    """Every window that enters the backbone equals DeCLIP's (incl. the centred zero padding of a 25-row image to
    32 rows under COCO-Object's 2048 long-side cap)."""
    from declip_mm.models.backbones import tiny_clip_overrides
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'zeroshot_seg', 'trainingfree_eva02-b16-declip_coco-object-448.py'))
    m = copy.deepcopy(cfg.model)
    ov = tiny_clip_overrides('eva')
    m.backbone.update(checkpoint=None, model_overrides=ov)
    m.text_encoder.update(checkpoint=None, model_overrides=ov)
    m.class_names = ['cat', 'dog', 'sky']
    model = build_seg_model(m).eval()
    seen = []
    extract = model.backbone.extract
    model.backbone.extract = lambda x, outputs=None: (seen.append(x.clone()), extract(x, outputs))[1]
    strip = str(tmp_path / 'strip.png')
    cv2.imwrite(strip, cv2.resize(cv2.imread(sample_path('grace_hopper.jpg')), (1000, 12)))
    for p in (sample_path('grace_hopper.jpg'), strip):
        seen.clear()
        with torch.no_grad():
            model.test_step(pseudo_collate([_pipeline(cfg)(dict(img_path=p))]))
        ref = declip_slide_crops(declip_trainingfree_input(p, (2048, 448))[0])
        x = torch.cat(seen)
        assert x.shape == torch.cat(ref).shape and (x - torch.cat(ref)).abs().max() < 1e-6
    assert x.shape[-2:] == (32, 336)  # 25 rows padded to 32 (3 above, 4 below)
