"""Open-vocabulary detection inference: your images, your class names (mmdet ``DetInferencer`` based)."""
import copy
import os.path as osp
import warnings
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.apis import DetInferencer

from .base import (OVInferencerMixin, check_device, check_weights_present, drop_missing_init_files, dump_json,
                   load_fitting_checkpoint, palette_for)
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ['OVDetInferencer']

def detector_class(model_cfg):
    """The registered class of ``model_cfg['type']`` if it offers free-text vocabularies (``OVVocabularyMixin``:
    F-ViT, OV-DQUO), else ``ValueError``."""
    import declip_mm  # noqa: F401  (registers the models)
    from mmdet.registry import MODELS
    from declip_mm.models.detectors.ov_vocabulary import OVVocabularyMixin
    kind = model_cfg.get('type') if isinstance(model_cfg, dict) else None
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, OVVocabularyMixin)):
        raise ValueError('OVDetInferencer needs an open-vocabulary detector that classifies with text embeddings '
                         f'(F-ViT, OV-DQUO); got model.type {kind!r}')
    return cls


class OVDetInferencer(OVInferencerMixin, DetInferencer):
    """An open-vocabulary detector (F-ViT, OV-DQUO) with a free vocabulary, called like mmdet's ``DetInferencer``.

    Text embeddings are computed with the CLIP text tower of the backbone's CLIP and the detector's own prompt
    recipe (its ``text_prompts()``: 63 ViLD templates with the "This is" rule for both, synonyms averaged), plus
    the rows the detector needs besides the classes (F-ViT: ``background``; OV-DQUO: its wildcard ``object``),
    cached in memory and on disk (``cache_dir``, keyed by the text weights and the formatted prompts), and handed to
    the detector's ``set_vocabulary`` (:class:`~declip_mm.models.detectors.ov_vocabulary.OVVocabularyMixin`).
    Every class counts as novel unless named in ``base_texts`` (F-ViT: ensemble exponent ``beta`` vs ``alpha``;
    OV-DQUO: the novel boost of its query assignment, which changes nothing when every class is novel).

    Args:
        model: config path / Config of an open-vocabulary detector (F-ViT, OV-DQUO).
        weights: trained checkpoint (must fit the config; None: random weights, warns).
        device: e.g. ``'cpu'``, ``'cuda:0'`` (default: mmengine's choice); checked before anything is built.
        text_checkpoint: CLIP file holding the text tower (default: the backbone's checkpoint; DeCLIP backbone
            exports hold only the image tower, so pass the original CLIP file then).
        text_seed: seed of the random text tower when the config's backbone has no checkpoint (tiny configs).
        cache_dir: on-disk text-embedding cache ('' disables; default ``~/.cache/declip_mm/text_embeddings``).
        show_progress: progress bars over the images and over the text batches of a newly encoded vocabulary.

    Call: as ``DetInferencer.__call__`` (``batch_size``, ``return_vis``, ``show``, ``wait_time``, ``no_save_vis``,
    ``draw_pred``, ``pred_score_thr`` (drawing only), ``return_datasamples``, ``print_result``, ``no_save_pred``
    (default True), ``out_dir``) plus ``texts`` (see :func:`declip_mm.apis.parse_vocabulary`; None: the config's
    classes), ``base_texts``, ``progress`` and ``on_result`` (called with each image's dict as it finishes) ->
    ``dict(predictions=[{labels (int), label_names, scores, bboxes (x1, y1, x2, y2), input}], visualization=[RGB
    arrays when return_vis], classes=[...], skipped=[{input, error}])``; with ``return_datasamples`` the
    predictions are mmdet ``DetDataSample``s.  Files: ``out_dir/vis/<name><ext>`` and
    ``out_dir/preds/<name>.json`` (``name``: :func:`declip_mm.apis.base.output_names`), each written as its image
    finishes.
    """

    pred_subdir = 'preds'

    def __init__(self, model, weights: Optional[str] = None, device: Optional[str] = None,
                 text_checkpoint: Optional[str] = None, text_seed: int = 0, cache_dir: Optional[str] = None,
                 show_progress: bool = True, scope: str = 'mmdet', palette: str = 'none') -> None:
        import declip_mm  # noqa: F401  (registers the models)
        import declip_mm.visualization  # noqa: F401
        check_device(device)
        self._text_checkpoint = text_checkpoint
        self._text_seed = text_seed
        self._init_text_cache(cache_dir)
        self._vocab_key = None
        self.label_names = []
        super().__init__(model=model, weights=weights, device=device, scope=scope, palette=palette,
                         show_progress=show_progress)
        self.text_encoder.show_progress = show_progress

    # ----------------------------------------------------------------------------------------------- building
    @staticmethod
    def config_vocabulary(cfg) -> Vocabulary:
        """The config's classes (the detector's ``config_class_names``), no build."""
        names = detector_class(cfg.model).config_class_names(cfg.model)
        return Vocabulary([[n] for n in names])

    @classmethod
    def check_vocabulary(cls, cfg, texts=None, base_texts=None):
        """``(vocabulary, base names)`` for ``texts`` (None: the config's classes) and ``base_texts``, or
        ``ValueError`` / ``FileNotFoundError`` naming the problem; needs the config only (no model build)."""
        config_vocab = cls.config_vocabulary(cfg)  # also: is this a config of a text-classifying detector?
        vocab = parse_vocabulary(texts) if texts is not None else config_vocab
        reserved = {r.strip().lower(): r for r in detector_class(cfg.model).reserved_texts(cfg.model)}
        used = [reserved[s.strip().lower()] for syn in vocab.synonyms for s in syn if s.strip().lower() in reserved]
        if used:
            raise ValueError(f'"{used[0]}" is reserved for a row of the detector\'s own ({cfg.model.type}: '
                             f'{", ".join(reserved.values())}); remove it from texts')
        base = parse_vocabulary(base_texts).names if base_texts else []
        unknown = [b for b in base if b not in vocab.names]
        if unknown:
            where = 'the texts' if texts is not None else \
                'the config\'s classes (' + ', '.join(vocab.names[:8]) + (', ...' if len(vocab) > 8 else '') + \
                '; give texts too)'
            raise ValueError(f'base texts not in the vocabulary: {unknown}; they must be among {where}')
        return vocab, base

    def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu'):
        from mmdet.registry import MODELS
        model_cfg = copy.deepcopy(cfg.model)
        self._config_vocab = self.config_vocabulary(cfg)
        config_ckpt = model_cfg.backbone.get('checkpoint')
        drop_missing_init_files(model_cfg, weights)
        detector_class(model_cfg).without_text_files(model_cfg)  # computed with the text tower (set_vocabulary)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*no text embeddings given')
            model = MODELS.build(model_cfg)
        if weights is not None:
            load_fitting_checkpoint(model, weights, getattr(cfg, 'filename', None) or 'the config')
        else:
            warnings.warn('OVDetInferencer: no checkpoint given, the detector has random weights')
            check_weights_present(model)
            model.init_weights()  # as for training (DETR-style models leave some parameters empty until then)
        check_weights_present(model)  # a CLIP file named in the config is absent: fail now, not after encoding
        if str(device).startswith('cpu'):
            from mmengine.model import revert_sync_batchnorm
            model = revert_sync_batchnorm(model)
        model.cfg = cfg
        model.to(device).eval()
        self.text_encoder = self._build_text_encoder(model_cfg.backbone, config_ckpt,
                                                     model_cfg.get('text_context_length')).to(device).eval()
        check_weights_present(self.text_encoder)
        self.text_encoder.cache_dir = self.cache_dir
        return model

    def _build_text_encoder(self, backbone_cfg, config_ckpt, context_length=None):
        from declip_mm.models.text import DeCLIPTextEncoder
        ckpt = self._text_checkpoint or backbone_cfg.get('checkpoint')
        kwargs = dict(model_name=backbone_cfg.get('model_name', 'EVA02-B-16'),
                      model_overrides=backbone_cfg.get('model_overrides'), quick_gelu=backbone_cfg.get('quick_gelu'),
                      context_length=context_length)  # the detector's text recipe (OV-DQUO RN: 15)
        if ckpt:
            try:
                return DeCLIPTextEncoder(checkpoint=ckpt, **kwargs)
            except ValueError as e:
                raise ValueError(f'{e}; pass text_checkpoint= (tools/infer.py --text-checkpoint) the CLIP file of '
                                 'the backbone') from e
        if config_ckpt:
            raise ValueError('the detector has no text tower of its own and the backbone checkpoint named in the '
                             f'config ({config_ckpt}) is not here: pass text_checkpoint= (tools/infer.py '
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
        # name, so that a Runner built later in the same process gets its own visualizer, not ours.  mmdet's
        # DetLocalVisualizer becomes OVDetLocalVisualizer (draws names matplotlib's font has no glyphs for).
        if 'visualizer' in cfg:
            cfg = copy.deepcopy(cfg)
            if cfg.visualizer.get('type') in ('DetLocalVisualizer', 'mmdet.DetLocalVisualizer'):
                cfg.visualizer.type = 'OVDetLocalVisualizer'
            cfg.visualizer.name = f'ov_det_inferencer_{id(self)}'
            cfg.visualizer.vis_backends = None  # pictures are written to out_dir/vis directly
        return super(DetInferencer, self)._init_visualizer(cfg)

    # ----------------------------------------------------------------------------------------------- vocabulary
    def set_vocabulary(self, texts=None, base_texts=None) -> Vocabulary:
        """Compute (or fetch from the cache) the text embeddings of ``texts`` and install them in the detector.

        ``texts=None``: the config's class names.  ``base_texts``: names of ``texts`` that the detector saw in
        training; all other classes are novel (F-ViT: ensemble exponent ``beta`` instead of ``alpha``; OV-DQUO:
        boosted in the query assignment).
        """
        vocab, base = self.check_vocabulary(self.cfg, texts, base_texts) if texts is not None or base_texts else \
            (self._config_vocab, [])
        key = (vocab.key(), tuple(base))
        if key == self._vocab_key:
            return vocab
        templates, formatter, extra = self.model.text_prompts()
        flat = [s for syn in vocab.synonyms for s in syn] + list(extra)
        with torch.no_grad():
            emb = self.text_encoder.embed_classes(flat, templates, formatter).float()
        rows, i = [], 0
        for syn in vocab.synonyms:
            rows.append(F.normalize(emb[i:i + len(syn)].mean(dim=0), dim=-1))
            i += len(syn)
        extras = {name: emb[i + j] for j, name in enumerate(extra)}
        self.model.set_vocabulary(list(vocab.names), torch.stack(rows), base_classes=list(base),
                                  extra_embeddings=extras)
        meta = dict(classes=tuple(vocab.names), palette=palette_for(len(vocab)))
        self.model.dataset_meta = meta
        if self.visualizer is not None:
            self.visualizer.dataset_meta = meta
        self.vocabulary, self._vocab_key = vocab, key
        self.label_names = list(vocab.names)
        return vocab

    # ----------------------------------------------------------------------------------------------- call
    def __call__(self, inputs, batch_size: int = 1, return_vis: bool = False, show: bool = False,
                 wait_time: float = 0, no_save_vis: bool = False, draw_pred: bool = True,
                 pred_score_thr: float = 0.3, return_datasamples: bool = False, print_result: bool = False,
                 no_save_pred: bool = True, out_dir: str = '', texts: Union[None, str, Sequence] = None,
                 base_texts: Union[None, str, Sequence] = None, progress: Optional[bool] = None,
                 on_result: Optional[Callable[[dict], None]] = None) -> dict:
        """``inputs``: an image path, a folder, an array (BGR) or a list of them.  See the class docstring."""
        return self._run(inputs, texts, dict(base_texts=base_texts), batch_size=batch_size, out_dir=out_dir,
                         img_out_dir='vis', pred_out_dir=self.pred_subdir, return_vis=return_vis, show=show,
                         wait_time=wait_time, draw_pred=draw_pred, no_save_vis=no_save_vis,
                         no_save_pred=no_save_pred, return_datasamples=return_datasamples,
                         print_result=print_result, progress=progress, on_result=on_result,
                         vis_kwargs=dict(pred_score_thr=pred_score_thr))

    def pred2dict(self, data_sample, pred_out_dir: str = '') -> dict:
        """mmdet's dict (``labels`` int, ``scores``, ``bboxes``; every prediction, not thresholded) plus
        ``label_names``."""
        inst = data_sample.pred_instances
        labels = [int(i) for i in inst.labels.tolist()]
        return dict(labels=labels, scores=inst.scores.tolist(), bboxes=inst.bboxes.tolist(),
                    label_names=[self.label_names[i] for i in labels])

    def _save_pred(self, d: dict, pred, pred_dir: str, name: str, out_dir: str) -> None:
        dump_json(d, osp.join(pred_dir, name + '.json'))

    def forward(self, inputs, **kwargs):
        """``model.test_step``, boxes clipped to the original image: heads that keep their original's unclipped
        boxes (OV-DQUO's default ``clip_boxes=False``, for parity) can reach past the image edge; a box's centre is
        always inside, so clipping never empties a box."""
        preds = super().forward(inputs, **kwargs)
        for p in preds:
            h, w = p.metainfo['ori_shape'][:2]
            b = p.pred_instances.bboxes
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
        return preds

    def _draw(self, inp, pred, name, show=False, wait_time=0, draw_pred=True, out_file=None, pred_score_thr=0.3):
        if self.visualizer is None:
            raise ValueError('pictures need a "visualizer" in the config (mmdet default_runtime has one)')
        img = self._read_rgb(inp)
        self.visualizer.add_datasample(name, img, pred, draw_gt=False, draw_pred=draw_pred, show=show,
                                       wait_time=wait_time, pred_score_thr=pred_score_thr, out_file=out_file)
        return self.visualizer.get_image()
