"""Training-free open-vocabulary segmentation from DeCLIP dense features (DeCLIP paper Table 5).

Follows the official evaluation code (ProxyCLIP-derived ``declip_segmentor.py``; ``docs/method.md`` section 7):

* text: every synonym of every class x the 80 OpenAI ImageNet templates (normalise, mean, renormalise);
* sliding window ``slide_crop`` / ``slide_stride`` (336 / 112) over the test-resized image (short side 448;
  Cityscapes 560); every crop is zero-padded symmetrically to a multiple of ``pad_multiple`` (the patch size);
* crop logits = L2-normalised dense features . text, bilinearly upsampled to the padded crop, padding cut, summed
  and divided by the overlap count; the map is upsampled to the original size;
* ``x logit_scale`` (40; VOC-21 80), softmax over all names, a multi-name class takes the max over its names,
  argmax; pixels whose max probability < ``prob_thd`` go to ``background_index`` (VOC-21 0.4, Context-60 0.15,
  COCO-Object 0.2, else 0).

**ProxyCLIP** (``proxy=dict(type='VFMProxyAttention', vfm=...)``): each crop's last-block attention is a VFM's
proxy attention (``proxy_attention.py``) applied to CLIP's last-block values resized to the VFM grid
(``DeCLIPViT.extract_attended``); the crop is classified at the VFM grid (e.g. 42 x 42 for DINO ViT-B/8 on a 336
crop) and the logits are upsampled to the padded crop.  ProxyCLIP's protocol pads crops to a multiple of 56
(``pad_multiple=56``); the CLIP input is the padded crop cut to a CLIP-patch multiple (what the original's
stride-p patch embedding does).  Works with any ``DeCLIPViT`` (OpenAI, MetaCLIP, DeCLIP EVA02).

**CorrCLIP v1** (``proxy=dict(type='CorrCLIPAttention', vfm=..., mask_source=...)``, ``corr_attention.py``): each
image's class-agnostic id map (original size, from ``mask_source``) is nearest-resized to the test image and cut
with every window (padding: ``MASK_PAD_VALUE``); per crop the VFM's q + k give the region-merged restricted
attention, and ``DeCLIPViT.extract_corr`` adds the mask class tokens and the spatial / semantic branches.  The id
map is left on the data sample as ``region_ids`` for the post-processing (``MaskVote(mask_source=None)``, CorrCLIP's
map correction) and removed afterwards.

Unlike the reference code (which overwrites its tensor in the post-processing loop), every image of a batch is
processed independently, so batch > 1 is correct.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.structures import SegDataSample

from declip_mm.models.task_modules import (build_seg_postprocessors, crop_mask_ids, resize_mask_ids,
                                           run_seg_postprocess)
from declip_mm.models.utils import text_encoder_from_backbone_file
from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere
from .catseg import _build

__all__ = ['DeCLIPZeroShotSegmentor', 'slide_grid', 'symmetric_pad']


def slide_grid(h: int, w: int, crop: int, stride: int):
    """mmseg / ProxyCLIP sliding-window boxes (y1, y2, x1, x2); the last window is shifted to end at the border."""
    hg = max(h - crop + stride - 1, 0) // stride + 1
    wg = max(w - crop + stride - 1, 0) // stride + 1
    boxes = []
    for i in range(hg):
        for j in range(wg):
            y1, x1 = i * stride, j * stride
            y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
            boxes.append((max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
    return boxes


def symmetric_pad(h: int, w: int, multiple: int):
    """(left, right, top, bottom) zero padding up to a multiple (left/top get the floor half)."""
    pw = (-w) % multiple
    ph = (-h) % multiple
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


@register_everywhere(MODELS, SEG_MODELS)
class DeCLIPZeroShotSegmentor(BaseSegmentor):
    """Training-free segmentor: DeCLIP (or vanilla CLIP) dense features x text embeddings.

    Args:
        backbone: ``DeCLIPViT`` config (DeCLIP: EVA02 ``dense_mode='csa'``; vanilla CLIP: ``dense_mode='vanilla'``).
        text_encoder: ``CLIPTextEncoder`` config of the same CLIP; its ``checkpoint`` defaults to the backbone's.
        class_names: name file (shipped ``cls_*`` or a path; one class a line, synonyms split by ``name_sep``) or a
            list whose items are a name or a list of synonyms.
        templates: prompt templates (default: the 80 OpenAI ImageNet templates).
        logit_scale / prob_thd / background_index: see module doc.
        slide_crop / slide_stride: window and stride (0 crop: whole image at once).
        pad_multiple: crop padding multiple (default: the backbone patch size).
        crops_per_forward: max crops per backbone call.
        postprocess: list of ``SegPostProcessor`` configs run per image at the original size, e.g.
            ``[dict(type='PAMR'), dict(type='MaskVote', mask_source=dict(type='MaskFileSource', mask_dir=...))]``
            (``declip_mm/models/task_modules``).
        proxy: ProxyCLIP's proxy attention (``VFMProxyAttention`` config) or CorrCLIP's restricted attention
            (``CorrCLIPAttention``); None: the backbone's own dense features (``dense_mode``).
    """

    def __init__(self,
                 backbone: dict,
                 text_encoder: dict,
                 class_names: Union[str, Sequence],
                 templates: Optional[Sequence[str]] = None,
                 name_sep: str = '; ',
                 logit_scale: float = 40.0,
                 prob_thd: float = 0.0,
                 background_index: int = 0,
                 slide_crop: int = 336,
                 slide_stride: int = 112,
                 pad_multiple: Optional[int] = None,
                 crops_per_forward: int = 16,
                 save_seg_logits: bool = False,
                 postprocess: Optional[Sequence[dict]] = None,
                 proxy: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from declip_mm.datasets.ov_segmentation import load_name_sets
        from declip_mm.models.text.templates import IMAGENET_TEMPLATES
        self.backbone = _build(backbone)
        self.proxy = _build(proxy) if proxy is not None else None
        self.text_encoder = _build(text_encoder_from_backbone_file(text_encoder, backbone))
        self.name_sets = load_name_sets(class_names, sep=name_sep)
        self.query_names = [n for names in self.name_sets for n in names]
        self.register_buffer('query_idx', torch.tensor(
            [c for c, names in enumerate(self.name_sets) for _ in names], dtype=torch.long), persistent=False)
        self.num_classes = len(self.name_sets)
        self.templates = list(templates) if templates is not None else list(IMAGENET_TEMPLATES)
        self.logit_scale = float(logit_scale)
        self.prob_thd = float(prob_thd)
        self.background_index = background_index
        self.slide_crop, self.slide_stride = slide_crop, slide_stride
        self.pad_multiple = pad_multiple or self.backbone.patch_size
        self.crops_per_forward = crops_per_forward
        self.save_seg_logits = save_seg_logits
        self.align_corners = False
        self.postprocess = build_seg_postprocessors(postprocess)

    synonym_rule = 'max'  # every synonym is a query; a class scores the max over its names

    def set_name_sets(self, name_sets: Sequence[Sequence[str]]) -> None:
        """Switch the vocabulary: one list of synonyms per class (embeddings are computed on the next use)."""
        self.name_sets = [list(s) for s in name_sets]
        self.query_names = [n for names in self.name_sets for n in names]
        self.query_idx = torch.tensor([c for c, names in enumerate(self.name_sets) for _ in names],
                                      dtype=torch.long, device=self.query_idx.device)
        self.num_classes = len(self.name_sets)

    # ------------------------------------------------------------------------------------------------ pieces
    def query_embeddings(self) -> torch.Tensor:
        """(Q, D) text embeddings of all names (cached by the text encoder until names/weights change)."""
        with torch.no_grad():
            return self.text_encoder.embed_classes(self.query_names, self.templates)

    @property
    def uses_regions(self) -> bool:
        return bool(getattr(self.proxy, 'uses_regions', False))

    def extract_feat(self, inputs: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, 3, H, W) padded crops -> (N, D, h, w) L2-normalised dense features: at the CLIP grid (H, W multiples
        of the patch size), or with ``proxy`` at the VFM grid.  ``ids`` (N, H, W): the crops' region ids
        (CorrCLIP)."""
        if self.proxy is None:
            return F.normalize(self.backbone.extract(inputs, outputs=('dense', ))['dense'], dim=1)
        p = self.backbone.patch_size
        clip_in = inputs[..., :inputs.shape[-2] // p * p, :inputs.shape[-1] // p * p]
        if self.uses_regions:
            from .corr_attention import region_masks
            attn, grid, merged = self.proxy(inputs, *self.pixel_stats(), ids)
            regions = region_masks(resize_mask_ids(merged, (clip_in.shape[-2] // p, clip_in.shape[-1] // p)))
            return F.normalize(self.backbone.extract_corr(
                clip_in, attn, grid, regions, self.proxy.spatial_blocks(self.backbone.num_blocks),
                self.proxy.alpha, self.proxy.beta), dim=1)
        attn, grid = self.proxy(inputs, *self.pixel_stats())
        return F.normalize(self.backbone.extract_attended(clip_in, attn, grid), dim=1)

    def pixel_stats(self):
        """(mean, std) (3,) the data preprocessor normalised the inputs with (None, None: raw pixels)."""
        dp = self.data_preprocessor
        if getattr(dp, '_enable_normalize', False):
            return dp.mean.flatten(), dp.std.flatten()
        return None, None

    def crop_logits(self, crops: torch.Tensor, text: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, 3, h, w) crops (and (N, h, w) region ids) -> (N, Q, h, w) cosine logits (padded to the patch
        multiple, upsampled, cut)."""
        h, w = crops.shape[-2:]
        l, r, t, b = symmetric_pad(h, w, self.pad_multiple)
        x = F.pad(crops, (l, r, t, b)) if (l or r or t or b) else crops
        if ids is not None:
            ids = crop_mask_ids(ids, (0, h, 0, w), (l, r, t, b))
        feats = self.extract_feat(x, ids)
        logits = torch.einsum('nchw,qc->nqhw', feats, text.to(feats.dtype))
        logits = F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return logits[:, :, t:t + h, l:l + w]

    def slide_logits(self, img: torch.Tensor, text: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(3, H, W) (and (H, W) region ids) -> (Q, H, W) overlap-averaged logits."""
        H, W = img.shape[-2:]
        if self.slide_crop <= 0:
            return self.crop_logits(img[None], text, None if ids is None else ids[None])[0]
        boxes = slide_grid(H, W, self.slide_crop, self.slide_stride)
        preds = img.new_zeros((text.shape[0], H, W))
        count = img.new_zeros((1, H, W))
        n = max(1, self.crops_per_forward)
        for i in range(0, len(boxes), n):
            chunk = boxes[i:i + n]
            crops = torch.stack([img[:, y1:y2, x1:x2] for (y1, y2, x1, x2) in chunk])
            crop_ids = None if ids is None else torch.stack([ids[y1:y2, x1:x2] for (y1, y2, x1, x2) in chunk])
            logits = self.crop_logits(crops, text, crop_ids)
            for (y1, y2, x1, x2), lg in zip(chunk, logits):
                preds[:, y1:y2, x1:x2] += lg
                count[:, y1:y2, x1:x2] += 1
        return preds / count

    def postprocess_probs(self, logits: torch.Tensor):
        """(Q, H, W) logits at the original size -> (label (1, H, W), class probabilities (K, H, W))."""
        probs = (logits * self.logit_scale).softmax(dim=0)
        if len(self.query_names) != self.num_classes:
            probs = torch.stack([probs[self.query_idx == c].max(dim=0)[0] for c in range(self.num_classes)])
        label = probs.argmax(dim=0, keepdim=True)
        if self.prob_thd > 0:
            label[probs.max(dim=0, keepdim=True)[0] < self.prob_thd] = self.background_index
        return label, probs

    # ------------------------------------------------------------------------------------------------ API
    def predict(self, inputs: torch.Tensor, data_samples: Optional[List[SegDataSample]] = None):
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[-2:], ori_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        text = self.query_embeddings()
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            h, w = meta.get('img_shape', inputs.shape[-2:])[:2]
            ori = tuple(meta.get('ori_shape', (h, w))[:2])
            ids = None
            if self.uses_regions:  # CorrCLIP: the image's id map at its original size, then at the test size
                region_ids = self.proxy.image_ids(ds, ori).to(inputs.device)
                ids = resize_mask_ids(region_ids, (h, w))
                ds.set_field(region_ids, 'region_ids')
            with torch.no_grad():
                logits = self.slide_logits(inputs[i, :, :h, :w], text, ids)
                logits = F.interpolate(logits[None], size=ori, mode='bilinear', align_corners=False)[0]
                label, probs = run_seg_postprocess(self.postprocess, logits, inputs[i, :, :h, :w], ds,
                                                   self.postprocess_probs)
            if ids is not None:
                del ds.region_ids
            ds.set_data(dict(pred_sem_seg=PixelData(data=label)))
            if self.save_seg_logits:
                ds.set_data(dict(seg_logits=PixelData(data=probs)))
        return data_samples

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas=None) -> torch.Tensor:
        text = self.query_embeddings()
        return torch.stack([self.slide_logits(img, text) for img in inputs])

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        return self.encode_decode(inputs)

    def loss(self, inputs, data_samples):
        raise NotImplementedError('DeCLIPZeroShotSegmentor is training-free: use tools/test.py')
