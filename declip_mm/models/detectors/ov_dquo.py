"""OV-DQUO (AAAI 2025): open-vocabulary DINO with denoising text queries and open-world wildcard supervision."""
import copy
import os.path as osp
import warnings
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.detectors import DINO
from mmdet.models.layers.transformer import MLP
from mmdet.registry import TASK_UTILS as DET_TASK_UTILS
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere

from ..layers import TextCdnQueryGenerator
from ..task_modules import OVCategorySampler, batch_true_labels, gt_with_pseudo_fields
from .ov_vocabulary import OVVocabularyMixin, prompt_recipe


def _float_output(module, inputs, output):
    """Forward hook: the module's output in float32 (see ``OVDQUO.deform_attn_fp32``)."""
    return output.float()


@contextmanager
def fp32_region(device_type: str):
    """Autocast off (float32) for the block: region pooling, matching, losses and scores under AMP."""
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def _f32(x: Tensor) -> Tensor:
    """At least float32: half / bfloat16 -> float32 (AMP); float32 / float64 unchanged (float64 parity runs)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _to_fp32(x):
    if isinstance(x, Tensor):
        return _f32(x) if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_fp32(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_fp32(v) for k, v in x.items()}
    return x


def single_text_vector(source, what: str) -> Tensor:
    """One (D,) float32 vector from a ``.pt`` file / dict holding exactly one tensor (any key) or a (D,) / (1, D)
    tensor; ``ValueError`` / ``FileNotFoundError`` naming the file otherwise."""
    from declip_mm.models.roi_heads.text_classifier import _local_embedding_file
    name = source if isinstance(source, str) else type(source).__name__
    if isinstance(source, str):
        path = _local_embedding_file(source)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what}: file not found: {source}')
        source = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(source, dict):
        vals = [v for v in source.values() if isinstance(v, (Tensor, np.ndarray))]
        if len(vals) != 1 or len(source) != 1:
            raise ValueError(f'{what}: {name} must hold exactly one vector, it has {len(source)} entries '
                             f'({list(source)[:5]})')
        source = vals[0]
    t = torch.as_tensor(np.asarray(source) if not isinstance(source, Tensor) else source).float()
    if t.dim() == 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 1 or not torch.isfinite(t).all() or t.norm() == 0:
        raise ValueError(f'{what}: {name} is not one finite non-zero vector (shape {tuple(t.shape)})')
    return t


@register_everywhere(DET_MODELS, MODELS)
class OVDQUO(OVVocabularyMixin, DINO):
    """OV-DQUO on mmdet's DINO with a frozen CLIP backbone.

    Pipeline: frozen CLIP (``DeCLIPViT``: taps + dense CLIP map; or ``CLIPResNet``: C3, C4 for the transformer,
    C4 / C5 for CLIP) -> ``neck`` (ViT: ``ViTPyramidNeck`` + ``ChannelMapper``; ResNet: ``ChannelMapper`` on C3, C4
    whose extra level is conv3x3 s2 of the raw C4) -> deformable encoder -> top-k proposals by one objectness
    logit -> **text queries**: each proposal is classified by CLIP (``region_embedder`` on the dense map or on C5,
    ``softmax(T_q * [cos, bg])``, novel classes
    boosted at test) and its class's projected text embedding (``text_proj``: MLP text_dim -> 128 -> embed_dims) is
    added to the learned content query; training proposals overlapping a pseudo box (IoU > ``wildcard_iou_thr``)
    take the wildcard class -> queries sorted by class -> DINO decoder with denoising text queries from the pseudo
    boxes (:class:`~declip_mm.models.layers.TextCdnQueryGenerator`) ->
    :class:`~declip_mm.models.dense_heads.OVDQUOHead`.

    At test the class score of a final box is CLIP alone times the objectness:
    ``softmax(T_s * [cos(f, t_1..t_K), bg])_c * sigmoid(objectness) ** objectness_power``, then per-class NMS.

    Vocabulary: ``class_names`` are the dataset's classes (K, label order) and ``text_embeddings`` their CLIP text
    embeddings plus the row ``wildcard`` (``'object'``) used for open-world pseudo boxes.  A training batch is
    classified over ``category_sampler``'s classes (OV-COCO: the base classes; OV-LVIS: 100 sampled per batch) plus
    the wildcard; the test vocabulary is all K classes.

    Ground truth per image (``gt_instances``): ``bboxes`` (pixel xyxy), ``labels`` (class index, -1 for pseudo
    boxes), optionally ``pseudo`` (bool) and ``pseudo_weights`` (foreground score; 1 for true boxes).  Without
    pseudo boxes the wildcard assignment is skipped and the denoising queries fall back to the batch's first box.

    Args:
        class_names: K class names (list, preset ``'ov_coco'`` / ``'lvis_v1'`` or names file).
        text_embeddings: ``.pt`` dict name -> vector (``tools/gen_text_embeddings.py``, with the wildcard name among
            the classes), ``.npy`` with names, a dict; None: random unit vectors (tests only, warns).
        novel_classes: names (or preset) of the novel classes: boosted in the query assignment at test, excluded
            from the ``'base'`` training pool.
        wildcard: name of the wildcard row (OV-DQUO: ``'object'``).
        wildcard_embeddings: where the wildcard row comes from when not from ``text_embeddings``: a ``.pt`` file
            holding one vector (a dict with a single entry, any key, as OV-DQUO's ``vitb16_object_embbed.pt``), a
            (D,) / (1, D) tensor; None: the row named ``wildcard`` of ``text_embeddings``.
        text_dim: text-embedding width (default: the backbone's ``embed_dim``).
        region_embedder: the CLIP region classifier: ``ViTRegionEmbedder`` (dense map) or ``ResNetRegionEmbedder``
            (CLIP ResNet: C5 approximate attention pool for proposals, C4 -> res5 -> attention pool for boxes).
        category_sampler: :class:`~declip_mm.models.task_modules.OVCategorySampler` config.
        query_temperature / query_bg_logit: ``T_q`` = 100 and the extra logit -1 of the query assignment.
        novel_boost: factor on novel-class probabilities in the test-time query assignment (OV-COCO 3, OV-LVIS 8).
        wildcard_iou_thr: IoU above which a training proposal takes the wildcard class (0.5).
        stable_sort: sort queries by class with a stable sort (OV-DQUO: False, so ties may order differently
            between devices).
        content_by_proposal: add the learned content row of the proposal's top-k rank (OV-DQUO: False, the row of
            its slot after sorting).
        score_temperature / score_bg_logit / objectness_power: ``T_s`` = 100, background logit 0, power 1.
        text_templates: the prompt recipe of the text embeddings (``'vild'``: 63 ViLD templates with the "This is"
            rule, what ``tools/gen_text_embeddings.py`` writes by default; ``'imagenet'``: the 80 ImageNet ones);
            used for vocabularies encoded at inference (``OVDetInferencer``).
        text_this_is / text_context_length: the rest of that recipe: ViLD's "This is" rule (``False``:
            ``gen_text_embeddings.py --no-this-is``) and the text tower's context length (None: the tower's own, 77;
            the ResNet configs: 15 as OV-DQUO's RN text, ``--context-length 15``).
        deform_attn_fp32: under AMP, run the deformable-attention sampling in float32 (its value projection
            returns float32; as OV-DQUO casts fp16 values to fp32).  mmcv's CUDA kernel has no bf16 version.

    Mixed precision (``AmpOptimWrapper``): the backbone, neck, encoder and decoder run in the autocast dtype; the
    CLIP region pooling, the text-query assignment, the encoder / decoder heads, matching, losses and test scores
    run in float32 (mmcv's RoIAlign and deformable-attention kernels have no bf16 version).
    Other args: as :class:`mmdet.models.DINO` (``bbox_head.num_classes`` = 1).
    """

    def __init__(self, *args, class_names: Union[str, Sequence[str]], text_embeddings=None,
                 novel_classes: Union[None, str, Sequence[str]] = None, wildcard: Optional[str] = 'object',
                 wildcard_embeddings=None,
                 text_dim: Optional[int] = None, text_proj_hidden: int = 128,
                 region_embedder: dict = dict(type='ViTRegionEmbedder'),
                 category_sampler: dict = dict(type='OVCategorySampler', num_sampled=None, pool='base'),
                 query_temperature: float = 100.0, query_bg_logit: float = -1.0, novel_boost: float = 1.0,
                 wildcard_iou_thr: float = 0.5, stable_sort: bool = False, content_by_proposal: bool = False,
                 score_temperature: float = 100.0, score_bg_logit: float = 0.0, objectness_power: float = 1.0,
                 text_templates: str = 'vild', text_this_is: bool = True, text_context_length: Optional[int] = None,
                 deform_attn_fp32: bool = True, dn_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        dn_cfg = dict(label_noise_scale=0.5, box_noise_scale=1.0,
                      group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100)) if dn_cfg is None \
            else copy.deepcopy(dict(dn_cfg))
        super().__init__(*args, dn_cfg=copy.deepcopy(dn_cfg), **kwargs)
        from declip_mm.datasets.ov_detection import resolve_class_names, resolve_novel_names
        if not wildcard:
            raise ValueError('OVDQUO needs a wildcard text row (wildcard="object") for the open-world pseudo boxes')
        self.class_names: List[str] = resolve_class_names(class_names)
        if not self.class_names:
            raise ValueError('OVDQUO: class_names is empty')
        novel = resolve_novel_names(novel_classes) or []
        unknown = sorted(set(novel) - set(self.class_names))
        if unknown:
            raise ValueError(f'OVDQUO: novel classes not among class_names: {unknown[:5]}')
        self.novel_classes = [c for c in self.class_names if c in set(novel)]
        self.novel_indices = [i for i, c in enumerate(self.class_names) if c in set(novel)]
        self.wildcard = wildcard
        if isinstance(category_sampler, dict):
            category_sampler = DET_TASK_UTILS.build(category_sampler)
        self.category_sampler: OVCategorySampler = category_sampler
        num_vocab = self.category_sampler.vocabulary_size(len(self.class_names), self.novel_indices)

        text_dim = text_dim or getattr(self.backbone, 'embed_dim', None)
        emb = self._load_text(text_embeddings, text_dim, wildcard_embeddings)
        text_dim = emb.shape[1]
        backbone_dim = getattr(self.backbone, 'embed_dim', None)
        if backbone_dim is not None and backbone_dim != text_dim:
            raise ValueError(f'OVDQUO: text embeddings have width {text_dim} but the backbone\'s CLIP embeddings '
                             f'{backbone_dim} (the text must come from the same CLIP as the backbone)')
        # not persistent: the vocabulary always comes from the config (or set_vocabulary), never a checkpoint
        self.register_buffer('text_embeddings', emb[:-1].contiguous(), persistent=False)  # (K, D)
        self.register_buffer('wildcard_embedding', emb[-1].contiguous(), persistent=False)  # (D,)
        self.text_proj = MLP(text_dim, text_proj_hidden, self.embed_dims, 2)
        self.region_embedder = MODELS.build(region_embedder) if isinstance(region_embedder, dict) \
            else region_embedder
        if hasattr(self.region_embedder, 'bind'):  # ResNetRegionEmbedder: uses the backbone's layer4 / attnpool
            self.region_embedder.bind(self.backbone)
        self.dn_query_generator = TextCdnQueryGenerator(num_classes=num_vocab + 1, embed_dims=self.embed_dims,
                                                        num_matching_queries=self.num_queries, **dn_cfg)
        self.query_temperature = float(query_temperature)
        self.query_bg_logit = float(query_bg_logit)
        self.novel_boost = float(novel_boost)
        self.wildcard_iou_thr = float(wildcard_iou_thr)
        self.stable_sort = stable_sort
        self.content_by_proposal = content_by_proposal
        self.score_temperature = float(score_temperature)
        self.score_bg_logit = float(score_bg_logit)
        self.objectness_power = float(objectness_power)
        prompt_recipe(text_templates)  # a known recipe
        self.text_templates = text_templates
        self.text_this_is = text_this_is
        self.text_context_length = text_context_length
        self.deform_attn_fp32 = deform_attn_fp32
        if deform_attn_fp32:
            from mmcv.ops import MultiScaleDeformableAttention
            for m in self.modules():
                if isinstance(m, MultiScaleDeformableAttention):
                    m.value_proj.register_forward_hook(_float_output)

    # ------------------------------------------------------------------ vocabulary
    def _load_text(self, source, text_dim: Optional[int], wildcard_source=None) -> Tensor:
        """(K + 1, D) L2-normalised rows: the K classes, then the wildcard."""
        from declip_mm.models.roi_heads.text_classifier import load_text_embeddings
        names = list(self.class_names)
        if source is None:
            if text_dim is None:
                raise ValueError('OVDQUO: text_embeddings=None needs text_dim (or a backbone with embed_dim)')
            warnings.warn('OVDQUO: no text embeddings given, using random unit vectors')
            g = torch.Generator().manual_seed(0)
            return F.normalize(torch.randn(len(names) + 1, text_dim, generator=g), dim=-1)
        if self.wildcard in names:
            raise ValueError(f'OVDQUO: the wildcard {self.wildcard!r} is also a class name')
        what = source if isinstance(source, str) else type(source).__name__
        if wildcard_source is not None:
            wild = single_text_vector(wildcard_source, f'OVDQUO wildcard_embeddings ({self.wildcard!r})')
            emb = load_text_embeddings(source, names, num_classes=len(names), dim=text_dim)[:-1]
            if wild.shape[0] != emb.shape[1]:
                raise ValueError(f'OVDQUO: the wildcard embedding has width {wild.shape[0]} but the class text '
                                 f'embeddings {emb.shape[1]} ({what})')
            return torch.cat([emb, F.normalize(wild, dim=0)[None]], 0)
        try:
            wild = load_text_embeddings(source, [self.wildcard])[0]
        except KeyError as e:
            if repr(self.wildcard) not in str(e):
                raise
            raise ValueError(
                f'{what}: no text embedding for the wildcard {self.wildcard!r}, which OV-DQUO gives to open-world '
                f'pseudo boxes; generate the file with the wildcard among the classes: '
                f'tools/gen_text_embeddings.py --classes ... --extra-classes {self.wildcard}') from None
        emb = load_text_embeddings(source, names, num_classes=len(names), dim=text_dim)[:-1]
        return torch.cat([emb, wild[None]], 0)

    # free-text vocabularies (OVVocabularyMixin; declip_mm.apis.OVDetInferencer)
    @classmethod
    def config_class_names(cls, model_cfg) -> List[str]:
        from declip_mm.datasets.ov_detection import resolve_class_names
        return resolve_class_names(model_cfg['class_names'])

    @classmethod
    def reserved_texts(cls, model_cfg) -> List[str]:
        return [model_cfg.get('wildcard', 'object')]

    @classmethod
    def without_text_files(cls, model_cfg) -> None:
        model_cfg['text_embeddings'] = None
        model_cfg.pop('wildcard_embeddings', None)

    def text_prompts(self):
        templates, formatter = prompt_recipe(self.text_templates)
        if not self.text_this_is:
            from declip_mm.models.text.templates import plain_formatter
            formatter = plain_formatter
        return templates, formatter, [self.wildcard]

    def set_vocabulary(self, class_names: Sequence[str], text_embeddings: Tensor,
                       base_classes: Optional[Sequence[str]] = None, extra_embeddings: Optional[dict] = None,
                       novel_classes: Optional[Sequence[str]] = None) -> None:
        """Replace the test vocabulary (free-text classes): (K, D) embeddings in ``class_names`` order.

        Novel classes (boosted in the test-time query assignment): ``novel_classes`` if given, else every class not
        in ``base_classes`` (None: all classes, so the boost changes nothing).  ``extra_embeddings[wildcard]``, if
        given, replaces the wildcard row (encoded with the same text tower and recipe)."""
        D = self.text_embeddings.shape[1]
        if text_embeddings.dim() != 2 or text_embeddings.shape[0] != len(class_names) \
                or text_embeddings.shape[1] != D:
            raise ValueError(f'set_vocabulary: expected ({len(class_names)}, {D}) embeddings, got '
                             f'{tuple(text_embeddings.shape)}')
        if self.wildcard in class_names:
            raise ValueError(f'set_vocabulary: {self.wildcard!r} is the wildcard of the open-world boxes, not a class')
        if novel_classes is None:
            base = set(base_classes or ())
            novel_classes = [c for c in class_names if c not in base]
        novel = set(novel_classes)
        self.class_names = list(class_names)
        self.text_embeddings = F.normalize(text_embeddings.float(), dim=-1).to(self.text_embeddings.device)
        self.novel_classes = [c for c in self.class_names if c in novel]
        self.novel_indices = [i for i, c in enumerate(self.class_names) if c in novel]
        wild = (extra_embeddings or {}).get(self.wildcard)
        if wild is not None:
            if wild.shape != (D, ):
                raise ValueError(f'set_vocabulary: the wildcard row must be ({D},), got {tuple(wild.shape)}')
            self.wildcard_embedding = F.normalize(wild.float(), dim=0).to(self.wildcard_embedding.device)

    def train_vocabulary(self, batch_data_samples: SampleList) -> Tuple[dict, SampleList]:
        """The batch's vocabulary (sampled classes + wildcard) and copies of the samples relabelled to it."""
        batch_gt = [gt_with_pseudo_fields(s.gt_instances) for s in batch_data_samples]
        K = len(self.class_names)
        for g in batch_gt:
            if len(g) and int(g.labels.max()) >= K:
                raise ValueError(f'ground-truth label {int(g.labels.max())} but the detector has {K} classes')
        classes = self.category_sampler.sample(batch_true_labels(batch_gt), K, self.novel_indices)
        samples = []
        for s, g in zip(batch_data_samples, batch_gt):
            new = DetDataSample(metainfo=s.metainfo)
            new.gt_instances = OVCategorySampler.relabel(g, classes)
            samples.append(new)
        text = torch.cat([self.text_embeddings[classes.to(self.text_embeddings.device)],
                          self.wildcard_embedding[None]], 0)
        return dict(classes=classes, text=text, wildcard_index=len(classes)), samples

    def test_vocabulary(self) -> dict:
        return dict(classes=None, text=self.text_embeddings, wildcard_index=None)

    # ------------------------------------------------------------------ features
    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tuple[Tensor], Dict[str, Tensor]]:
        """Pyramid maps for the transformer and the frozen CLIP outputs for the region embedder.

        ViT (``DeCLIPViT.extract``): the taps feed the neck, ``clip_feats['dense']`` is the L2-normalised dense map.
        CLIP ResNet (a backbone with ``attnpool``, outputs C3, C4, C5): C3, C4 feed the neck (its extra level is
        conv3x3 s2 of the raw C4, as the original's: C5 never enters the transformer), ``clip_feats['maps']`` =
        (C3, C4, C5) for the region embedder (C5: proposals, C4: final boxes).
        Other backbones: all outputs but the last feed the neck, the last one is the dense map."""
        if hasattr(self.backbone, 'extract'):
            out = self.backbone.extract(batch_inputs, outputs=('feats', 'dense'))
            feats, dense = list(out['feats']), out['dense']
        else:
            out = tuple(f.detach() for f in self.backbone(batch_inputs))
            feats, dense = list(out[:-1]), out[-1]
            if hasattr(self.backbone, 'attnpool'):
                x = self.neck(feats) if self.with_neck else tuple(feats)
                return tuple(x), dict(maps=out)
        feats = [f.detach() for f in feats]
        clip_feats = dict(dense=F.normalize(_f32(dense.detach()), dim=1))  # float32 also under AMP (RoIAlign)
        x = self.neck(feats) if self.with_neck else tuple(feats)
        return tuple(x), clip_feats

    def forward_transformer(self, img_feats: Tuple[Tensor], batch_data_samples: OptSampleList = None,
                            clip_feats: Optional[Dict[str, Tensor]] = None, vocab: Optional[dict] = None) -> Dict:
        encoder_inputs_dict, decoder_inputs_dict = self.pre_transformer(img_feats, batch_data_samples)
        encoder_outputs_dict = self.forward_encoder(**encoder_inputs_dict)
        tmp_dec_in, head_inputs_dict = self.pre_decoder(**encoder_outputs_dict, batch_data_samples=batch_data_samples,
                                                        clip_feats=clip_feats, vocab=vocab)
        decoder_inputs_dict.update(tmp_dec_in)
        decoder_outputs_dict = self.forward_decoder(**decoder_inputs_dict)
        head_inputs_dict.update(decoder_outputs_dict)
        return head_inputs_dict

    # ------------------------------------------------------------------ queries
    def assign_text_queries(self, proposals: Tensor, clip_feats: Dict[str, Tensor], vocab: dict,
                            batch_data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor]:
        """CLIP class of each proposal, then the class-sorted order.

        Args:
            proposals: (B, N, 4) normalised cxcywh (detached).
        Returns:
            ``(classes (B, N) sorted ascending, order (B, N) proposal index of each slot, logits (B, N, C))``;
            ``logits`` are the cosines before the temperature (for inspection).
        """
        img_shapes = [s.img_shape for s in batch_data_samples]
        batch_input_shape = batch_data_samples[0].batch_input_shape
        wildcard = vocab['wildcard_index']
        text = vocab['text'] if wildcard is None else vocab['text'][:wildcard]
        with torch.no_grad(), fp32_region(proposals.device.type):
            emb = _f32(self.region_embedder.proposal_embeddings(clip_feats, _f32(proposals), img_shapes,
                                                                batch_input_shape))
            cos = emb @ _f32(text).t()
            probs = torch.cat([cos, torch.full_like(cos[..., :1], self.query_bg_logit)], -1)
            probs = (probs * self.query_temperature).softmax(-1)
            if not self.training and self.novel_boost != 1.0 and self.novel_indices:
                probs[..., self.novel_indices] = probs[..., self.novel_indices] * self.novel_boost
            classes = probs[..., :-1].max(-1)[1]
            if self.training and wildcard is not None:
                hit = self.pseudo_overlap_mask(proposals, batch_data_samples)
                classes = torch.where(hit, torch.full_like(classes, wildcard), classes)
            classes, order = torch.sort(classes, dim=-1, stable=self.stable_sort)
        return classes, order, cos

    def pseudo_overlap_mask(self, proposals: Tensor, batch_data_samples: SampleList) -> Tensor:
        """(B, N) bool: the proposal's IoU with some pseudo box of its image exceeds ``wildcard_iou_thr``."""
        masks = []
        for prop, s in zip(proposals, batch_data_samples):
            gt = s.gt_instances
            pseudo = gt.bboxes[gt.pseudo]
            if len(pseudo) == 0:
                masks.append(torch.zeros(len(prop), dtype=torch.bool, device=prop.device))
                continue
            img_h, img_w = s.img_shape
            px = bbox_cxcywh_to_xyxy(prop) * prop.new_tensor([img_w, img_h, img_w, img_h])
            masks.append(bbox_overlaps(px, pseudo.to(px.dtype)).max(-1)[0] > self.wildcard_iou_thr)
        return torch.stack(masks)

    @staticmethod
    def dn_targets(batch_data_samples: SampleList) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per image ``(bboxes, labels, weights)`` of the denoising targets: the pseudo boxes; if the batch has none,
        the first box of the first image that has any (OV-DQUO's fallback)."""
        out = []
        for s in batch_data_samples:
            g = s.gt_instances
            out.append((g.bboxes[g.pseudo], g.labels[g.pseudo], g.pseudo_weights[g.pseudo]))
        if sum(len(t[0]) for t in out) == 0:
            for i, s in enumerate(batch_data_samples):
                g = s.gt_instances
                if len(g):
                    out[i] = (g.bboxes[:1], g.labels[:1], g.pseudo_weights[:1])
                    break
        return out

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor,
                    batch_data_samples: OptSampleList = None, clip_feats: Optional[Dict[str, Tensor]] = None,
                    vocab: Optional[dict] = None) -> Tuple[Dict]:
        """DINO's query selection with text-conditioned content (see the class docstring)."""
        bs = memory.shape[0]
        num_layers = self.decoder.num_layers
        if memory.shape[1] < self.num_queries:
            raise ValueError(f'OVDQUO: the input gives {memory.shape[1]} encoder tokens, fewer than num_queries='
                             f'{self.num_queries}; use larger inputs (or fewer queries)')
        output_memory, output_proposals = self.gen_encoder_output_proposals(memory, memory_mask, spatial_shapes)
        with fp32_region(memory.device.type):  # the top-k and the proposals in float32 under AMP
            output_memory, output_proposals = _f32(output_memory), _f32(output_proposals)
            enc_outputs_class = self.bbox_head.cls_branches[num_layers](output_memory)
            enc_outputs_coord_unact = self.bbox_head.reg_branches[num_layers](output_memory) + output_proposals
        topk_indices = torch.topk(enc_outputs_class.max(-1)[0], k=self.num_queries, dim=1)[1]
        topk_score = torch.gather(enc_outputs_class, 1, topk_indices.unsqueeze(-1).repeat(1, 1, 1))
        topk_coords_unact = torch.gather(enc_outputs_coord_unact, 1, topk_indices.unsqueeze(-1).repeat(1, 1, 4))
        topk_coords = topk_coords_unact.sigmoid()
        topk_coords_unact = topk_coords_unact.detach()

        query_classes, order, _ = self.assign_text_queries(topk_coords_unact.sigmoid(), clip_feats, vocab,
                                                           batch_data_samples)
        ref_unact = torch.gather(topk_coords_unact, 1, order.unsqueeze(-1).repeat(1, 1, 4))
        proj_text = self.text_proj(vocab['text'])  # (C (+ wildcard), embed_dims)
        content = self.query_embedding.weight[None].repeat(bs, 1, 1)
        if self.content_by_proposal:
            content = torch.gather(content, 1, order.unsqueeze(-1).repeat(1, 1, content.shape[-1]))
        query = content + proj_text[query_classes]
        if self.training:
            targets = self.dn_targets(batch_data_samples)
            dn_label_query, dn_bbox_query, dn_mask, dn_meta = self.dn_query_generator(
                [(b, lab) for b, lab, _ in targets], [s.img_shape for s in batch_data_samples], proj_text)
            dn_meta['target_weights'] = [w for _, _, w in targets]
            query = torch.cat([dn_label_query.to(query.dtype), query], dim=1)
            reference = torch.cat([dn_bbox_query.to(ref_unact.dtype), ref_unact], dim=1)
        else:
            reference, dn_mask, dn_meta = ref_unact, None, None
        decoder_inputs_dict = dict(query=query, memory=memory, reference_points=reference.sigmoid(), dn_mask=dn_mask)
        head_inputs_dict = dict(enc_outputs_class=topk_score, enc_outputs_coord=topk_coords, dn_meta=dn_meta,
                                query_classes=query_classes) if self.training else dict(query_classes=query_classes)
        return decoder_inputs_dict, head_inputs_dict

    # ------------------------------------------------------------------ modes
    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        img_feats, clip_feats = self.extract_feat(batch_inputs)
        vocab, samples = self.train_vocabulary(batch_data_samples)
        head_inputs_dict = self.forward_transformer(img_feats, samples, clip_feats, vocab)
        with fp32_region(batch_inputs.device.type):  # heads, matching and losses in float32 under AMP
            losses = self.bbox_head.loss(**_to_fp32(head_inputs_dict), batch_data_samples=samples,
                                         wildcard_index=vocab['wildcard_index'])
        if head_inputs_dict['dn_meta']['num_denoising_queries'] == 0:  # no box in the batch: keep the graph whole
            losses['dn_loss_cls'] = losses['dn_loss_cls'] + self.dn_query_generator.label_embedding.weight.sum() * 0
        return losses

    def class_scores(self, clip_feats: Dict[str, Tensor], boxes: Tensor, objectness: Tensor,
                     batch_data_samples: SampleList, text: Optional[Tensor] = None) -> Tensor:
        """(B, Q, K) test scores: ``softmax(T_s [cos, bg])[:K] * sigmoid(objectness) ** objectness_power``."""
        text = self.text_embeddings if text is None else text
        with fp32_region(boxes.device.type):
            emb = _f32(self.region_embedder.box_embeddings(clip_feats, _f32(boxes),
                                                           [s.img_shape for s in batch_data_samples],
                                                           batch_data_samples[0].batch_input_shape))
            cos = emb @ _f32(text).t()
            logits = torch.cat([cos, torch.full_like(cos[..., :1], self.score_bg_logit)], -1) * self.score_temperature
            return logits.softmax(-1)[..., :-1] * _f32(objectness).sigmoid() ** self.objectness_power

    def _final_outputs(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Tuple[Tensor, Tensor]:
        """Test-time class scores (B, Q, K) and boxes (B, Q, 4) of the last decoder layer (float32)."""
        img_feats, clip_feats = self.extract_feat(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats, batch_data_samples, clip_feats, self.test_vocabulary())
        with fp32_region(batch_inputs.device.type):
            cls, boxes = self.bbox_head(*_to_fp32((head_inputs_dict['hidden_states'],
                                                   head_inputs_dict['references'])))
        return self.class_scores(clip_feats, boxes[-1], cls[-1], batch_data_samples), boxes[-1]

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        scores, boxes = self._final_outputs(batch_inputs, batch_data_samples)
        with fp32_region(batch_inputs.device.type):
            results = self.bbox_head.predict_by_feat(scores, boxes, [s.metainfo for s in batch_data_samples],
                                                     rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor]:
        """Last-layer class scores (B, Q, K) and boxes (B, Q, 4) without post-processing."""
        return self._final_outputs(batch_inputs, batch_data_samples)
