"""Grid-crop transform (method doc section 3 / equivalence tests 10-11)."""
import numpy as np
import pytest
import torch

from declip_mm.datasets.transforms.grid_crops import (DeCLIPGridCrops, grid_tiles, letterbox, official_grid_pairs,
                                                      paper_grid_pairs)


def _img(h, w, seed=0):
    """A smooth (gradient) image with values in [40, 200]: bicubic resizing never reaches black."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 40 + 160 * (yy / max(1, h - 1) * 0.5 + xx / max(1, w - 1) * 0.5)
    off = np.random.default_rng(seed).integers(0, 20, size=3)
    return np.clip(base[..., None] - off, 40, 200).astype(np.uint8)


def test_official_pairs():
    pairs = official_grid_pairs()
    assert len(pairs) == 24 and len(set(pairs)) == 24
    expected = {1: [1, 2], 2: [1, 2, 3, 4], 3: [2, 3, 4, 5, 6], 4: [2, 3, 4, 5, 6], 5: [3, 4, 5, 6], 6: [3, 4, 5, 6]}
    assert {m: [n for mm, n in pairs if mm == m] for m in range(1, 7)} == expected
    assert len(paper_grid_pairs()) == 36


def test_sampled_grids_are_allowed_and_deterministic():
    t = DeCLIPGridCrops(det_size=64, crop_size=32, max_crops=20, seed=3)
    allowed = set(official_grid_pairs())
    seen = set()
    for idx in range(300):
        boxes, mn = t.sample_boxes(50, 70, epoch=idx % 3, sample_idx=idx)
        assert mn in allowed
        seen.add(mn)
        assert len(boxes) == min(20, mn[0] * mn[1])
    assert len(seen) == 24  # every pair is reachable
    a = t.sample_boxes(50, 70, epoch=1, sample_idx=5)
    b = DeCLIPGridCrops(det_size=64, crop_size=32, max_crops=20, seed=3).sample_boxes(50, 70, 1, 5)
    assert a[1] == b[1] and np.array_equal(a[0], b[0])
    draws = {tuple(t.sample_boxes(50, 70, epoch=e, sample_idx=5)[0].ravel()) for e in range(6)}
    assert len(draws) > 1  # the epoch changes the draw


@pytest.mark.parametrize('h,w,m,n', [(37, 53, 3, 5), (64, 64, 6, 6), (10, 90, 1, 2), (45, 31, 5, 3)])
def test_tiles_partition_image(h, w, m, n):
    tiles = grid_tiles(h, w, m, n)
    cover = np.zeros((h, w), np.int32)
    for x1, y1, x2, y2 in tiles:
        assert x2 > x1 and y2 > y1
        cover[y1:y2, x1:x2] += 1
    assert (cover == 1).all()  # exact tiling: no gap, no overlap


def test_transform_outputs_crops_boxes_and_flags():
    img = _img(60, 90)
    t = DeCLIPGridCrops(det_size=112, student_patch=16, vfm_patch=14, crop_size=32, max_crops=20, seed=0)
    for idx in range(12):
        r = t(dict(img=img, sample_idx=idx, epoch=0))
        inp = r['inputs']
        assert inp['student'].shape == (3, 112, 112) and inp['student'].dtype == torch.uint8
        assert inp['vfm'].shape == (3, 98, 98)
        assert inp['crops'].shape == (20, 3, 32, 32) and inp['boxes'].shape == (20, 5)
        m, n = r['data_samples']['grid']
        k = min(20, m * n)
        assert r['data_samples']['num_crops'] == k
        flags = inp['boxes'][:, 4]
        assert flags[:k].eq(1).all() and flags[k:].eq(0).all()
        assert inp['boxes'][k:].eq(0).all() and inp['crops'][k:].eq(0).all()
        side = max(img.shape[:2])
        area = 0.0
        tiles, _ = t.sample_boxes(60, 90, 0, idx)
        for j in range(k):
            x1, y1, x2, y2 = tiles[j].tolist()
            area += (x2 - x1) * (y2 - y1)
            # the RoI box is the unrounded grid cell of the tile: its edges are multiples of w / n and h / m
            bx = inp['boxes'][j, :4].double() * side
            assert torch.allclose(bx, torch.tensor([x1, y1, x2, y2], dtype=torch.double), atol=0.5 + 1e-4)
            assert torch.allclose(bx[[0, 2]] / (90 / n), (bx[[0, 2]] / (90 / n)).round(), atol=1e-4)
            assert torch.allclose(bx[[1, 3]] / (60 / m), (bx[[1, 3]] / (60 / m)).round(), atol=1e-4)
            ref, (x0, y0, cw, ch) = letterbox(img[y1:y2, x1:x2], 32, center=True)
            crop = inp['crops'][j].permute(1, 2, 0).numpy()
            assert np.array_equal(crop, ref)  # the crop is exactly the letterboxed tile
            # centred black padding
            assert abs(x0 - (32 - cw) / 2) <= 0.5 and abs(y0 - (32 - ch) / 2) <= 0.5
            assert crop[:y0].max(initial=0) == 0 and crop[y0 + ch:].max(initial=0) == 0
            assert crop[:, :x0].max(initial=0) == 0 and crop[:, x0 + cw:].max(initial=0) == 0
            assert crop[y0:y0 + ch, x0:x0 + cw].min() > 0
        if m * n <= 20:
            assert area == img.shape[0] * img.shape[1]  # kept boxes tile the whole image
        # boxes are normalised to the padded square canvas: all inside [0, w/side] x [0, h/side]
        assert inp['boxes'][:k, [0, 2]].max() <= 90 / side + 1e-6
        assert inp['boxes'][:k, [1, 3]].max() <= 60 / side + 1e-6


def test_student_and_vfm_grids_cover_same_region():
    img = _img(300, 420)
    t = DeCLIPGridCrops(det_size=560, student_patch=16, vfm_patch=14, crop_size=224, max_crops=4)
    r = t(dict(img=img, sample_idx=0, epoch=0))
    s, v = r['inputs']['student'], r['inputs']['vfm']
    assert s.shape[-1] == 560 and v.shape[-1] == 490
    assert s.shape[-1] // 16 == v.shape[-1] // 14 == 35
    # content height (non-black rows) as a fraction of the canvas is the same in both images
    hs = int((s.sum(dim=(0, 2)) > 0).sum())
    hv = int((v.sum(dim=(0, 2)) > 0).sum())
    assert hs == 400 and hv == 350
    assert hs / 560 == pytest.approx(hv / 490, abs=1 / 490)
    # padding is at the bottom (right/bottom letterbox) and black
    assert s[:, 400:].max() == 0 and v[:, 350:].max() == 0
    # token rows: both grids have the same number of (partially) covered rows
    assert int(np.ceil(hs / 16)) == int(np.ceil(hv / 14))


def test_fixed_grid_and_errors():
    t = DeCLIPGridCrops(det_size=64, crop_size=16, grid=[(2, 2)])
    for i in range(5):
        assert t.sample_boxes(40, 40, 0, i)[1] == (2, 2)
    with pytest.raises(ValueError, match='multiple of the student patch'):
        DeCLIPGridCrops(det_size=100, student_patch=16)
    with pytest.raises(ValueError, match='grid'):
        DeCLIPGridCrops(grid='nope')


# --------------------------------------------------------------------------- item 5: the original resize (PIL bicubic)
def _photo():
    import os

    import matplotlib
    from PIL import Image
    with Image.open(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')) as im:
        return im.convert('RGB')  # 512 x 600 RGB photo


def _original_letterbox(pil, size, center):
    """The original pipeline on a PIL image: torchvision resize (PIL antialiased bicubic) of the longest side to
    ``size`` with Python rounding, then black padding right/bottom (ResizeLongest) or centred (ResizeMaxSize)."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    w, h = pil.size
    scale = size / float(max(h, w))
    nh, nw = round(h * scale), round(w * scale)
    r = TF.resize(pil, [nh, nw], InterpolationMode.BICUBIC)
    pw, ph = size - nw, size - nh
    pad = [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2] if center else [0, 0, pw, ph]
    return np.asarray(TF.pad(r, padding=pad, fill=0))


def test_resize_matches_original_pil_pipeline_on_a_photo():
    """Student image, VFM view and every teacher crop equal the original torchvision-on-PIL pipeline exactly
    (the cv2 bicubic of before differed by tens of grey levels on the 224-px downscale)."""
    pil = _photo()
    img = np.asarray(pil)
    t = DeCLIPGridCrops(det_size=224, student_patch=16, vfm_patch=14, crop_size=48, max_crops=20, seed=0)
    r = t(dict(img=img, sample_idx=0, epoch=0))  # a 6 x 3 grid: 512 / 3 px is not a whole pixel
    inp = r['inputs']
    assert np.array_equal(inp['student'].permute(1, 2, 0).numpy(), _original_letterbox(pil, 224, False))
    assert np.array_equal(inp['vfm'].permute(1, 2, 0).numpy(), _original_letterbox(pil, 196, False))
    tiles, (m, n) = t.sample_boxes(600, 512, 0, 0)
    assert (m, n) == (6, 3)
    assert len(tiles) == r['data_samples']['num_crops'] > 1
    # the original's boxes: its normalised grid template (torch.linspace, float32) x [w, h] x scale / det
    gx, gy = torch.meshgrid(torch.linspace(0, 1, n + 1), torch.linspace(0, 1, m + 1), indexing='xy')
    template = torch.cat([torch.stack([gx[:m, :n], gy[:m, :n]], -1), torch.stack([gx[1:, 1:], gy[1:, 1:]], -1)],
                         -1).view(-1, 4)
    orig = template * torch.tensor([512., 600., 512., 600.]) * (224 / 600) / 224
    k = len(tiles)
    got = inp['boxes'][:k, :4]
    for j in range(k):  # the same cells (the tile order is ours) up to float32 rounding
        i = int(((orig - got[j]).abs().sum(1)).argmin())
        assert torch.allclose(orig[i], got[j], atol=1e-6), j
    for k, (x1, y1, x2, y2) in enumerate(tiles):
        ref = _original_letterbox(pil.crop((int(x1), int(y1), int(x2), int(y2))), 48, True)
        assert np.array_equal(inp['crops'][k].permute(1, 2, 0).numpy(), ref), k
    # upsampling (a crop smaller than the teacher input) also follows PIL
    small = pil.crop((10, 20, 41, 37))
    assert np.array_equal(letterbox(np.asarray(small), 48, center=True)[0], _original_letterbox(small, 48, True))


def test_letterbox_size_rounding_is_half_to_even_unlike_mmcv_imrescale():
    """Why the letterbox calls mmcv.imresize with its own size and not mmcv.imrescale: at an exact .5 the original
    (Python round) rounds to even, imrescale rounds up."""
    import mmcv
    img = np.full((185, 1120, 3), 100, np.uint8)  # scale 0.5 -> 92.5 rows
    assert letterbox(img, 560)[1] == (0, 0, 560, 92)
    assert mmcv.imrescale(img, (560, 560)).shape[:2] == (93, 560)
    pil = _photo().resize((1120, 185))
    assert np.array_equal(letterbox(np.asarray(pil), 560)[0], _original_letterbox(pil, 560, False))


def test_backbone_inputs_equal_the_original_transforms_on_a_photo():
    """The float tensors entering the student, the teacher (crops) and the VFM equal the original's torchvision
    pipeline: DeCLIP src/open_clip/transform.py det_image_transform (ResizeLongest, ToTensor, Normalize with
    OPENAI_DATASET_MEAN / STD of the EVA-CLIP towers) for the student and crops, the same with ImageNet mean / std
    for the VFM (src/training/data.py GridDistillDataset proxy_transform); letterbox fill 0 before normalising."""
    import torchvision.transforms.functional as TF
    from mmengine.dataset import default_collate

    from distill_helpers import build_distiller
    pil = _photo()
    t = DeCLIPGridCrops(det_size=224, student_patch=16, vfm_patch=14, crop_size=48, max_crops=20, seed=0)
    r = t(dict(img=np.asarray(pil), sample_idx=0, epoch=0))
    pre = build_distiller().data_preprocessor
    out = pre(default_collate([dict(inputs=r['inputs'], data_samples=r['data_samples'])]), True)['inputs']
    clip = dict(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
    imnet = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    def original(arr, norm):
        return TF.normalize(TF.to_tensor(np.array(arr)), **norm)
    assert torch.allclose(out['student'][0], original(_original_letterbox(pil, 224, False), clip), atol=1e-5)
    assert torch.allclose(out['vfm'][0], original(_original_letterbox(pil, 196, False), imnet), atol=1e-5)
    tiles, _ = t.sample_boxes(600, 512, 0, 0)
    for k, (x1, y1, x2, y2) in enumerate(tiles):
        ref = original(_original_letterbox(pil.crop((int(x1), int(y1), int(x2), int(y2))), 48, True), clip)
        assert torch.allclose(out['crops'][0, k], ref, atol=1e-5), k
