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
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine import dist
from mmengine.logging import print_log
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
        max_nonfinite_steps: training steps with a NaN/Inf loss are skipped (no parameter update; the loss names
            and the batch's image paths are logged); the run stops with an error at the next one once this many
            were skipped (0: stop at the first).

    Counters kept across ranks (identical on every rank) and saved in the training checkpoint by
    ``DistillResumeHook``: ``skipped_images`` (1-based epoch -> sorted distinct unusable files of that epoch) and
    ``nonfinite_steps``.
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
                 with_cp: bool = False, text_encoder: Optional[dict] = None, max_nonfinite_steps: int = 10,
                 compile=False,  # noqa: A002
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
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.nonfinite_steps = 0
        self.nonfinite_reports: List[str] = []  # the messages of this run (also logged)
        self.skipped_images: Dict[int, List[str]] = {}
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
        ``loss_region_corr`` (when enabled); plus the logged ``skipped_images`` count of the current epoch.

        The content loss is the mean over the valid crops of the global batch: under DDP the crop count is summed
        over ranks (the official code averages per rank, which weights crops of ranks with few crops more).
        """
        boxes = inputs['boxes']
        crops = inputs['crops']
        out = self.student_forward(inputs['student'])
        dense = out['dense']
        if self.normalize_dense_before_roi:
            dense = F.normalize(dense, dim=1)
        rois, valid = boxes_to_rois(boxes, tuple(dense.shape[-2:]))
        f_s = roi_align_1x1(dense, rois)
        f_t = self.teacher_crop_embeddings(crops[valid])
        new_skipped = self._new_skipped_paths(data_samples)
        # one all-reduce per step: [valid crops, newly met unusable files] summed over ranks
        stats = torch.tensor([float(f_s.shape[0]), float(len(new_skipped))], device=dense.device)
        if dist.get_world_size() > 1:
            dist.all_reduce(stats, op='sum')
        avg_factor = stats[0] / dist.get_world_size()  # mean per rank: the DDP gradient average restores the sum
        losses = dict(loss_content=self.content_weight * content_loss(f_s, f_t, avg_factor=avg_factor))
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
        epoch = self._batch_epoch(data_samples)
        if stats[1] > 0:
            self._record_skipped(epoch, new_skipped)
        losses['skipped_images'] = dense.new_tensor(float(len(self.skipped_images.get(epoch, ()))))
        return losses

    # ------------------------------------------------------------------ bookkeeping of unusable images
    @staticmethod
    def _batch_epoch(data_samples) -> int:
        """1-based epoch of a batch (as printed by mmengine's log) from ``data_samples['epoch']``."""
        ep = data_samples.get('epoch', 0) if isinstance(data_samples, dict) else 0
        if isinstance(ep, torch.Tensor):
            ep = ep.flatten()[0] if ep.numel() else 0
        elif isinstance(ep, (list, tuple)):
            ep = ep[0] if ep else 0
        return int(ep) + 1

    def _new_skipped_paths(self, data_samples) -> List[str]:
        """Unusable files reported by this rank's batch and not yet recorded for its epoch."""
        if not isinstance(data_samples, dict) or 'skipped' not in data_samples:
            return []
        from declip_mm.datasets.distill_dataset import SKIP_SEP
        raw = data_samples['skipped']
        raw = [raw] if isinstance(raw, str) else list(raw)
        known = set(self.skipped_images.get(self._batch_epoch(data_samples), ()))
        new = []
        for entry in raw:
            for p in str(entry).split(SKIP_SEP):
                if p and p not in known:
                    known.add(p)
                    new.append(p)
        return new

    def _record_skipped(self, epoch: int, paths: List[str]) -> None:
        """Merge the new unusable files of all ranks into ``skipped_images[epoch]`` (collective under DDP)."""
        gathered = dist.all_gather_object(paths) if dist.get_world_size() > 1 else [paths]
        known = set(self.skipped_images.get(epoch, ()))
        new = sorted({p for ps in gathered for p in ps} - known)
        if new:
            self.skipped_images[epoch] = sorted(known | set(new))
            print_log(f'DeCLIPDistiller: epoch {epoch}: skipped {len(new)} unusable image(s) {new}; '
                      f'{len(self.skipped_images[epoch])} distinct in this epoch so far (all ranks)',
                      logger='current', level=30)

    # ------------------------------------------------------------------ training step with the non-finite check
    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        return self.distill_train_step(self, data, optim_wrapper)

    def distill_train_step(self, model, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """mmengine's train step (``model`` is this distiller or its DDP wrapper, whose forward syncs gradients),
        except that a step whose loss is NaN/Inf on any rank is skipped on every rank: no backward, no update."""
        with optim_wrapper.optim_context(model):
            data = self.data_preprocessor(data, True)
            losses = model._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        bad, log_vars = self._check_finite(log_vars, data.get('data_samples'))
        if not bad:
            optim_wrapper.update_params(parsed)
        return log_vars

    def _check_finite(self, log_vars: dict, data_samples) -> Tuple[bool, dict]:
        names = [k for k in log_vars if 'loss' in k and k != 'loss']
        vals = torch.stack([log_vars[k].detach().float().reshape(()) for k in names])
        local_bad = ~torch.isfinite(vals)
        flag = local_bad.float()
        if dist.get_world_size() > 1:
            dist.all_reduce(flag, op='sum')
        if not bool(flag.any()):
            return False, log_vars
        self.nonfinite_steps += 1
        paths = []
        if isinstance(data_samples, dict):
            paths = data_samples.get('img_path', [])
            paths = [paths] if isinstance(paths, str) else list(paths)
        mine = dict(losses={k: float(v) for k, v, b in zip(names, vals.tolist(), local_bad.tolist()) if b},
                    images=[str(p) for p in paths])
        reports = dist.all_gather_object(mine) if dist.get_world_size() > 1 else [mine]
        where = '; '.join(f"rank {r}: {rep['losses']} for images {rep['images']}"
                          for r, rep in enumerate(reports) if rep['losses'])
        msg = (f'DeCLIPDistiller: non-finite loss ({where}); step skipped without a parameter update '
               f'({self.nonfinite_steps} such step(s), max_nonfinite_steps={self.max_nonfinite_steps})')
        self.nonfinite_reports.append(msg)
        if self.nonfinite_steps > self.max_nonfinite_steps:
            raise RuntimeError(msg + '; stopping. Lower the learning rate, check these images, or raise '
                               'model.max_nonfinite_steps.')
        print_log(msg, logger='current', level=30)
        kept = {k: v for k, v in log_vars.items() if k != 'loss' and bool(torch.isfinite(v.detach()).all())}
        kept['nonfinite_steps'] = vals.new_tensor(float(self.nonfinite_steps))
        return True, kept

    # ------------------------------------------------------------------ state saved in the training checkpoint
    def counters_state(self) -> dict:
        return dict(skipped_images={str(k): list(v) for k, v in self.skipped_images.items()},
                    nonfinite_steps=int(self.nonfinite_steps))

    def load_counters_state(self, state: dict) -> None:
        self.skipped_images = {int(k): list(v) for k, v in state.get('skipped_images', {}).items()}
        self.nonfinite_steps = int(state.get('nonfinite_steps', 0))

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
