"""Loss values on hand-built tensors (method doc section 4 / equivalence tests 7-9)."""
import math

import pytest
import torch
import torch.nn.functional as F

from declip_mm.models.losses.declip_losses import (boxes_to_rois, content_loss, context_loss,
                                                   legacy_csa_context_loss, region_correlation_loss, roi_align_1x1,
                                                   similarity, student_similarity)


def _map(tokens, h, w):
    """(N, C) tokens in row-major order -> (1, C, h, w)."""
    t = torch.tensor(tokens, dtype=torch.float32)
    return t.t().reshape(1, t.shape[1], h, w)


def test_content_loss_known_cosines():
    fs = torch.tensor([[1., 0.], [0., 2.], [3., 0.]])
    ft = torch.tensor([[1., 1.], [0., 5.], [-1., 0.]])
    # cosines: 1/sqrt2, 1, -1 -> loss = 1 - (1/sqrt2 + 1 - 1) / 3
    assert content_loss(fs, ft).item() == pytest.approx(1 - (1 / math.sqrt(2)) / 3, abs=1e-6)
    assert content_loss(fs, fs * 7).item() == pytest.approx(0.0, abs=1e-6)
    assert content_loss(fs[:0], ft[:0]).item() == 0.0
    with pytest.raises(ValueError, match='same shape'):
        content_loss(fs, ft[:2])


def test_roi_align_constant_and_padded_full_box():
    feat = torch.full((1, 3, 4, 4), 2.5)
    rois = torch.tensor([[0, 0.3, 0.7, 3.1, 2.2]])
    assert torch.allclose(roi_align_1x1(feat, rois), torch.full((1, 3), 2.5))
    # a 2:1 landscape image letterboxed on a square canvas: its full box is the top half of the grid
    feat = torch.zeros(1, 1, 4, 4)
    feat[..., :2, :] = 1.0
    feat[..., 2:, :] = 9.0
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 0.5, 1.0], [0, 0, 0, 0, 0.0]]])
    rois, valid = boxes_to_rois(boxes, (4, 4))
    assert valid.tolist() == [[True, False]]
    assert rois.tolist() == [[0.0, 0.0, 0.0, 4.0, 2.0]]
    assert roi_align_1x1(feat, rois).item() == pytest.approx(1.0, abs=1e-6)


def test_similarity_properties():
    x = torch.randn(2, 8, 3, 5)
    s = similarity(x)
    assert s.shape == (2, 15, 15)
    assert torch.allclose(s, s.transpose(1, 2), atol=1e-6)
    assert torch.allclose(torch.diagonal(s, dim1=1, dim2=2), torch.ones(2, 15), atol=1e-5)
    assert s.abs().max() <= 1 + 1e-5


def test_context_loss_hand_case_2x3x3():
    # image 0: T = [[1,0,1],[0,1,0],[1,0,1]], S = [[1,1,0],[1,1,0],[0,0,1]] -> rows |.|: sqrt2, 1, 1
    vfm0 = _map([[1, 0], [0, 1], [2, 0]], 1, 3)
    ctx0 = _map([[1, 0], [3, 0], [0, 1]], 1, 3)
    # image 1: identical structures -> 0
    vfm1 = _map([[0, 1], [1, 0], [1, 0]], 1, 3)
    ctx1 = _map([[0, 2], [5, 0], [1, 0]], 1, 3)
    vfm, ctx = torch.cat([vfm0, vfm1]), torch.cat([ctx0, ctx1])
    expected = (math.sqrt(2) + 1 + 1) / 3 / 2
    assert context_loss(ctx, vfm).item() == pytest.approx(expected, abs=1e-6)
    assert context_loss((ctx, ), vfm).item() == pytest.approx(expected, abs=1e-6)
    assert context_loss(vfm, vfm).item() == pytest.approx(0.0, abs=1e-6)


def test_context_loss_resize_path():
    # a constant student map stays constant after bilinear resizing: S = all ones on the VFM grid
    ctx = torch.ones(1, 4, 3, 3)
    vfm = _map([[1, 0], [0, 1], [0, 1], [1, 0]], 2, 2)
    # T = [[1,0,0,1],[0,1,1,0],[0,1,1,0],[1,0,0,1]] ; T - 1 rows have two -1 entries -> norm sqrt2
    assert context_loss(ctx, vfm).item() == pytest.approx(math.sqrt(2), abs=1e-6)
    # general case equals the explicit bilinear reference
    torch.manual_seed(0)
    ctx = torch.randn(2, 8, 3, 3)
    vfm = torch.randn(2, 6, 5, 4)
    up = F.interpolate(ctx, size=(5, 4), mode='bilinear', align_corners=False)
    ref = (similarity(vfm) - similarity(up)).norm(dim=-1).mean()
    assert context_loss(ctx, vfm).item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(student_similarity(ctx, (5, 4)), similarity(up), atol=1e-6)


def test_context_loss_csa_mean_of_q_and_k():
    q = _map([[1, 0], [3, 0], [0, 1]], 1, 3)       # S_Q = [[1,1,0],[1,1,0],[0,0,1]]
    k = _map([[1, 1], [2, 2], [5, 5]], 1, 3)       # S_K = all ones
    vfm = _map([[1, 0], [0, 1], [2, 0]], 1, 3)     # T = [[1,0,1],[0,1,0],[1,0,1]]
    # S = [[1,1,.5],[1,1,.5],[.5,.5,1]] ; T - S rows: [0,-1,.5], [-1,0,-.5], [.5,-.5,0]
    expected = (2 * math.sqrt(1.25) + math.sqrt(0.5)) / 3
    assert context_loss((q, k), vfm).item() == pytest.approx(expected, abs=1e-6)
    # batch > 1 and head-concatenated features (the corrected form), compared with an explicit reference
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 64, 4, 4), torch.randn(3, 64, 4, 4), torch.randn(3, 64, 4, 4)
    t = torch.randn(3, 32, 4, 4)
    ref = (similarity(t) - (similarity(q) + similarity(k)) / 2).norm(dim=-1).mean()
    assert context_loss((q, k), t).item() == pytest.approx(ref.item(), abs=1e-5)
    ref_all = (similarity(t) - (similarity(q) + similarity(k) + similarity(v)) / 3).norm(dim=-1).mean()
    assert context_loss((q, k, v), t).item() == pytest.approx(ref_all.item(), abs=1e-5)
    # the official per-head layout differs and refuses batch > 1
    with pytest.raises(ValueError, match='batch size 1'):
        legacy_csa_context_loss((q, k), t, num_heads=4)
    legacy = legacy_csa_context_loss((q[:1], k[:1]), t[:1], num_heads=4)
    assert abs(legacy.item() - context_loss((q[:1], k[:1]), t[:1]).item()) > 1e-3


def test_context_loss_gradient_flows_to_student_only():
    ctx = torch.randn(2, 8, 3, 3, requires_grad=True)
    vfm = torch.randn(2, 6, 3, 3)
    context_loss(ctx, vfm).backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0


def test_kl_and_region_correlation_options():
    t = torch.randn(2, 6, 3, 3)
    assert context_loss(t, t, loss_type='kl').item() == pytest.approx(0.0, abs=1e-6)
    assert context_loss(torch.randn(2, 6, 3, 3), t, loss_type='kl').item() > 0
    with pytest.raises(ValueError, match='loss_type'):
        context_loss(t, t, loss_type='bad')
    f = torch.randn(5, 4)
    bidx = torch.tensor([0, 0, 0, 1, 1])
    assert region_correlation_loss(f, f, bidx).item() == pytest.approx(0.0, abs=1e-6)
    assert region_correlation_loss(f, torch.randn(5, 7), bidx).item() > 0


def test_legacy_csa_pinned_by_hand():
    """The official main-branch form: per-head normalised Q/K similarities, (heads, N, N) against the VFM target,
    mean over heads and rows. 2 heads of 2 channels, 1 x 2 tokens, VFM tokens identical (T = all ones):
    head 0: Q and K tokens parallel -> S = ones -> 0; head 1: Q tokens opposite (cos -1), K parallel (cos 1) ->
    S off-diagonal 0 -> rows of T - S have norm 1 -> legacy = (0 + 0 + 1 + 1) / 4 = 0.5.
    Corrected (head-concatenated): cos_Q = (1 - 9) / 10 = -0.8, cos_K = (1 + 4) / 5 = 1 -> S off-diagonal 0.1
    -> 0.9."""
    q = _map([[1, 0, 3, 0], [1, 0, -3, 0]], 1, 2)
    k = _map([[0, 1, 0, 2], [0, 1, 0, 2]], 1, 2)
    vfm = _map([[1, 0], [1, 0]], 1, 2)
    assert legacy_csa_context_loss((q, k), vfm, num_heads=2).item() == pytest.approx(0.5, abs=1e-6)
    assert context_loss((q, k), vfm).item() == pytest.approx(0.9, abs=1e-6)
    # one part (qq): head 0 cos 1 -> 0, head 1 cos -1 -> rows |[0, 2]| = 2 -> (0 + 0 + 2 + 2) / 4 = 1
    assert legacy_csa_context_loss((q, ), vfm, num_heads=2).item() == pytest.approx(1.0, abs=1e-6)


def test_content_loss_avg_factor():
    """sum_k (1 - cos_k) / avg_factor (the DDP global normaliser); the default avg_factor is K."""
    fs = torch.tensor([[1., 0.], [0., 2.], [3., 0.]])
    ft = torch.tensor([[1., 1.], [0., 5.], [-1., 0.]])
    total = (1 - 1 / math.sqrt(2)) + 0 + 2
    assert content_loss(fs, ft, avg_factor=5).item() == pytest.approx(total / 5, abs=1e-6)
    assert content_loss(fs, ft, avg_factor=torch.tensor(2.5)).item() == pytest.approx(total / 2.5, abs=1e-6)
    assert content_loss(fs, ft).item() == pytest.approx(total / 3, abs=1e-6)
    assert content_loss(fs[:0], ft[:0], avg_factor=4).item() == 0.0
