"""Open-vocabulary detection inference with F-ViT: your images, your class names (mmdet ``DetInferencer`` based)."""
import copy
import os.path as osp
import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.apis import DetInferencer

from .base import OVInferencerMixin, drop_missing_init_files, load_fitting_checkpoint, palette_for
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ['OVDetInferencer']

BACKGROUND = 'background'


class OVDetInferencer(OVInferencerMixin, DetInferencer):
    """F-ViT with a free vocabulary.

    Text embeddings are computed with the CLIP text tower of the backbone's CLIP and F-ViT's recipe (63 ViLD
    templates, "This is" rule, synonyms averaged, plus a ``background`` row), cached in memory and on disk
    (``cache_dir``, keyed by the text weights and the formatted prompts), and written into the box head's
    classifier; the F-VLM ensemble treats every class as novel (exponent ``beta``) unless named in ``base_texts``
    (``alpha``).

    Args:
        model: config path / Config of an F-ViT model.
        weights: trained checkpoint (must fit the config; None: random weights, warns).
        device: e.g. ``'cpu'``, ``'cuda:0'`` (default: mmengine's choice).
        text_checkpoint: CLIP file holding the text tower (default: the backbone's checkpoint; DeCLIP backbone
            exports hold only the image tower, so pass the original CLIP file then).
        text_seed: seed of the random text tower when the config's backbone has no checkpoint (tiny configs).
        cache_dir: on-disk text-embedding cache ('' disables; default ``~/.cache/declip_mm/text_embeddings``).
        show_progress: progress bar over the images of a call.

    Call: ``inferencer(images, texts='cat, dog', base_texts=None, pred_score_thr=0.3, out_dir='', ...)`` ->
    ``dict(predictions=[{input, labels (names), label_ids, scores, bboxes (x1, y1, x2, y2) clipped to the image}],
    skipped=[...],
    classes=[...])`` (+ ``datasamples``, the mmdet ``DetDataSample``s, with ``return_datasamples=True``).
    """

    def __init__(self, model, weights: Optional[str] = None, device: Optional[str] = None,
                 text_checkpoint: Optional[str] = None, text_seed: int = 0, cache_dir: Optional[str] = None,
                 show_progress: bool = True, scope: str = 'mmdet') -> None:
        import declip_mm  # noqa: F401  (registers the models)
        self._text_checkpoint = text_checkpoint
        self._text_seed = text_seed
        self._init_text_cache(cache_dir)
        self._vocab_key = None
        super().__init__(model=model, weights=weights, device=device, scope=scope, palette='none',
                         show_progress=show_progress)

    # ----------------------------------------------------------------------------------------------- building
    def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu'):
        from mmdet.registry import MODELS
        model_cfg = copy.deepcopy(cfg.model)
        if model_cfg.get('type') != 'FViT':
            raise ValueError(f'OVDetInferencer needs an F-ViT config (model.type FViT), got {model_cfg.get("type")}')
        config_ckpt = model_cfg.backbone.get('checkpoint')
        drop_missing_init_files(model_cfg, weights)
        bbox_head = model_cfg.roi_head.bbox_head
        from declip_mm.datasets.ov_detection import resolve_class_names
        self._config_classes = resolve_class_names(bbox_head.get('class_names')) or \
            [f'class{i}' for i in range(bbox_head.num_classes)]
        bbox_head.text_embeddings = None  # computed from the vocabulary with the text tower (set_vocabulary)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='TextEmbeddingClassifier: no text embeddings given')
            model = MODELS.build(model_cfg)
        if weights is not None:
            load_fitting_checkpoint(model, weights, getattr(cfg, 'filename', None) or 'the config')
        else:
            warnings.warn('OVDetInferencer: no checkpoint given, the detector has random weights')
        if str(device).startswith('cpu'):
            from mmengine.model import revert_sync_batchnorm
            model = revert_sync_batchnorm(model)
        model.cfg = cfg
        model.to(device).eval()
        self.text_encoder = self._build_text_encoder(model_cfg.backbone, config_ckpt).to(device).eval()
        self.text_encoder.cache_dir = self.cache_dir
        return model

    def _build_text_encoder(self, backbone_cfg, config_ckpt):
        from declip_mm.models.text import DeCLIPTextEncoder
        ckpt = self._text_checkpoint or backbone_cfg.get('checkpoint')
        kwargs = dict(model_name=backbone_cfg.get('model_name', 'EVA02-B-16'),
                      model_overrides=backbone_cfg.get('model_overrides'), quick_gelu=backbone_cfg.get('quick_gelu'))
        if ckpt:
            try:
                return DeCLIPTextEncoder(checkpoint=ckpt, **kwargs)
            except ValueError as e:
                raise ValueError(f'{e}; pass text_checkpoint= (tools/infer.py --text-checkpoint) the CLIP file of '
                                 'the backbone') from e
        if config_ckpt:
            raise ValueError('F-ViT has no text tower of its own and the backbone checkpoint named in the config '
                             f'({config_ckpt}) is not here: pass text_checkpoint= (tools/infer.py '
                             '--text-checkpoint) the CLIP file the backbone comes from')
        warnings.warn('OVDetInferencer: the config has no CLIP checkpoint: random text tower '
                      f'(seed {self._text_seed}); labels are meaningless')
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._text_seed)
            return DeCLIPTextEncoder(**kwargs)

    def _init_pipeline(self, cfg):
        cfg = copy.deepcopy(cfg)
        pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.test_dataloader.dataset.pipeline = [t for t in pipeline if t['type'] != 'LoadAnnotations']
        return super()._init_pipeline(cfg)

    def _init_visualizer(self, cfg):
        # mmengine's (DetInferencer's reads model.dataset_meta, which set_vocabulary writes later); an own instance
        # name, so that a Runner built later in the same process gets its own visualizer, not ours
        if 'visualizer' in cfg:
            cfg.visualizer.name = f'ov_det_inferencer_{id(self)}'
            cfg.visualizer.vis_backends = None  # pictures are written to out_dir/vis directly
        return super(DetInferencer, self)._init_visualizer(cfg)

    # ----------------------------------------------------------------------------------------------- vocabulary
    def set_vocabulary(self, texts=None, base_texts=None) -> Vocabulary:
        """Compute (or fetch from the cache) the text embeddings of ``texts`` and install them in the box head.

        ``texts=None``: the config's class names.  ``base_texts``: names of ``texts`` that the detector saw in
        training (ensemble exponent ``alpha``); all other classes are novel (``beta``).
        """
        vocab = parse_vocabulary(texts) if texts is not None else Vocabulary([[n] for n in self._config_classes])
        if any(s.strip().lower() == BACKGROUND for syn in vocab.synonyms for s in syn):
            raise ValueError(f'"{BACKGROUND}" is reserved for F-ViT\'s background row; remove it from texts')
        base = parse_vocabulary(base_texts).names if base_texts else []
        unknown = [b for b in base if b not in vocab.names]
        if unknown:
            raise ValueError(f'base_texts not in the vocabulary: {unknown}')
        key = (tuple(map(tuple, vocab.synonyms)), tuple(base))
        if key == self._vocab_key:
            return vocab
        from declip_mm.models.text.templates import VILD_TEMPLATES, vild_formatter
        flat = [s for syn in vocab.synonyms for s in syn] + [BACKGROUND]
        with torch.no_grad():
            emb = self.text_encoder.embed_classes(flat, VILD_TEMPLATES, vild_formatter).float()
        rows, i = [], 0
        for syn in vocab.synonyms:
            rows.append(F.normalize(emb[i:i + len(syn)].mean(dim=0), dim=-1))
            i += len(syn)
        rows.append(emb[-1])
        head = self.model.roi_head.bbox_head
        device = head.fc_cls.text_embeddings.device
        head.fc_cls.text_embeddings = torch.stack(rows).to(device)
        head.fc_cls.class_names = list(vocab.names)
        head.num_classes = len(vocab)
        exps = torch.full((len(vocab) + 1, ), head.alpha)
        exps[[j for j, n in enumerate(vocab.names) if n not in base]] = head.beta
        head.ensemble_exponent = exps.to(device)
        meta = dict(classes=tuple(vocab.names), palette=palette_for(len(vocab)))
        self.model.dataset_meta = meta
        if self.visualizer is not None:
            self.visualizer.dataset_meta = meta
        self.vocabulary, self._vocab_key = vocab, key
        return vocab

    # ----------------------------------------------------------------------------------------------- call
    def __call__(self, inputs, texts: Union[None, str, Sequence] = None, base_texts=None, batch_size: int = 1,
                 pred_score_thr: float = 0.3, out_dir: str = '', show: bool = False, wait_time: float = 0,
                 return_datasamples: bool = False, progress: Optional[bool] = None) -> dict:
        """``inputs``: an image path, a folder, an array (BGR) or a list of them; ``texts``: see
        :func:`declip_mm.apis.parse_vocabulary` (None: the config's classes).  Pictures go to ``out_dir/vis``."""
        def to_dict(pred):
            names = self.vocabulary.names
            inst = pred.pred_instances
            keep = inst.scores >= pred_score_thr
            labels = inst.labels[keep].tolist()
            return dict(labels=[names[i] for i in labels], label_ids=labels, scores=inst.scores[keep].tolist(),
                        bboxes=inst.bboxes[keep].tolist())

        return self._run(inputs, texts, batch_size, out_dir, show, wait_time, return_datasamples, progress,
                         dict(pred_score_thr=pred_score_thr), to_dict, base_texts=base_texts)

    def forward(self, inputs, **kwargs):
        """``model.test_step``, boxes clipped to the original image (test pipelines that ``Pad`` let boxes reach
        into the padding)."""
        preds = super().forward(inputs, **kwargs)
        for p in preds:
            h, w = p.metainfo['ori_shape'][:2]
            b = p.pred_instances.bboxes
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
        return preds

    def _draw(self, inp, pred, name, show, wait_time, vis_dir, pred_score_thr=0.3):
        if self.visualizer is None:
            raise ValueError('pictures need a "visualizer" in the config (mmdet default_runtime has one)')
        img = self._read_rgb(inp)
        self.visualizer.add_datasample(name, img, pred, draw_gt=False, show=show, wait_time=wait_time,
                                       pred_score_thr=pred_score_thr,
                                       out_file=osp.join(vis_dir, name) if vis_dir else None)
