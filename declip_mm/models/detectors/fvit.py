"""F-ViT: Faster / Mask R-CNN on a frozen (De)CLIP ViT with the F-VLM test-time ensemble (CLIPSelf, DeCLIP)."""
from contextlib import nullcontext
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import TwoStageDetector
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere
from .ov_vocabulary import OVVocabularyMixin, prompt_recipe

BACKGROUND = 'background'


def _text_box_head_cfg(model_cfg):
    """The config of the box head that classifies with text embeddings (``roi_head.bbox_head``)."""
    head = (model_cfg.get('roi_head') or {}).get('bbox_head') if isinstance(model_cfg, dict) else None
    if not isinstance(head, dict) or 'text_embeddings' not in head:
        raise ValueError('this F-ViT config has no text-embedding box head (model.roi_head.bbox_head.'
                         'text_embeddings)')
    return head


@register_everywhere(DET_MODELS, MODELS)
class FViT(OVVocabularyMixin, TwoStageDetector):
    """Two-stage detector on a frozen ViT.

    Pipeline: backbone taps (4 maps, stride p) -> ``neck`` (usually ``SequentialNeck[mmseg Feature2Pyramid, FPN]``)
    -> RPN -> RoI head.  At test time the backbone's dense CLIP map ``vlm_feat`` ((B, D, H/p, W/p), L2-normalised
    per location; DeCLIPViT output ``'dense'``, whose last-block mode is the backbone's ``dense_mode``) is passed to
    an :class:`FViTRoIHead`, which ensembles detector and CLIP scores on the RPN proposals.

    Args:
        freeze_backbone: run the backbone under ``no_grad`` in eval mode with ``requires_grad=False`` (F-ViT).
        use_vlm_feat: compute the dense CLIP map at test time and ensemble (False: detector scores only).

    Free-text vocabularies (:class:`~declip_mm.models.detectors.ov_vocabulary.OVVocabularyMixin`): the box head's
    text rows (63 ViLD templates, "This is" rule) plus a ``background`` row; classes not among ``base_classes``
    take the novel ensemble exponent ``beta``.
    Other args: as :class:`mmdet.models.TwoStageDetector`.
    """

    def __init__(self, backbone: dict, neck: dict, rpn_head: dict, roi_head: dict, train_cfg: dict,
                 test_cfg: dict, data_preprocessor: Optional[dict] = None, init_cfg=None,
                 freeze_backbone: bool = True, use_vlm_feat: bool = True) -> None:
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head, roi_head=roi_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.freeze_backbone = freeze_backbone
        self.use_vlm_feat = use_vlm_feat
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def init_weights(self):
        super().init_weights()
        if self.freeze_backbone:  # init_weights may (re)load the backbone; keep it frozen
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    @property
    def vlm_stride(self) -> float:
        return float(getattr(self.backbone, 'patch_size', 16))

    def backbone_forward(self, img: Tensor, with_dense: bool = False) -> Tuple[List[Tensor], Optional[Tensor]]:
        """Backbone taps (list of (B, C, H/p, W/p)) and, if ``with_dense``, the L2-normalised dense CLIP map."""
        ctx = torch.no_grad() if self.freeze_backbone else nullcontext()
        with ctx:
            if hasattr(self.backbone, 'extract'):
                out = self.backbone.extract(img, outputs=('feats', 'dense') if with_dense else ('feats',))
                feats, dense = list(out['feats']), out.get('dense') if with_dense else None
            else:
                feats, dense = list(self.backbone(img)), None
        if self.freeze_backbone:
            feats = [f.detach() for f in feats]
        if dense is not None:
            dense = F.normalize(dense.detach().float(), dim=1)
        return feats, dense

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        feats, _ = self.backbone_forward(batch_inputs, with_dense=False)
        return self.neck(feats) if self.with_neck else tuple(feats)

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        assert self.with_bbox, 'Bbox head must be implemented.'
        from declip_mm.models.roi_heads import FViTRoIHead
        with_vlm = self.use_vlm_feat and isinstance(self.roi_head, FViTRoIHead)
        feats, vlm_feat = self.backbone_forward(batch_inputs, with_dense=with_vlm)
        x = self.neck(feats) if self.with_neck else tuple(feats)
        if batch_data_samples[0].get('proposals', None) is None:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
        else:
            rpn_results_list = [s.proposals for s in batch_data_samples]
        if with_vlm:
            results_list = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale,
                                                 vlm_feat=vlm_feat, vlm_scale=1.0 / self.vlm_stride)
        else:
            results_list = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    # ------------------------------------------------------------------ vocabulary (OVDetInferencer)
    @classmethod
    def config_class_names(cls, model_cfg) -> List[str]:
        from declip_mm.datasets.ov_detection import resolve_class_names
        head = _text_box_head_cfg(model_cfg)
        return resolve_class_names(head.get('class_names')) or [f'class{i}' for i in range(head['num_classes'])]

    @classmethod
    def reserved_texts(cls, model_cfg) -> List[str]:
        return [BACKGROUND]

    @classmethod
    def without_text_files(cls, model_cfg) -> None:
        _text_box_head_cfg(model_cfg)['text_embeddings'] = None

    def text_prompts(self):
        templates, formatter = prompt_recipe('vild')
        return templates, formatter, [BACKGROUND]

    def set_vocabulary(self, class_names, text_embeddings: Tensor, base_classes=None, extra_embeddings=None) -> None:
        """Text rows + ``background`` into the box head's classifier; ensemble exponent ``alpha`` for
        ``base_classes`` and background, ``beta`` for all other classes."""
        head = self.roi_head.bbox_head
        if not extra_embeddings or BACKGROUND not in extra_embeddings:
            raise ValueError('F-ViT set_vocabulary needs the background row (extra_embeddings["background"])')
        base = set(base_classes or ())
        device = head.fc_cls.text_embeddings.device
        rows = torch.cat([text_embeddings.float(), extra_embeddings[BACKGROUND].float()[None]])
        head.fc_cls.text_embeddings = rows.to(device)
        head.fc_cls.class_names = list(class_names)
        head.num_classes = len(class_names)
        exps = torch.full((len(class_names) + 1, ), head.alpha)
        exps[[j for j, n in enumerate(class_names) if n not in base]] = head.beta
        head.ensemble_exponent = exps.to(device)
