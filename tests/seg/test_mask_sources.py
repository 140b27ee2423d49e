"""Class-agnostic mask sources: CorrCLIP's file format, painting, resizing / window crops, generator sources
(SAM with a tiny random-weight model, SAM 2 through a stub with its interface), caching, tools/gen_masks.py."""
import os
import os.path as osp
import sys
import types

import numpy as np
import pytest
import torch

from declip_mm.models.task_modules import (MASK_PAD_VALUE, MaskFileError, MaskFileSource, SAM2MaskSource,
                                           SAMMaskSource, crop_mask_ids, load_mask_file, paint_masks,
                                           resize_mask_ids, save_mask_file)

from .conftest import REPO, TINY_ZS_CFG

sys.path.insert(0, osp.join(REPO, 'tools'))


# ------------------------------------------------------------------------------------------------ file format
@pytest.mark.parametrize('dtype', [np.int64, np.int32, np.int16, np.uint8, np.uint16])
def test_reads_corrclip_files(tmp_path, dtype):
    ids = np.random.RandomState(0).randint(0, 200, (7, 9)).astype(dtype)
    np.savez_compressed(str(tmp_path / '2008_000123.npz'), instance_mask=ids)  # CorrCLIP's writer
    src = MaskFileSource(str(tmp_path))
    assert src.path_for('data/VOC/JPEGImages/2008_000123.jpg') == str(tmp_path / '2008_000123.npz')  # stem + .npz
    out = src('data/VOC/JPEGImages/2008_000123.jpg')
    assert out.dtype == np.int32 and np.array_equal(out, ids.astype(np.int64))


def test_save_roundtrip_is_corrclip_format_and_atomic(tmp_path):
    ids = np.array([[-1, 0, 3], [70000, 2, 2]])
    save_mask_file(str(tmp_path / 'x' / 'img.npz'), torch.from_numpy(ids))
    with np.load(str(tmp_path / 'x' / 'img.npz')) as z:  # what CorrCLIP reads (corrclip_segmentor.py:280)
        assert z.files == ['instance_mask'] and z['instance_mask'].dtype == np.int32
        assert np.array_equal(z['instance_mask'], ids)
    assert os.listdir(str(tmp_path / 'x')) == ['img.npz']  # no temporary file left


def test_malformed_files_name_the_file(tmp_path):
    d = tmp_path
    (d / 'garbage.npz').write_bytes(b'\x00not a zip')
    np.save(str(d / 'plain.npy'), np.zeros((2, 2), np.int32))
    os.replace(str(d / 'plain.npy'), str(d / 'plain.npz'))
    np.savez(str(d / 'key.npz'), masks=np.zeros((2, 2), np.int32))
    np.savez(str(d / 'float.npz'), instance_mask=np.zeros((2, 2), np.float32))
    np.savez(str(d / 'cube.npz'), instance_mask=np.zeros((2, 2, 2), np.int32))
    np.savez(str(d / 'big.npz'), instance_mask=np.array([[2 ** 40]], np.int64))
    for name, msg in [('garbage', 'unreadable'), ('plain', 'not an .npz'), ('key', "no key 'instance_mask'"),
                      ('float', 'integer ids'), ('cube', r'\(H, W\)'), ('big', 'int32'), ('absent', 'not found')]:
        with pytest.raises(MaskFileError, match=msg) as e:
            load_mask_file(str(d / f'{name}.npz'))
        assert f'{name}.npz' in str(e.value) and e.value.path == str(d / f'{name}.npz')
    with pytest.raises(MaskFileError, match='does not exist'):
        MaskFileSource(str(d / 'nowhere'))('img.jpg')


# ------------------------------------------------------------------------------------------- painting, resize, crop
def test_paint_masks_area_ascending_larger_overwrite():
    big = np.zeros((4, 6), bool)
    big[:, :4] = True  # area 16
    small = np.zeros((4, 6), bool)
    small[1:3, 2:5] = True  # area 6, partly inside big
    tiny = np.zeros((4, 6), bool)
    tiny[0, 5] = True  # area 1
    anns = [dict(segmentation=big, area=16), dict(segmentation=tiny, area=1), dict(segmentation=small, area=6)]
    # CorrCLIP corrclip_segmentor.py:334-341: sort by area ascending, ids 1.. in that order, later (larger) overwrite
    expect = np.zeros((4, 6), np.int32)
    expect[tiny], expect[small], expect[big] = 1, 2, 3
    assert np.array_equal(paint_masks(anns, (4, 6)), expect)
    assert expect[1, 4] == 2 and expect[1, 2] == 3  # the part of small outside big survives
    assert paint_masks([], (2, 3)).tolist() == [[0] * 3] * 2


def test_resize_is_legacy_nearest_and_crop_pads_with_10000():
    ids = torch.arange(5 * 7, dtype=torch.int32).view(5, 7)
    out = resize_mask_ids(ids, (8, 11))
    # torch 'nearest' (CorrCLIP corrclip_segmentor.py:194): source index floor(dst * in / out)
    ys, xs = (np.arange(8) * 5 / 8).astype(int), (np.arange(11) * 7 / 11).astype(int)
    assert out.dtype == torch.int32 and np.array_equal(out.numpy(), ids.numpy()[ys][:, xs])
    assert resize_mask_ids(ids[None, None], (3, 3)).shape == (1, 1, 3, 3)
    win = crop_mask_ids(ids[None, None], (1, 4, 2, 6), pad=(1, 2, 0, 1))  # (l, r, t, b) as F.pad
    assert win.shape == (1, 1, 4, 7) and MASK_PAD_VALUE == 10000
    assert torch.equal(win[0, 0, :3, 1:5], ids[1:4, 2:6]) and (win[0, 0, 3] == 10000).all()
    assert (win[0, 0, :, 0] == 10000).all() and (win[0, 0, :, 5:] == 10000).all()


# ------------------------------------------------------------------------------------------------ generator sources
class _Gen:
    """Generator with the SAM / SAM 2 automatic-mask-generator interface: thresholds of the red channel."""
    calls = 0

    def __init__(self, model, **kw):
        self.model, self.kw = model, kw

    def generate(self, image):
        _Gen.calls += 1
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        r = image[..., 0]
        return [dict(segmentation=r > t, area=int((r > t).sum())) for t in (200, 50, 120)]


def _write_rgb(path, h=20, w=30, seed=0):
    from PIL import Image
    arr = np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture
def fake_sam2(monkeypatch):
    """A ``sam2`` package stand-in: ``build_sam2`` -> a tiny module, the generator -> :class:`_Gen`."""
    built = {}

    def build_sam2(config_file, ckpt_path=None, device='cuda', apply_postprocessing=True, **kw):
        built.update(config=config_file, ckpt=ckpt_path, post=apply_postprocessing)
        return torch.nn.Linear(3, 2)
    pkg = types.ModuleType('sam2')
    bs = types.ModuleType('sam2.build_sam')
    bs.build_sam2 = build_sam2
    amg = types.ModuleType('sam2.automatic_mask_generator')
    amg.SAM2AutomaticMaskGenerator = _Gen
    monkeypatch.setitem(sys.modules, 'sam2', pkg)
    monkeypatch.setitem(sys.modules, 'sam2.build_sam', bs)
    monkeypatch.setitem(sys.modules, 'sam2.automatic_mask_generator', amg)
    return built


def test_sam2_source_settings_weights_cache(tmp_path, fake_sam2):
    sd = {k: torch.full_like(v, 0.5) for k, v in torch.nn.Linear(3, 2).state_dict().items()}
    torch.save({'model': sd}, str(tmp_path / 'sam2.pt'))
    img = tmp_path / 'im_001.png'
    rgb = _write_rgb(str(img))
    src = SAM2MaskSource(checkpoint=str(tmp_path / 'sam2.pt'), cache_dir=str(tmp_path / 'cache'), device='cpu')
    _Gen.calls = 0
    ids = src(str(img))
    gen = src.generator
    # CorrCLIP corrclip_segmentor.py:264-272
    assert fake_sam2 == dict(config='sam2_hiera_l.yaml', ckpt=None, post=False)
    assert gen.kw == dict(points_per_side=8, pred_iou_thresh=0.4, stability_score_thresh=0.4, multimask_output=False)
    assert all((p == 0.5).all() for p in gen.model.parameters())  # our weights_only load
    r = rgb[..., 0]
    expect = np.zeros(r.shape, np.int32)  # areas: r>200 smallest -> 1, r>120 -> 2, r>50 largest -> 3 (overwrites)
    expect[r > 200] = 1
    expect[r > 120] = 2
    expect[r > 50] = 3
    assert np.array_equal(ids, expect)
    assert np.array_equal(MaskFileSource(str(tmp_path / 'cache'))(str(img)), expect)  # the cache is a mask folder
    assert np.array_equal(src(str(img)), expect) and _Gen.calls == 1  # second call: read from the cache


def test_generator_sources_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'sam2', None)
    monkeypatch.setitem(sys.modules, 'sam2.build_sam', None)
    monkeypatch.setitem(sys.modules, 'sam2.automatic_mask_generator', None)
    with pytest.raises(ImportError, match='pip install sam2'):
        SAM2MaskSource(checkpoint='x.pt', device='cpu').generator
    monkeypatch.setitem(sys.modules, 'segment_anything', None)
    with pytest.raises(ImportError, match='pip install segment-anything'):
        SAMMaskSource(checkpoint='x.pth', device='cpu').generator


# ------------------------------------------------------------------------------------------------ SAM, real generator
def tiny_sam(seed=0):
    """A random SAM with the real architecture, 64-px input, 32-d embeddings (seconds on CPU)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    torch.manual_seed(seed)
    return Sam(image_encoder=ImageEncoderViT(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2,
                                             out_chans=32, window_size=0, global_attn_indexes=(0, )),
               prompt_encoder=PromptEncoder(embed_dim=32, image_embedding_size=(4, 4), input_image_size=(64, 64),
                                            mask_in_chans=4),
               mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=32, iou_head_depth=1,
                                        iou_head_hidden_dim=16,
                                        transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=32,
                                                                      num_heads=2)),
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


# random weights: keep whatever comes out (no quality filter, no box NMS), so that many masks overlap
LOOSE = dict(pred_iou_thresh=-1e9, stability_score_thresh=0.0)


def test_sam_source_is_the_real_generator_painted(tmp_path, monkeypatch):
    import segment_anything as sa  # requirements/tests.txt
    from segment_anything import SamAutomaticMaskGenerator
    img = tmp_path / 'cat.jpg'
    _write_rgb(str(img), 40, 56, seed=3)
    model = tiny_sam()
    torch.save(model.state_dict(), str(tmp_path / 'sam_tiny.pth'))
    monkeypatch.setitem(sa.sam_model_registry, 'vit_b', lambda checkpoint=None: tiny_sam(seed=99))
    src = SAMMaskSource(checkpoint=str(tmp_path / 'sam_tiny.pth'), model_type='vit_b', device='cpu',
                        generator_kwargs=dict(box_nms_thresh=1.0), **LOOSE)
    ids = src(str(img))
    assert src.generator.points_per_batch == 64 and len(src.generator.point_grids[0]) == 64  # 8 x 8 points
    for a, b in zip(src.generator.predictor.model.parameters(), model.parameters()):  # the file's weights
        assert torch.equal(a, b)
    from declip_mm.models.task_modules import read_rgb
    anns = SamAutomaticMaskGenerator(model, points_per_side=8, box_nms_thresh=1.0, **LOOSE).generate(
        read_rgb(str(img)))
    assert len(anns) > 1 and len({a['area'] for a in anns}) > 1
    expect = np.zeros((40, 56), np.int32)  # painting written out here (CorrCLIP corrclip_segmentor.py:334-341)
    for k, a in enumerate(sorted(anns, key=lambda a: a['area']), start=1):
        expect[a['segmentation']] = k
    assert ids.shape == (40, 56) and np.array_equal(ids, expect)


def test_gen_masks_tool_generates_resumes_and_checks(tmp_path, monkeypatch, capsys):
    import gen_masks
    import segment_anything as sa
    monkeypatch.setitem(sa.sam_model_registry, 'vit_b', lambda checkpoint=None: tiny_sam())
    torch.save(tiny_sam().state_dict(), str(tmp_path / 'sam.pth'))
    out = str(tmp_path / 'masks')
    opts = ['--cfg-options', f'test_dataloader.dataset.data_root={tmp_path / "synth"}',
            'test_dataloader.dataset.num_images=3']
    gen = ['--generator', 'sam', '--model-type', 'vit_b', '--checkpoint', str(tmp_path / 'sam.pth'),
           '--device', 'cpu', '--pred-iou-thresh=-1e9', '--stability-score-thresh=0']
    res = gen_masks.main([TINY_ZS_CFG, '--out-dir', out] + gen + opts)
    assert res == dict(generated=3, cached=0, failed=[])
    assert len(os.listdir(out)) == 3
    assert gen_masks.main([TINY_ZS_CFG, '--out-dir', out] + gen + opts)['cached'] == 3  # resumes
    assert gen_masks.main([TINY_ZS_CFG, '--check', out] + opts)['problems'] == []
    files = sorted(os.listdir(out))
    save_mask_file(osp.join(out, files[0]), np.zeros((5, 5), np.int32))
    os.remove(osp.join(out, files[1]))
    problems = gen_masks.main([TINY_ZS_CFG, '--check', out] + opts)['problems']
    assert len(problems) == 2 and any(files[0] in p and 'is 5x5' in p for p in problems)
    assert any(files[1] in p and 'not found' in p for p in problems)
    with pytest.raises(SystemExit, match='has no mask source'):
        gen_masks.main([TINY_ZS_CFG, '--out-dir', out] + opts)
