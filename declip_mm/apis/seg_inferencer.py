"""Open-vocabulary segmentation inference (CAT-Seg, training-free DeCLIP) on mmseg's ``MMSegInferencer``."""
import copy
import os.path as osp
import warnings
from typing import Callable, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmseg.apis import MMSegInferencer

from .base import (OVInferencerMixin, check_device, check_weights_present, drop_missing_init_files,
                   load_fitting_checkpoint, palette_for, unlabelled_index)
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ['OVSegInferencer']


def _vocabulary_model_class(model_cfg):
    """The registered class of ``model_cfg.type`` if it takes a vocabulary (``set_name_sets`` or
    ``set_test_class_names``) and has a text tower, else ``ValueError``."""
    from mmseg.registry import MODELS
    typ = model_cfg.get('type') if isinstance(model_cfg, dict) else None
    cls = None
    if isinstance(typ, str):
        with MODELS.switch_scope_and_registry('mmseg') as registry:  # whatever the current default scope
            cls = registry.get(typ)
    if cls is None or not (hasattr(cls, 'set_name_sets') or hasattr(cls, 'set_test_class_names')):
        raise ValueError('OVSegInferencer needs an open-vocabulary segmentor (CATSeg, DeCLIPZeroShotSegmentor, or a '
                         f'model with set_name_sets / set_test_class_names), got model.type {typ}')
    return cls


class OVSegInferencer(OVInferencerMixin, MMSegInferencer):
    """CAT-Seg or the training-free segmentor with a free vocabulary, called like mmseg's ``MMSegInferencer``.

    Text embeddings come from the model's own text tower with its own prompt recipe (CAT-Seg: "A photo of a {} in
    the scene", first name of each class only (as trained: other synonyms are dropped with a warning);
    training-free: the config's templates, every synonym, max over a class's names), cached in memory and on disk
    (``cache_dir``).  A user vocabulary turns off the config's benchmark-specific background rules (VOC-21
    background collapse; the training-free ``prob_thd``, unless ``prob_thd`` is given).  Which recipe applies is
    read from the model: ``set_name_sets`` (every synonym is a query) or ``set_test_class_names`` plus its
    ``synonym_rule``.

    Args:
        model: config path / Config (``model.type`` CATSeg, DeCLIPZeroShotSegmentor or another segmentor with
            that interface).
        weights: trained checkpoint (CAT-Seg; must fit the config); None for the training-free segmentor.
        device, cache_dir, show_progress: as :class:`OVDetInferencer`.
        prob_thd: training-free only: pixels whose best class probability is below it are unlabelled.

    Call: as ``MMSegInferencer.__call__`` (``return_datasamples``, ``batch_size``, ``return_vis``, ``show``,
    ``wait_time``, ``out_dir``, ``img_out_dir`` ('vis'), ``pred_out_dir`` ('pred')) plus ``texts`` (see
    :func:`declip_mm.apis.parse_vocabulary`; None: the config's classes), ``opacity``, ``draw_pred``,
    ``no_save_vis``, ``no_save_pred``, ``print_result``, ``progress`` and ``on_result`` ->
    ``dict(predictions=[{sem_seg ((H, W) int64 label map indexing classes), present ({name: pixel share}), input,
    label_map (file, relative to out_dir, when written)}], visualization=[RGB arrays when return_vis],
    classes=[...], unlabelled=255 or 65535, skipped=[...])``: always a list, one dict per image (mmseg returns a bare
    array for a single image); with ``return_datasamples`` the predictions are mmseg ``SegDataSample``s.  Pixels
    of no class hold ``unlabelled`` (255 up to 255 classes, else 65535), never a class index.  Files:
    ``out_dir/vis/<name><ext>`` and ``out_dir/pred/<name>.png`` (uint8, uint16 above 255 classes; ``name``:
    :func:`declip_mm.apis.base.output_names`), each written as its image finishes.
    """

    def __init__(self, model, weights: Optional[str] = None, device: Optional[str] = None,
                 cache_dir: Optional[str] = None, prob_thd: Optional[float] = None, show_progress: bool = True,
                 scope: str = 'mmseg') -> None:
        import declip_mm  # noqa: F401  (registers the models)
        import declip_mm.visualization  # noqa: F401
        check_device(device)
        self._init_text_cache(cache_dir)
        self._prob_thd = prob_thd
        self._vocab_key = None
        self.label_names = []
        super().__init__(model=model, weights=weights, device=device, scope=scope)
        self.show_progress = show_progress
        self.model.text_encoder.show_progress = show_progress

    # ----------------------------------------------------------------------------------------------- building
    @staticmethod
    def check_vocabulary(cfg, texts=None) -> Optional[Vocabulary]:
        """The parsed user vocabulary (None for the config's), or ``ValueError`` / ``FileNotFoundError``; needs
        the config only (no model build)."""
        _vocabulary_model_class(cfg.model)
        if texts is None:
            return None
        vocab = parse_vocabulary(texts)
        unlabelled_index(len(vocab))  # at most 65534 classes fit a label map
        return vocab

    def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu'):
        from mmseg.registry import MODELS
        model_cfg = copy.deepcopy(cfg.model)
        cls = _vocabulary_model_class(model_cfg)
        drop_missing_init_files(model_cfg, weights)
        model = MODELS.build(model_cfg)
        if weights is not None:
            load_fitting_checkpoint(model, weights, getattr(cfg, 'filename', None) or 'the config')
        elif getattr(cls, 'needs_trained_weights', False):
            warnings.warn(f'OVSegInferencer: no checkpoint given, {cls.__name__} has random (untrained) weights')
        check_weights_present(model)  # a CLIP file named in the config is absent: fail now, not after encoding
        model.cfg = cfg
        model.to(device).eval()
        model.text_encoder.cache_dir = self.cache_dir
        # the config's vocabulary, restored exactly when texts=None
        self._config_state = dict(
            name_sets=[list(x) for x in model.name_sets] if hasattr(model, 'name_sets') else None,
            test_class_names=list(getattr(model, 'test_class_names', []) or []),
            background_collapse=copy.deepcopy(getattr(model, 'background_collapse', None)),
            prob_thd=getattr(model, 'prob_thd', None), background_index=getattr(model, 'background_index', None))
        self._config_vocab = self._config_vocabulary(model, model_cfg)
        return model

    @staticmethod
    def _config_vocabulary(model, model_cfg) -> Vocabulary:
        if hasattr(model, 'name_sets'):
            sets = [list(x) for x in model.name_sets]
            spec = model_cfg.get('class_names')
            if isinstance(spec, str):  # a shipped list / file: its label names (cls_voc21: "background")
                try:
                    parsed = parse_vocabulary(spec)
                    if parsed.synonyms == sets:
                        return parsed
                except (ValueError, OSError):
                    pass
            return Vocabulary(sets)
        return Vocabulary([[x.strip() for x in str(n).split(', ') if x.strip()] or [str(n)]
                           for n in model.test_class_names])

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
    def set_vocabulary(self, texts=None) -> Vocabulary:
        """Switch the model to ``texts`` (None: the config's classes) and compute / fetch its text embeddings."""
        custom = texts is not None
        vocab = self.check_vocabulary(self.cfg, texts) if custom else self._config_vocab
        key = (vocab.key(), custom, self._prob_thd)
        if key == self._vocab_key:
            return vocab
        m, cfg_state = self.model, self._config_state
        if custom and getattr(m, 'synonym_rule', 'all') == 'first':
            dropped = {s[0]: s[1:] for s in vocab.synonyms if len(s) > 1}
            if dropped:
                warnings.warn(f'{type(m).__name__} encodes only the first name of each class (as it was trained); '
                              f'synonyms not used: {dropped}')
        with torch.no_grad():
            if hasattr(m, 'set_name_sets'):
                m.set_name_sets(vocab.synonyms if custom else cfg_state['name_sets'])
            else:
                m.set_test_class_names(list(vocab.names) if custom else cfg_state['test_class_names'])
            if hasattr(m, 'background_collapse'):  # VOC-21 benchmark rule: the config's vocabulary only
                m.background_collapse = None if custom else copy.deepcopy(cfg_state['background_collapse'])
            if hasattr(m, 'prob_thd'):
                if custom:
                    m.prob_thd, m.background_index = (self._prob_thd or 0.0), unlabelled_index(len(vocab))
                else:
                    m.prob_thd, m.background_index = cfg_state['prob_thd'], cfg_state['background_index']
                    if self._prob_thd is not None:
                        m.prob_thd = self._prob_thd
            if hasattr(m, 'query_embeddings'):  # computed (or read from the cache) now, not in the first forward
                m.query_embeddings()
            elif hasattr(m, 'text_embeddings'):
                m.text_embeddings(m.test_class_names)
        names = list(vocab.names)
        bc = getattr(m, 'background_collapse', None)
        if bc:  # VOC-21 config: labels are background + the foreground classes
            nf = bc['num_foreground']
            names = ['background'] + names[:nf] if bc.get('background_first', True) else names[:nf] + ['background']
        self.label_names = names
        self.model.dataset_meta = dict(classes=tuple(names), palette=palette_for(len(names)))
        if self.visualizer is not None:
            self.visualizer.dataset_meta = dict(self.model.dataset_meta)
        self.vocabulary, self._vocab_key = vocab, key
        return vocab

    # ----------------------------------------------------------------------------------------------- call
    def __call__(self, inputs, return_datasamples: bool = False, batch_size: int = 1, return_vis: bool = False,
                 show: bool = False, wait_time: float = 0, out_dir: str = '', img_out_dir: str = 'vis',
                 pred_out_dir: str = 'pred', texts: Union[None, str, Sequence] = None, opacity: float = 0.5,
                 draw_pred: bool = True, no_save_vis: bool = False, no_save_pred: bool = False,
                 print_result: bool = False, progress: Optional[bool] = None,
                 on_result: Optional[Callable[[dict], None]] = None) -> dict:
        """``inputs``: an image path, a folder, an array (BGR) or a list of them.  See the class docstring."""
        return self._run(inputs, texts, {}, batch_size=batch_size, out_dir=out_dir, img_out_dir=img_out_dir,
                         pred_out_dir=pred_out_dir, return_vis=return_vis, show=show, wait_time=wait_time,
                         draw_pred=draw_pred, no_save_vis=no_save_vis, no_save_pred=no_save_pred,
                         return_datasamples=return_datasamples, print_result=print_result, progress=progress,
                         on_result=on_result, vis_kwargs=dict(opacity=opacity))

    def _result_extras(self) -> dict:
        return dict(unlabelled=unlabelled_index(len(self.label_names)))

    def pred2dict(self, data_sample) -> dict:
        """``sem_seg`` (H, W) int64 label map (as mmseg's prediction) and ``present`` {name: pixel share}."""
        seg = data_sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
        ids, counts = np.unique(seg, return_counts=True)
        present = {self.label_names[i]: float(c) / seg.size for i, c in zip(ids, counts)
                   if i < len(self.label_names)}
        return dict(sem_seg=seg, present=present)

    @staticmethod
    def _printable(d: dict) -> dict:
        return {k: v for k, v in d.items() if k != 'sem_seg'}

    def _save_pred(self, d: dict, pred, pred_dir: str, name: str, out_dir: str) -> None:
        path = osp.join(pred_dir, name + '.png')
        dtype = np.uint8 if unlabelled_index(len(self.label_names)) == 255 else np.uint16
        if not mmcv.imwrite(d['sem_seg'].astype(dtype), path):
            raise OSError(f'could not write {path}')
        d['label_map'] = osp.relpath(path, out_dir)

    def _draw(self, inp, pred, name, show=False, wait_time=0, draw_pred=True, out_file=None, opacity=0.5):
        img = self._read_rgb(inp)
        self.visualizer.alpha = opacity
        if not draw_pred:  # the photo itself, as mmdet's draw_pred=False
            self.visualizer.set_image(img)
            if show:
                self.visualizer.show(img, win_name=name, wait_time=wait_time)
            if out_file:
                mmcv.imwrite(img[:, :, ::-1], out_file)
            return self.visualizer.get_image()
        self.visualizer.add_datasample(name, img, pred, draw_gt=False, draw_pred=True, show=show,
                                       wait_time=wait_time, out_file=out_file)
        return self.visualizer.get_image()
