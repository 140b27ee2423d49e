"""Region features on dense maps: mmcv RoIAlign (1x1, aligned) and mask pooling."""
import torch

from declip_mm.models.utils import mask_pool, roi_pool


def test_roi_align_of_constant_map_returns_the_constant():
    dense = torch.full((2, 4, 10, 14), 3.0)
    rois = torch.tensor([[0, 0., 0., 224., 160.], [1, 16., 32., 80., 96.], [1, 5.5, 7.25, 9.0, 30.0]])
    out = roi_pool(dense, rois, spatial_scale=1 / 16)
    assert out.shape == (3, 4)
    assert torch.allclose(out, torch.full_like(out, 3.0))


def test_full_image_box_on_padded_canvas_covers_only_the_content():
    # a 10x14 grid whose left 7 columns are content (value 1) and right 7 are padding (value 0):
    # a box over the content region pools 1, the whole canvas pools 0.5.
    dense = torch.zeros(1, 1, 10, 14)
    dense[..., :7] = 1.0
    content = roi_pool(dense, torch.tensor([[0, 0., 0., 7 * 16., 10 * 16.]]), spatial_scale=1 / 16)
    canvas = roi_pool(dense, torch.tensor([[0, 0., 0., 14 * 16., 10 * 16.]]), spatial_scale=1 / 16)
    assert torch.allclose(content, torch.ones(1, 1), atol=1e-6)
    assert torch.allclose(canvas, torch.full((1, 1), 0.5), atol=1e-6)


def test_roi_pool_list_input_and_larger_output():
    dense = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    boxes = [torch.tensor([[0., 0., 8., 8.]]), torch.tensor([[0., 0., 4., 4.], [4., 4., 8., 8.]])]
    out = roi_pool(dense, boxes, spatial_scale=1.0, output_size=2)
    assert out.shape == (3, 3, 2, 2)
    # the second image's first box, 2x2 bins of 2x2 cells each, channel 0: means of the four quadrants
    ref = dense[1, 0, :4, :4].reshape(2, 2, 2, 2).mean(dim=(1, 3))
    assert torch.allclose(out[1, 0], ref, atol=1e-5)
    assert roi_pool(dense, torch.zeros(0, 5), 1.0).shape == (0, 3)


def test_mask_pool_is_the_mean_inside_the_mask():
    dense = torch.randn(2, 5, 6, 6)
    masks = torch.zeros(2, 2, 6, 6, dtype=torch.bool)
    masks[0, 0, :3, :3] = True
    masks[1, 1, 2:, 1:4] = True
    out = mask_pool(dense, masks)
    assert out.shape == (2, 2, 5)
    assert torch.allclose(out[0, 0], dense[0][:, :3, :3].mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(out[1, 1], dense[1][:, 2:, 1:4].mean(dim=(1, 2)), atol=1e-6)
    assert torch.equal(out[0, 1], torch.zeros(5))  # empty mask


def test_non_contiguous_maps_pool_like_contiguous_ones():
    # DeCLIPViT's dense map is a transposed view; mmcv's CPU RoIAlign misreads such strides unless made contiguous
    dense = torch.randn(2, 7, 5, 6).permute(0, 1, 3, 2)  # (2, 7, 6, 5), non-contiguous
    assert not dense.is_contiguous()
    rois = torch.tensor([[0, 1., 2., 60., 70.], [1, 20., 10., 50., 90.]])
    assert torch.allclose(roi_pool(dense, rois, 1 / 16), roi_pool(dense.contiguous(), rois, 1 / 16))
