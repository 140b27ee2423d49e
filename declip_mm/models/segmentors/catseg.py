"""CAT-Seg segmentor (CVPR-2024 design) with a DeCLIP / CLIP image encoder, for mmseg 1.x.

Training (``loss``): the CLIP input (B,3,384,384) -> ``DeCLIPViT.extract(('feats','dense'))`` -> ``CATSegHead`` ->
per-class sigmoid BCE with ignored pixels as all-zero targets (``catseg_bce_loss``).

Inference (``predict``, per image, batch-independent): the valid image region is resized to 640x640 (aspect ratio
not kept), cut into four 384 windows (stride 256) plus a global 384 view; every view is resized to the CLIP input
size, all views of the batch go through CLIP + head together; logits 96 -> 384, **sigmoid**, windows are folded and
divided by the overlap count, the global map is resized to 640; output ``(mosaic + global) / 2`` is resized to the
original size and arg-maxed.  VOC-21: prompt index >= 20 collapses to background.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.structures import SegDataSample

from declip_mm.models.utils import checked_options, text_encoder_from_backbone_file
from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere

__all__ = ['CATSeg', 'catseg_slide_merge', 'catseg_window_offsets']


def _build(cfg):
    """Build a child from the declip_mm registry first (our ``CLIPTextEncoder``, not mmseg's), then mmseg's."""
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    typ = cfg.get('type')
    # look up the declip_mm scope itself (``MODELS.build`` would switch to the default scope, mmseg, whose
    # ``CLIPTextEncoder`` is a different class)
    cls = MODELS.module_dict.get(typ) if isinstance(typ, str) else None
    if cls is not None:
        cfg.pop('type')
        return cls(**cfg)
    return SEG_MODELS.build(cfg)


def catseg_window_offsets(out_size: int, kernel: int, stride: int) -> List[int]:
    """Window offsets of ``nn.Unfold(kernel, stride)`` along one axis (CAT-Seg: 640/384/256 -> [0, 256])."""
    if kernel > out_size:
        raise ValueError(f'sliding kernel {kernel} exceeds the resized image {out_size}')
    n = (out_size - kernel) // stride + 1
    return [i * stride for i in range(n)]


def catseg_slide_merge(window_probs: torch.Tensor, global_prob: Optional[torch.Tensor], out_size: int, kernel: int,
                       stride: int) -> torch.Tensor:
    """Fold window probabilities, divide by the overlap count, add the global view: ``(mosaic + global) / 2``.

    Args:
        window_probs: (N, T, kernel, kernel) probabilities of the N = n*n windows in ``nn.Unfold`` order (row-major).
        global_prob: (T, g, g) probabilities of the global view (resized to ``out_size``) or None.
    Returns:
        (T, out_size, out_size).
    """
    N, T = window_probs.shape[:2]
    fold = nn.Fold(output_size=(out_size, out_size), kernel_size=kernel, stride=stride)
    mosaic = fold(window_probs.reshape(N, -1).t().unsqueeze(0))  # (1, T, out, out)
    count = fold(torch.ones(1, kernel * kernel, N, device=window_probs.device, dtype=window_probs.dtype))
    mosaic = (mosaic / count)[0]
    if global_prob is None:
        return mosaic
    g = F.interpolate(global_prob[None], size=(out_size, out_size), mode='bilinear', align_corners=False)[0]
    return (mosaic + g) / 2


@register_everywhere(MODELS, SEG_MODELS)
class CATSeg(BaseSegmentor):
    """CAT-Seg with CLIP/DeCLIP encoders.

    Args:
        backbone: ``DeCLIPViT`` config with ``out_indices`` = the two guidance taps (B: (3, 7); L: (7, 15)),
            ``out_types=('feats', 'dense')``; OpenAI: ``dense_mode='maskclip_cls'``, ``split_qkv=True``;
            DeCLIP EVA: ``dense_mode='csa'``, ``attn_scale='none'``, ``normalize_dense=True``.
        text_encoder: ``CLIPTextEncoder`` config of the same CLIP (trainable rule in its ``trainable``); its
            ``checkpoint`` defaults to the backbone's.
        decode_head: ``CATSegHead`` config.
        class_names: training class names (list or shipped list name, e.g. ``'catseg_coco171'``).
        test_class_names: evaluation class names (default: ``class_names``).  May be changed at any time; text
            embeddings are recomputed whenever the class list or the text weights change.
        template: the single prompt (``'A photo of a {} in the scene'``); only the first synonym of a name is used.
        clip_size: CLIP input size (384 for B/16, 336 for L/14-336).
        slide_cfg: ``dict(out_size=640, kernel=384, stride=256, global_view=True)``; None: whole image at clip_size.
        background_collapse: e.g. ``dict(num_foreground=20, background_first=True)`` for VOC-21.
        views_per_forward: max views per CLIP/head call at test (None: all views of the batch at once).
        ignore_index: loss ignore label (255).
        save_seg_logits: also store (T, H, W) probabilities in the results (memory heavy for 847 classes).

    Class attributes read by ``declip_mm.apis.OVSegInferencer``: ``synonym_rule = 'first'`` (one embedding per
    class, of its first name, as CAT-Seg was trained; further synonyms are dropped, with a warning there) and
    ``needs_trained_weights`` (random head weights without a checkpoint).
    """

    synonym_rule = 'first'
    needs_trained_weights = True

    def __init__(self,
                 backbone: dict,
                 text_encoder: dict,
                 decode_head: dict,
                 class_names: Union[str, Sequence[str]],
                 test_class_names: Union[None, str, Sequence[str]] = None,
                 template: Optional[str] = None,
                 clip_size: Union[int, Sequence[int]] = 384,
                 slide_cfg: Optional[dict] = dict(out_size=640, kernel=384, stride=256, global_view=True),
                 background_collapse: Optional[dict] = None,
                 views_per_forward: Optional[int] = None,
                 ignore_index: int = 255,
                 save_seg_logits: bool = False,
                 align_corners: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from declip_mm.datasets.ov_segmentation import load_class_names
        from declip_mm.models.text.templates import CATSEG_TEMPLATE
        self._load_names = load_class_names
        self.class_names = load_class_names(class_names)
        self.test_class_names = load_class_names(test_class_names) if test_class_names is not None \
            else list(self.class_names)
        taps = backbone.get('out_indices', ()) if isinstance(backbone, dict) else getattr(backbone, 'out_indices', ())
        if len(taps) != 2:
            raise ValueError(f'CATSeg needs a backbone with exactly two out_indices (guidance taps, e.g. (3, 7) for '
                             f'B/16, (7, 15) for L/14), got {tuple(taps)}')
        self.backbone = _build(backbone)
        self.text_encoder = _build(text_encoder_from_backbone_file(text_encoder, backbone))
        self.decode_head = _build(decode_head)
        self.template = template or CATSEG_TEMPLATE
        self.clip_size = (clip_size, clip_size) if isinstance(clip_size, int) else tuple(clip_size)
        self.slide_cfg = checked_options('CATSeg slide_cfg', slide_cfg, ('out_size', 'kernel', 'stride'),
                                         ('global_view', ))
        self.background_collapse = checked_options('CATSeg background_collapse', background_collapse,
                                                   ('num_foreground', ), ('background_first', ))
        self.views_per_forward = views_per_forward
        self.ignore_index = ignore_index
        self.save_seg_logits = save_seg_logits
        self.align_corners = align_corners

    # ------------------------------------------------------------------------------------------------ text
    def set_test_class_names(self, names) -> None:
        """Switch the evaluation vocabulary (text embeddings are recomputed on the next call)."""
        self.test_class_names = self._load_names(names)

    def text_embeddings(self, names: Sequence[str]) -> torch.Tensor:
        """(T, 1, D) L2-normalised embeddings of ``template.format(first synonym)``.

        Differentiable (recomputed every call) while training a trainable text tower; otherwise cached by the text
        encoder on (names, template, weight versions), so a new class list or any weight update recomputes.
        """
        from declip_mm.datasets.ov_segmentation import first_synonym
        names = [first_synonym(n) for n in names]
        return self.text_encoder.embed_classes(names, [self.template])[:, None, :]

    # ------------------------------------------------------------------------------------------------ network
    def extract_feat(self, inputs: torch.Tensor):
        """(B, 3, h*p, w*p) CLIP-normalised -> (dense (B, D, h, w), [tap1, tap2] (B, C, h, w))."""
        out = self.backbone.extract(inputs, outputs=('feats', 'dense'))
        return out['dense'], list(out['feats'])

    def _resize_to_clip(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.clip_size:
            x = F.interpolate(x, size=self.clip_size, mode='bilinear', align_corners=False)
        return x

    def encode_decode(self, inputs: torch.Tensor, batch_data_samples=None, class_names=None) -> torch.Tensor:
        """(B, 3, H, W) -> (B, T, 4h, 4w) logits for ``class_names`` (default: train names in training, else test)."""
        if class_names is None:
            class_names = self.class_names if self.training else self.test_class_names
        text = self.text_embeddings(class_names)
        dense, taps = self.extract_feat(self._resize_to_clip(inputs))
        return self.decode_head(dense, text, taps)

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        return self.encode_decode(inputs)

    # ------------------------------------------------------------------------------------------------ training
    def loss(self, inputs: torch.Tensor, data_samples: List[SegDataSample]) -> Dict[str, torch.Tensor]:
        from declip_mm.models.decode_heads.catseg_head import catseg_bce_loss
        logits = self.encode_decode(inputs, class_names=self.class_names)
        gt = torch.stack([ds.gt_sem_seg.data for ds in data_samples]).squeeze(1)
        return dict(loss_sem_seg=catseg_bce_loss(logits, gt, self.ignore_index))

    # ------------------------------------------------------------------------------------------------ inference
    def _views(self, img: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (V, 3, k, k): windows of the out_size square resize (unfold order) + global view."""
        sc = self.slide_cfg
        out, k, s = sc['out_size'], sc['kernel'], sc['stride']
        big = F.interpolate(img[None], size=(out, out), mode='bilinear', align_corners=False)[0]
        offs = catseg_window_offsets(out, k, s)
        views = [big[:, y:y + k, x:x + k] for y in offs for x in offs]
        if sc.get('global_view', True):
            views.append(F.interpolate(img[None], size=(k, k), mode='bilinear', align_corners=False)[0])
        return torch.stack(views)

    def _run_views(self, views: torch.Tensor, names) -> torch.Tensor:
        n = self.views_per_forward or views.shape[0]
        return torch.cat([self.encode_decode(views[i:i + n], class_names=names)
                          for i in range(0, views.shape[0], n)])

    def inference_probs(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> List[torch.Tensor]:
        """Per-image class probabilities (T, H_ori, W_ori) (sigmoid; sliding + global fusion when configured)."""
        names = self.test_class_names
        imgs = []
        for i, meta in enumerate(batch_img_metas):
            h, w = meta.get('img_shape', inputs.shape[-2:])[:2]
            imgs.append(inputs[i, :, :h, :w])
        results = []
        if self.slide_cfg:
            sc = self.slide_cfg
            views = [self._views(im) for im in imgs]
            nv = views[0].shape[0]
            logits = self._run_views(torch.cat(views), names)
            nwin = nv - (1 if sc.get('global_view', True) else 0)
            for b in range(len(imgs)):  # per image: the (V, T, 384, 384) maps are large for 847 classes
                pb = F.interpolate(logits[b * nv:(b + 1) * nv], size=(sc['kernel'], sc['kernel']), mode='bilinear',
                                   align_corners=False).sigmoid()
                glob = pb[nwin] if nwin < nv else None
                merged = catseg_slide_merge(pb[:nwin], glob, sc['out_size'], sc['kernel'], sc['stride'])
                results.append(merged)
        else:
            views = torch.stack([F.interpolate(im[None], size=self.clip_size, mode='bilinear',
                                               align_corners=False)[0] for im in imgs])
            results = list(self._run_views(views, names).sigmoid())
        out = []
        for b, meta in enumerate(batch_img_metas):
            ori = meta.get('ori_shape', imgs[b].shape[-2:])[:2]
            out.append(F.interpolate(results[b][None], size=tuple(ori), mode='bilinear',
                                     align_corners=False)[0])
        return out

    def _collapse(self, probs: torch.Tensor):
        """(T, H, W) -> (label map (1, H, W), probs with background merged or unchanged)."""
        pred = probs.argmax(dim=0, keepdim=True)
        bc = self.background_collapse
        if not bc:
            return pred, probs
        nf = bc['num_foreground']
        bg = probs[nf:].max(dim=0, keepdim=True)[0]
        if bc.get('background_first', True):
            label = torch.where(pred >= nf, torch.zeros_like(pred), pred + 1)
            merged = torch.cat([bg, probs[:nf]])
        else:
            label = torch.where(pred >= nf, torch.full_like(pred, nf), pred)
            merged = torch.cat([probs[:nf], bg])
        return label, merged

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List[SegDataSample]] = None):
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[-2:], ori_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        metas = [ds.metainfo for ds in data_samples]
        probs = self.inference_probs(inputs, metas)
        for ds, p in zip(data_samples, probs):
            label, merged = self._collapse(p)
            ds.set_data(dict(pred_sem_seg=PixelData(data=label)))
            if self.save_seg_logits:
                ds.set_data(dict(seg_logits=PixelData(data=merged)))
        return data_samples
