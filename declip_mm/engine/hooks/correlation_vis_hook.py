"""The proxy-token figure: correlation maps of a few anchor tokens, rendered to the mmengine Visualizer."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from declip_mm.engine.ensemble import unwrap
from declip_mm.registry import HOOKS


def _colormap(x: np.ndarray) -> np.ndarray:
    """[0, 1] (h, w) -> RGB uint8 (h, w, 3) with matplotlib's 'jet' (cv2 fallback-free)."""
    import matplotlib
    cmap = matplotlib.colormaps['jet']
    return (cmap(np.clip(x, 0, 1))[..., :3] * 255).astype(np.uint8)


def default_anchors(grid_hw: Tuple[int, int], num: int = 3) -> List[Tuple[int, int]]:
    h, w = grid_hw
    pts = [(h // 4, w // 4), (h // 2, w // 2), (3 * h // 4, 3 * w // 4), (h // 4, 3 * w // 4)]
    return pts[:num]


@torch.no_grad()
def correlation_maps(distiller, sample: dict, anchors: Optional[Sequence[Tuple[int, int]]] = None,
                     source: str = 'context') -> dict:
    """Cosine-similarity maps of anchor tokens to all tokens.

    Args:
        distiller: a ``DeCLIPDistiller``.
        sample: one pipeline output (``inputs`` with uint8 ``student`` (3, H, W) and optionally ``vfm``).
        source: ``'context'`` (student context, csa/all parts averaged), ``'dense'`` (content map).
    Returns dict with ``student`` (A, h, w) maps, ``vfm`` (A, h', w') maps or None, ``anchors`` and ``image``
    (H, W, 3) uint8.
    """
    from declip_mm.models.losses.declip_losses import _tokens
    dev = next(distiller.parameters()).device
    batch = dict(inputs={k: v[None] for k, v in sample['inputs'].items()}, data_samples=None)
    data = distiller.data_preprocessor(batch, False)
    was_training = distiller.training
    distiller.eval()
    try:
        out = distiller.student.extract(data['inputs']['student'], outputs=('dense', 'context')
                                        if source == 'context' and distiller.distill_mode == 'decoupled'
                                        else ('dense', ))
    finally:
        distiller.train(was_training)
    parts = out.get('context', (out['dense'], )) if source == 'context' else (out['dense'], )
    if isinstance(parts, torch.Tensor):
        parts = (parts, )
    gh, gw = parts[0].shape[-2:]
    anchors = list(anchors or default_anchors((gh, gw)))
    idx = torch.tensor([i * gw + j for i, j in anchors], device=dev)
    s = 0
    for p in parts:
        t = _tokens(p)[0]
        s = s + t[idx] @ t.t()
    student = (s / len(parts)).reshape(len(anchors), gh, gw).float().cpu().numpy()
    vfm = None
    if distiller.vfm is not None and 'vfm' in data['inputs']:
        v = distiller.vfm(data['inputs']['vfm'])
        vh, vw = v.shape[-2:]
        t = _tokens(v)[0]
        vidx = torch.tensor([min(vh - 1, round(i * vh / gh)) * vw + min(vw - 1, round(j * vw / gw))
                             for i, j in anchors], device=dev)
        vfm = (t[vidx] @ t.t()).reshape(len(anchors), vh, vw).float().cpu().numpy()
    image = sample['inputs']['student'].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    return dict(student=student, vfm=vfm, anchors=anchors, image=image)


def render_correlation_figure(maps: dict, tile: int = 160) -> np.ndarray:
    """Rows: image with anchors | student maps (| VFM maps). Returns RGB uint8 (H, W, 3)."""
    import cv2
    img = cv2.resize(maps['image'], (tile, tile), interpolation=cv2.INTER_AREA)
    gh, gw = maps['student'].shape[-2:]
    colors = [(255, 255, 255), (255, 0, 255), (0, 255, 255), (255, 128, 0)]
    marked = img.copy()
    for k, (i, j) in enumerate(maps['anchors']):
        c = (int((j + 0.5) * tile / gw), int((i + 0.5) * tile / gh))
        cv2.circle(marked, c, max(3, tile // 30), colors[k % len(colors)], -1)
    rows = []
    for key in ('student', 'vfm'):
        if maps.get(key) is None:
            continue
        tiles = [marked]
        for k, m in enumerate(maps[key]):
            m = (m + 1) / 2  # cosine [-1, 1] -> [0, 1]
            heat = _colormap(cv2.resize(m.astype(np.float32), (tile, tile), interpolation=cv2.INTER_NEAREST))
            blend = (0.6 * heat + 0.4 * img).astype(np.uint8)
            i, j = maps['anchors'][k]
            cv2.circle(blend, (int((j + 0.5) * tile / gw), int((i + 0.5) * tile / gh)), max(3, tile // 30),
                       colors[k % len(colors)], -1)
            tiles.append(blend)
        row = np.concatenate(tiles, axis=1)
        cv2.putText(row, key, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)


@HOOKS.register_module()
class CorrelationVisHook(Hook):
    """Every ``interval`` iterations (and before training), render the anchor-token correlation maps of a fixed
    image to the Visualizer (``add_image('declip_correlation', ...)``) and, if ``out_dir`` is set, to PNG files.

    Args:
        interval: iterations between renders.
        image_index: index of the fixed image in the training dataset (``image_path`` overrides it).
        anchors: (row, col) student-grid anchors; default three along the diagonal.
        source: ``'context'`` or ``'dense'``.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 500, image_index: int = 0, image_path: Optional[str] = None,
                 anchors: Optional[Sequence[Sequence[int]]] = None, source: str = 'context',
                 out_dir: Optional[str] = None):
        self.interval = interval
        self.image_index = image_index
        self.image_path = image_path
        self.anchors = [tuple(a) for a in anchors] if anchors else None
        self.source = source
        self.out_dir = out_dir
        self._sample = None

    def _get_sample(self, runner):
        if self._sample is None:
            ds = runner.train_dataloader.dataset
            if self.image_path is not None:
                from declip_mm.datasets.distill_dataset import read_rgb
                img = read_rgb(self.image_path)
                self._sample = ds.pipeline(dict(img=img, img_path=self.image_path, sample_idx=0, epoch=0))
            else:
                self._sample = ds[self.image_index]
        return self._sample

    def render(self, runner, step: int) -> np.ndarray:
        maps = correlation_maps(unwrap(runner.model), self._get_sample(runner), self.anchors, self.source)
        fig = render_correlation_figure(maps)
        runner.visualizer.add_image('declip_correlation', fig, step=step)
        if self.out_dir is not None:
            import cv2
            cv2.imwrite(osp.join(self.out_dir, f'correlation_{step:06d}.png'), fig[..., ::-1])
        return fig

    def before_train(self, runner) -> None:
        if is_main_process():
            self.render(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if is_main_process() and self.every_n_train_iters(runner, self.interval):
            self.render(runner, runner.iter + 1)
