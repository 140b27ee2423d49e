"""Open-vocabulary segmentation inference (CAT-Seg, training-free DeCLIP) on mmseg's ``MMSegInferencer``."""
import copy
import os.path as osp
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmseg.apis import MMSegInferencer

from .base import OVInferencerMixin, drop_missing_init_files, load_fitting_checkpoint, palette_for
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ['OVSegInferencer']

SEG_TYPES = ('CATSeg', 'DeCLIPZeroShotSegmentor')


class OVSegInferencer(OVInferencerMixin, MMSegInferencer):
    """CAT-Seg or the training-free segmentor with a free vocabulary.

    Text embeddings come from the model's own text tower with its own prompt recipe (CAT-Seg: "A photo of a {} in
    the scene", first synonym; training-free: the config's templates, every synonym, max over a class's names),
    cached in memory and on disk (``cache_dir``).  A user vocabulary turns off the config's benchmark-specific
    background rules (VOC-21 background collapse; the training-free ``prob_thd``, unless ``prob_thd`` is given).

    Args:
        model: config path / Config (``model.type`` CATSeg or DeCLIPZeroShotSegmentor).
        weights: trained checkpoint (CAT-Seg; must fit the config); None for the training-free segmentor.
        device, cache_dir, show_progress: as :class:`OVDetInferencer`.
        prob_thd: training-free only: pixels whose best class probability is below it get label 255 (unlabelled).

    Call: ``inferencer(images, texts='sky, road', out_dir='')`` -> ``dict(predictions=[{input, sem_seg ((H, W)
    int64 label map indexing classes; 255 unlabelled), classes, present ({name: pixel fraction})}], skipped=[...],
    classes=[...])`` (+ ``datasamples``, the mmseg ``SegDataSample``s, with ``return_datasamples=True``).
    """

    def __init__(self, model, weights: Optional[str] = None, device: Optional[str] = None,
                 cache_dir: Optional[str] = None, prob_thd: Optional[float] = None, show_progress: bool = True,
                 scope: str = 'mmseg') -> None:
        import declip_mm  # noqa: F401  (registers the models)
        import declip_mm.visualization  # noqa: F401
        self._init_text_cache(cache_dir)
        self._prob_thd = prob_thd
        self._vocab_key = None
        super().__init__(model=model, weights=weights, device=device, scope=scope)
        self.show_progress = show_progress

    # ----------------------------------------------------------------------------------------------- building
    def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu'):
        from mmseg.registry import MODELS
        model_cfg = copy.deepcopy(cfg.model)
        if model_cfg.get('type') not in SEG_TYPES:
            raise ValueError(f'OVSegInferencer needs a model of type {SEG_TYPES}, got {model_cfg.get("type")}')
        drop_missing_init_files(model_cfg, weights)
        model = MODELS.build(model_cfg)
        if weights is not None:
            load_fitting_checkpoint(model, weights, getattr(cfg, 'filename', None) or 'the config')
        elif model_cfg.type == 'CATSeg':
            warnings.warn('OVSegInferencer: no checkpoint given, CAT-Seg has random head weights')
        model.cfg = cfg
        model.to(device).eval()
        model.text_encoder.cache_dir = self.cache_dir
        if model_cfg.type == 'CATSeg':
            self._config_vocab = Vocabulary([[n] for n in model.test_class_names])
        else:
            self._config_vocab = Vocabulary([list(s) for s in model.name_sets])
            self._config_bg = (model.prob_thd, model.background_index)
        return model

    def _load_weights_to_model(self, model, checkpoint, cfg):  # done in _init_model (with the fit check)
        pass

    def _init_pipeline(self, cfg):
        cfg = copy.deepcopy(cfg)
        if 'test_dataloader' not in cfg:
            raise ValueError('the config has no test_dataloader (its test pipeline is used for inference)')
        pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.test_dataloader.dataset.pipeline = [t for t in pipeline if 'Annotation' not in t['type']]
        return super()._init_pipeline(cfg)

    def _init_visualizer(self, cfg):
        cfg = copy.deepcopy(cfg)
        if 'visualizer' not in cfg:
            cfg.visualizer = dict(type='OVSegLocalVisualizer', alpha=0.5)
        elif cfg.visualizer.get('type') in ('SegLocalVisualizer', 'mmseg.SegLocalVisualizer'):
            cfg.visualizer.type = 'OVSegLocalVisualizer'
        cfg.visualizer.name = f'ov_seg_inferencer_{id(self)}'  # never the name a later Runner would reuse
        cfg.visualizer.vis_backends = None  # pictures are written to out_dir/vis directly
        return super()._init_visualizer(cfg)

    # ----------------------------------------------------------------------------------------------- vocabulary
    @property
    def kind(self) -> str:
        return 'catseg' if type(self.model).__name__ == 'CATSeg' else 'zeroshot'

    def set_vocabulary(self, texts=None) -> Vocabulary:
        """Switch the model to ``texts`` (None: the config's classes) and compute / fetch its text embeddings."""
        custom = texts is not None
        vocab = parse_vocabulary(texts) if custom else self._config_vocab
        key = (tuple(map(tuple, vocab.synonyms)), custom)
        if key == self._vocab_key:
            return vocab
        m = self.model
        with torch.no_grad():
            if self.kind == 'catseg':
                m.set_test_class_names(list(vocab.names))
                if custom:
                    m.background_collapse = None
                m.text_embeddings(m.test_class_names)  # computed (or read from the cache) now
            else:
                m.name_sets = [list(s) for s in vocab.synonyms]
                m.query_names = [n for s in m.name_sets for n in s]
                m.query_idx = torch.tensor([c for c, s in enumerate(m.name_sets) for _ in s],
                                           dtype=torch.long, device=m.query_idx.device)
                m.num_classes = len(m.name_sets)
                if custom:
                    m.prob_thd, m.background_index = (self._prob_thd or 0.0), 255
                else:
                    m.prob_thd, m.background_index = self._config_bg
                    if self._prob_thd is not None:
                        m.prob_thd = self._prob_thd
                m.query_embeddings()
        names = list(vocab.names)
        if self.kind == 'catseg' and m.background_collapse:  # VOC-21 config: labels are background + 20
            names = ['background'] + names[:m.background_collapse['num_foreground']]
        self.label_names = names
        self.model.dataset_meta = dict(classes=tuple(names), palette=palette_for(len(names)))
        if self.visualizer is not None:
            self.visualizer.dataset_meta = dict(self.model.dataset_meta)
        self.vocabulary, self._vocab_key = vocab, key
        return vocab

    # ----------------------------------------------------------------------------------------------- call
    def __call__(self, inputs, texts: Union[None, str, Sequence] = None, batch_size: int = 1, out_dir: str = '',
                 show: bool = False, wait_time: float = 0, return_datasamples: bool = False,
                 progress: Optional[bool] = None, opacity: float = 0.5) -> dict:
        """``inputs``: an image path, a folder, an array (BGR) or a list of them; ``texts``: see
        :func:`declip_mm.apis.parse_vocabulary` (None: the config's classes).  Pictures go to ``out_dir/vis``."""
        def to_dict(pred):
            seg = pred.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
            ids, counts = np.unique(seg, return_counts=True)
            present = {self.label_names[i]: float(c) / seg.size for i, c in zip(ids, counts)
                       if i < len(self.label_names)}
            return dict(sem_seg=seg, classes=list(self.label_names), present=present)

        return self._run(inputs, texts, batch_size, out_dir, show, wait_time, return_datasamples, progress,
                         dict(opacity=opacity), to_dict)

    def _draw(self, inp, pred, name, show, wait_time, vis_dir, opacity=0.5):
        img = self._read_rgb(inp)
        self.visualizer.alpha = opacity
        name = osp.splitext(name)[0] + '.png'
        self.visualizer.add_datasample(name, img, pred, draw_gt=False, draw_pred=True, show=show,
                                       wait_time=wait_time, out_file=osp.join(vis_dir, name) if vis_dir else None)
