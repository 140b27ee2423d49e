"""PAMR and the mask vote as post-processing of the training-free segmentor.

Each piece is pinned against an independent computation written here from the original's formula:
PAMR from NACLIP ``pamr.py`` (numpy, float64, the neighbour tensor materialised as the original does) and the mask
vote as CorrCLIP writes it (``corrclip_segmentor.py:217-222``: a loop over ids with ``torch.mode``).
"""
import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from declip_mm.models.task_modules import PAMR, MaskFileError, MaskVote, mask_vote, pamr, save_mask_file

from .conftest import TINY_ZS_CFG, build_seg_model, tiny_model_cfg


# ------------------------------------------------------------------------------------------------ references
def pamr_reference(img, logits, num_iter, dilations):
    """NACLIP pamr.py:107-135 in numpy: (C, H, W) image, (Q, H, W) logits -> (Q, H, W)."""
    x, m = img.astype(np.float64), logits.astype(np.float64)
    H, W = x.shape[-2:]

    def nb(a, d, i, j):  # a(y + i d, x + j d), replicate padding by d (pamr.py:47-49, conv2d with dilation d)
        ap = np.pad(a, ((0, 0), (d, d), (d, d)), mode='edge')
        return ap[:, d + i * d:d + i * d + H, d + j * d:d + j * d + W]
    offs = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]  # kernel taps pamr.py:24-33
    taps = [nb(x, d, i, j) for d in dilations for i in (-1, 0, 1) for j in (-1, 0, 1)]  # LocalStDev pamr.py:79-89
    std = np.std(np.stack(taps), axis=0, ddof=1)  # x.std(2): unbiased (pamr.py:97)
    aff = np.stack([np.abs(x - nb(x, d, i, j)) for d in dilations for i, j in offs])  # (P, C, H, W) pamr.py:103
    k = (-aff / (1e-8 + 0.1 * std)).mean(axis=1)  # pamr.py:126-127: mean over image channels -> (P, H, W)
    w = np.exp(k - k.max(0))
    w /= w.sum(0)  # softmax over the P neighbours (pamr.py:128)
    pairs = [(d, o) for d in dilations for o in offs]
    for _ in range(num_iter):  # pamr.py:130-132: m <- sum_P copy(m) * w  (the centre is no term)
        m = sum(w[p] * nb(m, d, *o) for p, (d, o) in enumerate(pairs))
    return m


def vote_reference(pred, ids):
    """CorrCLIP corrclip_segmentor.py:217-222, literally: every id but the smallest gets torch.mode of its pixels."""
    pred = pred.clone()
    vals = torch.unique(ids)[1:]
    masks = (vals[:, None, None] == ids[None]).unsqueeze(1)
    for mask in masks:
        pred[mask] = torch.mode(pred[mask])[0]
    return pred


def _rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ PAMR
def test_pamr_matches_the_formula_with_naclip_defaults():
    # 40 x 52 > 2 x 16: interior pixels and replicate-padded borders at both dilations
    img, logits = _rand(0, 1, 3, 40, 52), _rand(1, 1, 4, 40, 52) * 0.1
    out = PAMR().refine_logits(logits[0], img[0])  # defaults: NACLIP naclip.py:21 (10 steps, dilations 8 / 16)
    ref = pamr_reference(img[0].numpy(), logits[0].numpy(), 10, (8, 16))
    assert np.abs(out.numpy() - ref).max() < 1e-5
    # the comparison separates the neighbouring settings (else it could not catch a wrong default)
    for steps, dil in ((9, (8, 16)), (10, (8, )), (10, (1, 2))):
        assert np.abs(pamr_reference(img[0].numpy(), logits[0].numpy(), steps, dil) - ref).max() > 1e-3


def test_pamr_small_image_and_one_dilation():
    img, logits = _rand(2, 2, 3, 11, 9), _rand(3, 2, 5, 11, 9)  # smaller than the dilation: borders only
    out = pamr(img, logits, num_iter=3, dilations=(4, ))
    for b in range(2):
        assert np.abs(out[b].numpy() - pamr_reference(img[b].numpy(), logits[b].numpy(), 3, (4, ))).max() < 1e-5


def test_pamr_resizes_the_image_to_the_logits_like_naclip():
    # NACLIP naclip.py:130: the (normalised) input is resized bilinearly (align_corners=False) to ori_shape
    img, logits = _rand(4, 3, 17, 23), _rand(5, 3, 34, 40)
    out = PAMR(num_iter=2, dilations=(2, 3)).refine_logits(logits, img)
    big = F.interpolate(img[None], size=(34, 40), mode='bilinear', align_corners=False)[0]
    assert np.abs(out.numpy() - pamr_reference(big.numpy(), logits.numpy(), 2, (2, 3))).max() < 1e-5


def test_pamr_bf16_runs_in_fp32():
    img, logits = _rand(6, 1, 3, 24, 30).bfloat16(), _rand(7, 1, 6, 24, 30).bfloat16()
    out = pamr(img, logits, 4, (2, 4))
    assert out.dtype == torch.bfloat16
    exact = pamr(img.float(), logits.float(), 4, (2, 4))  # fp32 inside: only the final rounding differs
    assert torch.equal(out, exact.bfloat16())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.equal(pamr(img.float(), logits.float(), 4, (2, 4)), exact)


# ------------------------------------------------------------------------------------------------ mask vote
def test_mask_vote_hand_cases():
    pred = torch.tensor([[[2, 1, 1, 0],
                          [2, 2, 3, 3],
                          [0, 0, 3, 1]]])
    ids = torch.tensor([[5, 5, 5, 0],
                        [7, 7, 9, 9],
                        [0, 0, 9, 9]])
    out = mask_vote(pred, ids)
    # id 5: labels (2, 1, 1) -> 1 (most frequent, not the first pixel's 2); id 7: (2, 2) -> 2;
    # id 9: (3, 3, 3, 1) -> 3; id 0 is the smallest (unsegmented): unchanged
    assert out.tolist() == [[[1, 1, 1, 0], [2, 2, 3, 3], [0, 0, 3, 3]]]
    # tie (1, 3, 1, 3): the smallest label, as torch.mode
    assert mask_vote(torch.tensor([[1, 3, 1, 3]]), torch.tensor([[0, 4, 4, 4]]))[0, 1:].tolist() == [3, 3, 3]
    assert mask_vote(torch.tensor([[0, 3, 1, 3, 1]]), torch.tensor([[0, 4, 4, 4, 4]])).tolist() == [[0, 1, 1, 1, 1]]
    # the smallest id PRESENT is the unsegmented union: -1 (EoMT files), or a real region when nothing is unsegmented
    pred = torch.tensor([[1, 2, 2, 2, 0]])
    assert mask_vote(pred, torch.tensor([[-1, -1, 3, 3, 3]])).tolist() == [[1, 2, 2, 2, 2]]
    assert mask_vote(pred, torch.tensor([[2, 2, 3, 3, 3]])).tolist() == [[1, 2, 2, 2, 2]]
    assert mask_vote(pred, torch.tensor([[2, 2, 3, 3, 3]]), ignore_smallest=False).tolist() == [[1, 1, 2, 2, 2]]


@pytest.mark.parametrize('seed', range(6))
def test_mask_vote_equals_corrclip_loop(seed):
    g = torch.Generator().manual_seed(seed)
    H, W = 37, 45
    pred = torch.randint(0, 3 + seed, (1, H, W), generator=g)  # few labels: many ties
    cell = 3 + seed
    grid = torch.randint(-1 if seed % 2 else 0, 9, (1, 1, H // cell + 1, W // cell + 1), generator=g).float()
    ids = F.interpolate(grid, scale_factor=cell, mode='nearest')[0, 0, :H, :W].int()
    assert torch.equal(mask_vote(pred, ids), vote_reference(pred, ids))


# ------------------------------------------------------------------------------------------------ in the segmentor
@pytest.fixture(scope='module')
def zs():
    torch.manual_seed(0)
    return build_seg_model(tiny_model_cfg(TINY_ZS_CFG)).eval()


def _mask_files(tmp_path, shapes):
    g = torch.Generator().manual_seed(3)
    paths = []
    for k, (h, w) in enumerate(shapes):
        grid = torch.randint(0, 6, (1, 1, h // 8 + 1, w // 8 + 1), generator=g).float()
        ids = F.interpolate(grid, scale_factor=8, mode='nearest')[0, 0, :h, :w].int()
        save_mask_file(str(tmp_path / 'masks' / f'img{k}.npz'), ids)
        paths.append(str(tmp_path / 'images' / f'img{k}.jpg'))  # only the stem matters
    return paths


def _run(model, imgs, metas, idx):
    batch = dict(inputs=[imgs[i] for i in idx], data_samples=[SegDataSample(metainfo=metas[i]) for i in idx])
    d = model.data_preprocessor(batch, False)
    return model.predict(d['inputs'], d['data_samples'])


def test_segmentor_postprocess_glue(zs, tmp_path):
    """PAMR gets the raw logits at the original size and the unpadded normalised image; the vote gets the labels."""
    from declip_mm.models.task_modules import build_seg_postprocessors
    paths = _mask_files(tmp_path, [(60, 76)])
    m = copy.deepcopy(zs)
    m.postprocess = build_seg_postprocessors([
        dict(type='MaskVote', mask_source=dict(type='MaskFileSource', mask_dir=str(tmp_path / 'masks'))),
        dict(type='PAMR', num_iter=3, dilations=(2, 4))])  # listed after the vote: still runs on the logits first
    m.save_seg_logits = True
    img = torch.randint(0, 256, (3, 48, 61), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    meta = dict(img_shape=(48, 61), ori_shape=(60, 76), img_path=paths[0])
    out = _run(m, [img], [meta], [0])[0]
    x = m.data_preprocessor(dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)]), False)['inputs'][0]
    with torch.no_grad():
        logits = F.interpolate(m.slide_logits(x, m.query_embeddings())[None], size=(60, 76), mode='bilinear',
                               align_corners=False)[0]
    big = F.interpolate(x[None], size=(60, 76), mode='bilinear', align_corners=False)[0]
    refined = torch.from_numpy(pamr_reference(big.numpy(), logits.numpy(), 3, (2, 4))).float()
    label, probs = m.postprocess_probs(refined)
    assert torch.allclose(out.seg_logits.data, probs, atol=1e-5)
    ids = torch.from_numpy(np.load(str(tmp_path / 'masks' / 'img0.npz'))['instance_mask'])
    assert torch.equal(out.pred_sem_seg.data, vote_reference(label, ids))


def test_segmentor_batch_of_two_equals_each_alone(zs, tmp_path):
    paths = _mask_files(tmp_path, [(120, 160), (100, 120)])
    m = build_seg_model(tiny_model_cfg(TINY_ZS_CFG, postprocess=[
        dict(type='PAMR', num_iter=2, dilations=(4, 8)),
        dict(type='MaskVote', mask_source=dict(type='MaskFileSource', mask_dir=str(tmp_path / 'masks')))]))
    m.load_state_dict(zs.state_dict())
    m.eval().save_seg_logits = True
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 112, 150), generator=g, dtype=torch.uint8),
            torch.randint(0, 256, (3, 100, 120), generator=g, dtype=torch.uint8)]
    metas = [dict(img_shape=(112, 150), ori_shape=(120, 160), img_path=paths[0]),
             dict(img_shape=(100, 120), ori_shape=(100, 120), img_path=paths[1])]
    both = _run(m, imgs, metas, [0, 1])
    for i in range(2):
        alone = _run(m, imgs, metas, [i])[0]
        assert torch.allclose(both[i].seg_logits.data, alone.seg_logits.data, atol=1e-5)
        assert torch.equal(both[i].pred_sem_seg.data, alone.pred_sem_seg.data)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # bf16 autocast: same code path, labels still voted
        out = _run(m, imgs, metas, [0, 1])
    for i, o in enumerate(out):
        ids = torch.from_numpy(np.load(str(tmp_path / 'masks' / f'img{i}.npz'))['instance_mask'])
        assert o.pred_sem_seg.data.shape[-2:] == metas[i]['ori_shape']
        assert torch.equal(o.pred_sem_seg.data, vote_reference(o.pred_sem_seg.data, ids))  # a fixed point


def test_mask_vote_bad_input_error_or_counted_skip(tmp_path, caplog):
    save_mask_file(str(tmp_path / 'a.npz'), np.zeros((4, 5), np.int32))
    (tmp_path / 'b.npz').write_bytes(b'not a zip archive')
    src = dict(type='MaskFileSource', mask_dir=str(tmp_path))
    label = torch.zeros(1, 6, 5, dtype=torch.long)
    cases = {'a.jpg': 'a.npz', 'b.jpg': 'b.npz', 'c.jpg': 'c.npz'}  # wrong size, unreadable, missing
    strict = MaskVote(src)
    for img, npz in cases.items():
        with pytest.raises(MaskFileError, match=npz):
            strict.refine_label(label, SegDataSample(metainfo=dict(img_path=img)))
    lenient = MaskVote(src, on_missing='skip')
    with caplog.at_level(logging.WARNING):
        for img in cases:
            assert torch.equal(lenient.refine_label(label, SegDataSample(metainfo=dict(img_path=img))), label)
    rep = lenient.report()
    assert len(rep['skipped']) == 3 and all(n in ''.join(rep['skipped']) for n in cases.values())
    assert 'are 4x5' in rep['skipped'][0] and 'is 6x5' in rep['skipped'][0]
    with pytest.raises(ValueError, match='on_missing'):
        MaskVote(src, on_missing='ignore')


def test_test_tool_with_missing_masks_counts_skips(tmp_path):
    """tools/test.py with PAMR + MaskVote(on_missing='skip'): 3 images, masks for one (one file wrong size, one
    missing): the run completes, the voted image is constant on each region, the log counts 2 skipped images."""
    import glob
    import os.path as osp
    import pickle
    import sys
    from PIL import Image

    from declip_mm.datasets.synthetic_seg import SyntheticSegDataset
    from .conftest import REPO
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import test as test_tool
    data_root, masks = str(tmp_path / 'synth'), tmp_path / 'masks'
    ds = SyntheticSegDataset(data_root=data_root, split='val', num_images=3, seed=1, pipeline=[])
    paths = sorted(ds.get_data_info(i)['img_path'] for i in range(3))
    h, w = np.asarray(Image.open(paths[0])).shape[:2]
    ids = np.repeat(np.repeat(np.arange(((h + 15) // 16) * ((w + 15) // 16)).reshape((h + 15) // 16, -1), 16, 0),
                    16, 1)[:h, :w]
    save_mask_file(str(masks / (osp.splitext(osp.basename(paths[0]))[0] + '.npz')), ids)
    save_mask_file(str(masks / (osp.splitext(osp.basename(paths[1]))[0] + '.npz')), ids[:-1])  # wrong size
    dump = str(tmp_path / 'preds.pkl')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        f"_base_ = [{TINY_ZS_CFG!r}]\n"
        f"model = dict(postprocess=[dict(type='PAMR', num_iter=2), dict(type='MaskVote', on_missing='skip', "
        f"mask_source=dict(type='MaskFileSource', mask_dir={str(masks)!r}))])\n"
        f"custom_hooks = [dict(type='SegPostProcessReportHook')]\n"
        f"test_evaluator = [dict(type='OVSegMetric', ignore_index=255), dict(type='DumpResults', "
        f"out_file_path={dump!r})]\n"
        f"default_hooks = dict(visualization=dict(draw=False))\n")
    test_tool.main([str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                    f'test_dataloader.dataset.data_root={data_root}', 'test_dataloader.dataset.num_images=3'])
    with open(dump, 'rb') as f:
        preds = {s['img_path']: np.asarray(s['pred_sem_seg']['data'])[0] for s in pickle.load(f)}
    assert len(preds) == 3
    voted = preds[paths[0]]
    for v in np.unique(ids)[1:]:  # every region but the smallest id has one label
        assert len(np.unique(voted[ids == v])) == 1
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    assert 'MaskVote (test): 3 image(s), 2 skipped' in log and 'PAMR (test): 3 image(s), 0 skipped' in log
    assert osp.basename(paths[1])[:-4] + '.npz' in log and osp.basename(paths[2])[:-4] + '.npz' in log
