"""DeCLIP distiller: decoupled content / context distillation of a CLIP image tower (method doc sections 1-5).

* student: ``DeCLIPViT`` (trainable by the official rule, see ``trainable.py``);
* teacher: a frozen ``DeCLIPViT`` with the same architecture and weights as the student at start (its [CLS] of each
  crop is the content target; its weights are also the "initial weights" of the alpha ensemble);
* vfm: a frozen ``VFMTeacher`` whose token correlations are the context target.

``distill_mode`` covers the paper's Table 1 ablation:
``'decoupled'`` (DeCLIP: content from the decoupled dense map, context from Q/K/V), ``'self'`` (CLIPSelf: content
only), ``'self_vfm'`` (self-distillation + VFM correlations on the same undecoupled dense map).
"""
import contextlib
import copy
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from declip_mm.models.losses.declip_losses import (boxes_to_rois, content_loss, context_loss,
                                                   legacy_csa_context_loss, region_correlation_loss,
                                                   roi_align_1x1)
from declip_mm.models.compile import compile_module, resolve_compile_cfg
from declip_mm.registry import MODELS
from .trainable import DECOUPLED_MODES, apply_trainable, official_trainable_names

DISTILL_MODES = ('decoupled', 'self', 'self_vfm')


@MODELS.register_module()
class DeCLIPDistiller(BaseModel):
    """DeCLIP distillation model.

    Args:
        student: ``DeCLIPViT`` config (``model_name``, ``checkpoint``, ``dense_mode``, ``model_overrides`` ...) or
            an already built ``DeCLIPViT``.
        teacher: overrides merged into the student config for the frozen teacher (default: same config, frozen,
            ``vanilla`` mode). Its weights are always copied from the student after building (so it is the
            student's initial state, also used by the alpha ensemble).
        vfm: ``VFMTeacher`` config; ``None`` only allowed with ``context_weight == 0`` / ``distill_mode='self'``.
        distill_mode: ``'decoupled'`` | ``'self'`` | ``'self_vfm'`` (Table 1 ablation).
        content_weight / context_weight: loss weights (official 1.0 / 0.1, paper 1.0 / 0.25).
        context_loss_type: ``'l2'`` (default), ``'kl'`` (follow-up paper, unverified) or ``'legacy_csa'`` (the
            official main-branch per-head csa form; batch 1 only).
        kl_temperature: temperature of the KL forms.
        region_corr_weight: weight of the follow-up region-correlation constraint (0 = off).
        unlocked_blocks: ``'all'`` or the number of last blocks trained (Table 8).
        trainable: ``'official'`` (the rule of ``official_trainable_names``) or ``'backbone'`` (keep the backbone's
            own ``trainable``/``frozen_patterns`` result).
        normalize_dense_before_roi: L2-normalise the content map per token before RoIAlign; ``'auto'`` = only for
            the OpenAI family (inherited from CLIPSelf), as the official code.
        alpha: weight-space ensemble factor used at save/export time (``alpha * student + (1 - alpha) * initial``);
            ``>= 1`` disables it. Official: 0.7 for B, 0.95 for L.
        with_cp: activation checkpointing of the student blocks (``DeCLIPViT.with_cp``).
        text_encoder: ``DeCLIPTextEncoder`` kwargs for the region-classification evaluation (default: the student's
            model name, overrides and checkpoint); built lazily at the first ``predict``.
        compile: ``torch.compile`` the transformer blocks of the student, the CLIP teacher and the VFM
            (``False``; ``True`` or a dict of ``torch.compile`` kwargs, see ``declip_mm.models.compile``).

    Precision: the teachers run under ``torch.inference_mode()`` in whatever autocast dtype the optimizer wrapper
    sets (bf16 with ``AmpOptimWrapper(dtype='bfloat16')``); their outputs are cloned back to normal tensors for the
    losses, which (and whose N x N similarities) are computed in fp32.
    """

    def __init__(self, student: dict, teacher: Optional[dict] = None, vfm: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, distill_mode: str = 'decoupled',
                 content_weight: float = 1.0, context_weight: float = 0.1, context_loss_type: str = 'l2',
                 kl_temperature: float = 0.1, region_corr_weight: float = 0.0,
                 unlocked_blocks: Union[str, int] = 'all', trainable: str = 'official',
                 normalize_dense_before_roi: Union[str, bool] = 'auto', alpha: float = 2.0,
                 with_cp: bool = False, text_encoder: Optional[dict] = None, compile=False,  # noqa: A002
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='DeCLIPDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # build in the declip_mm scope whatever the default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if distill_mode not in DISTILL_MODES:
            raise ValueError(f'DeCLIPDistiller: distill_mode must be one of {DISTILL_MODES}, got {distill_mode!r}')
        if context_loss_type not in ('l2', 'kl', 'legacy_csa'):
            raise ValueError(f"DeCLIPDistiller: context_loss_type must be 'l2', 'kl' or 'legacy_csa', "
                             f'got {context_loss_type!r}')
        self.distill_mode = distill_mode
        self.content_weight = float(content_weight)
        self.context_weight = 0.0 if distill_mode == 'self' else float(context_weight)
        self.context_loss_type = context_loss_type
        self.kl_temperature = kl_temperature
        self.region_corr_weight = float(region_corr_weight)
        self.alpha = float(alpha)

        if isinstance(student, torch.nn.Module):  # an already built DeCLIPViT
            self.student = student
            student = dict(checkpoint=None)
        else:
            student = dict(student)
            student.setdefault('type', 'DeCLIPViT')
            student.setdefault('out_types', ('dense', ))
            self.student = MODELS.build(student)
        self.dense_mode = self.student.dense_mode
        if distill_mode == 'decoupled' and self.dense_mode not in DECOUPLED_MODES:
            raise ValueError(f'DeCLIPDistiller: distill_mode "decoupled" needs a decoupled dense_mode '
                             f'{DECOUPLED_MODES}, got {self.dense_mode!r}')
        if teacher:
            if 'type' not in student:
                raise ValueError('DeCLIPDistiller: a teacher config override needs a student config')
            tcfg = copy.deepcopy(student)
            tcfg.update(dict(dense_mode='vanilla', frozen=True, trainable=None, frozen_patterns=(),
                             checkpoint=None, out_types=('cls', )))
            tcfg.update(teacher)
            self.teacher = MODELS.build(tcfg)
            self.teacher.load_state_dict(self.student.state_dict(), strict=True)
        else:  # an exact frozen copy of the freshly built student (no second build / checkpoint read)
            self.teacher = copy.deepcopy(self.student)
            self.teacher.dense_mode = 'vanilla'
            self.teacher.out_types = ('cls', )
            self.teacher.frozen = True
        self.teacher.requires_grad_(False)
        self.teacher.eval()

        self.use_vfm = self.context_weight > 0 or self.region_corr_weight > 0
        if self.use_vfm:
            if vfm is None:
                raise ValueError('DeCLIPDistiller: a `vfm` teacher config is required when context_weight > 0 '
                                 'or region_corr_weight > 0')
            vfm = dict(vfm)
            vfm.setdefault('type', 'VFMTeacher')
            self.vfm = MODELS.build(vfm)
            self.vfm.requires_grad_(False)
            self.vfm.eval()
        else:
            self.vfm = None

        if trainable == 'official':
            names = official_trainable_names(self.student, self.dense_mode, unlocked_blocks)
            apply_trainable(self.student, names)
        elif trainable != 'backbone':
            raise ValueError(f"DeCLIPDistiller: trainable must be 'official' or 'backbone', got {trainable!r}")
        if normalize_dense_before_roi == 'auto':
            normalize_dense_before_roi = getattr(self.student, 'family', 'eva') == 'openai'
        self.normalize_dense_before_roi = bool(normalize_dense_before_roi)
        if with_cp:
            self.student.with_cp = True
        self.text_encoder_cfg = text_encoder
        self.clip_checkpoint = student.get('checkpoint')
        self.num_skipped_images = 0
        self.data_preprocessor.set_default_norm(
            self.student.mean, self.student.std,
            getattr(self.vfm, 'mean', None), getattr(self.vfm, 'std', None))
        compile_cfg = resolve_compile_cfg(compile)
        if compile_cfg is not None:
            for part in (self.student, self.teacher, self.vfm):
                if part is not None:
                    compile_module(part, compile_cfg)

    # ------------------------------------------------------------------ helpers
    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        if self.vfm is not None:
            self.vfm.eval()
        return self

    def student_outputs(self):
        if self.distill_mode == 'decoupled':
            return ('dense', 'context')
        return ('dense', )

    def student_forward(self, img: torch.Tensor) -> dict:
        """Student dense (content) map and context parts for a normalised (B, 3, H, W) image."""
        out = self.student.extract(img, outputs=self.student_outputs())
        if self.distill_mode == 'self_vfm':
            out['context'] = (out['dense'], )
        return out

    def teacher_crop_embeddings(self, crops: torch.Tensor) -> torch.Tensor:
        """(K, 3, S, S) normalised crops -> (K, D) teacher [CLS] embeddings, one batched call (inference mode)."""
        if crops.shape[0] == 0:
            return crops.new_zeros((0, self.teacher.embed_dim))
        with torch.inference_mode():
            f = self.teacher.encode_image(crops)
        return f.clone()  # inference tensors cannot be saved for the student's backward

    def vfm_features(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) normalised VFM view -> (B, Cv, h/p, w/p) VFM tokens (inference mode)."""
        with torch.inference_mode():
            f = self.vfm(img)
        return f.clone()

    # ------------------------------------------------------------------ mmengine API
    def forward(self, inputs: dict, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            img = inputs['student'] if isinstance(inputs, dict) else inputs
            return self.student_forward(img)
        raise RuntimeError(f'DeCLIPDistiller: invalid mode {mode!r}')

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """Named losses: ``loss_content`` (weighted), ``loss_context`` (weighted, when used) and
        ``loss_region_corr`` (when enabled); plus the logged ``skipped_images`` count."""
        boxes = inputs['boxes']
        crops = inputs['crops']
        out = self.student_forward(inputs['student'])
        dense = out['dense']
        if self.normalize_dense_before_roi:
            dense = F.normalize(dense, dim=1)
        rois, valid = boxes_to_rois(boxes, tuple(dense.shape[-2:]))
        f_s = roi_align_1x1(dense, rois)
        f_t = self.teacher_crop_embeddings(crops[valid])
        losses = dict(loss_content=self.content_weight * content_loss(f_s, f_t))
        if self.use_vfm:
            vfm_feat = self.vfm_features(inputs['vfm'])
            if self.context_weight > 0:
                if self.context_loss_type == 'legacy_csa':
                    lc = legacy_csa_context_loss(out['context'], vfm_feat, self.student.num_heads)
                else:
                    lc = context_loss(out['context'], vfm_feat, self.context_loss_type, self.kl_temperature)
                losses['loss_context'] = self.context_weight * lc
            if self.region_corr_weight > 0:
                vrois, _ = boxes_to_rois(boxes, tuple(vfm_feat.shape[-2:]))
                f_v = roi_align_1x1(vfm_feat, vrois)
                losses['loss_region_corr'] = self.region_corr_weight * region_correlation_loss(
                    f_s, f_v, rois[:, 0], self.kl_temperature)
        skipped = 0
        if isinstance(data_samples, dict) and 'num_skipped' in data_samples:
            ns = data_samples['num_skipped']
            skipped = int(ns.sum()) if isinstance(ns, torch.Tensor) else int(sum(ns))
        self.num_skipped_images += skipped
        losses['skipped_images'] = dense.new_tensor(float(self.num_skipped_images))
        return losses

    def predict(self, inputs: dict, data_samples=None):
        """Region-classification predictions (see ``RegionClsMetric``); needs ``set_class_embeddings``."""
        from .region_predict import region_predict
        return region_predict(self, inputs, data_samples)

    # ------------------------------------------------------------------ alpha ensemble
    def ensembled_student_state(self, alpha: Optional[float] = None) -> Dict[str, torch.Tensor]:
        """``alpha * student + (1 - alpha) * initial`` over the full student state dict (floating tensors); the
        initial weights are the frozen teacher's. ``alpha >= 1`` returns the raw student state."""
        from declip_mm.engine.ensemble import ensemble_state
        alpha = self.alpha if alpha is None else float(alpha)
        return ensemble_state(self.student.state_dict(), self.teacher.state_dict(), alpha)

    @contextlib.contextmanager
    def ensembled_student(self, alpha: Optional[float] = None):
        """Context manager: temporarily load the ensembled weights into the student (restored on exit)."""
        alpha = self.alpha if alpha is None else float(alpha)
        if alpha >= 1:
            yield self.student
            return
        raw = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
        self.student.load_state_dict(self.ensembled_student_state(alpha))
        try:
            yield self.student
        finally:
            self.student.load_state_dict(raw)
