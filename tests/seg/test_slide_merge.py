"""CAT-Seg sliding-window + global fusion against hand computations."""
import torch

from declip_mm.models.segmentors.catseg import catseg_slide_merge, catseg_window_offsets


def test_official_grid():
    assert catseg_window_offsets(640, 384, 256) == [0, 256]
    assert catseg_window_offsets(200, 120, 80) == [0, 80]


def test_constant_in_constant_out():
    w = torch.full((4, 3, 384, 384), 0.3)
    g = torch.full((3, 384, 384), 0.3)
    out = catseg_slide_merge(w, g, 640, 384, 256)
    assert out.shape == (3, 640, 640)
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)


def test_distinct_window_constants_average_over_overlaps():
    vals = torch.tensor([0.1, 0.2, 0.4, 0.8])  # windows (0,0), (0,256), (256,0), (256,256) in unfold order
    w = vals.view(4, 1, 1, 1).expand(4, 1, 384, 384).clone()
    mosaic = catseg_slide_merge(w, None, 640, 384, 256)[0]
    assert torch.isclose(mosaic[10, 10], vals[0])                     # only window 0
    assert torch.isclose(mosaic[10, 630], vals[1])                    # only window 1
    assert torch.isclose(mosaic[630, 10], vals[2])
    assert torch.isclose(mosaic[630, 630], vals[3])
    assert torch.isclose(mosaic[10, 300], (vals[0] + vals[1]) / 2)   # 2 overlaps
    assert torch.isclose(mosaic[300, 10], (vals[0] + vals[2]) / 2)
    assert torch.isclose(mosaic[300, 300], vals.mean())               # 4 overlaps
    # + global view at weight 1/2
    g = torch.full((1, 384, 384), 1.0)
    fused = catseg_slide_merge(w, g, 640, 384, 256)[0]
    assert torch.allclose(fused, (mosaic + 1.0) / 2, atol=1e-6)


def test_global_view_is_resized_to_out_size():
    w = torch.zeros(4, 1, 384, 384)
    g = torch.zeros(1, 384, 384)
    g[:, :, 192:] = 1.0  # right half
    out = catseg_slide_merge(w, g, 640, 384, 256)[0]
    assert out[:, :300].max() == 0 and torch.allclose(out[:, 340:], torch.full_like(out[:, 340:], 0.5))
