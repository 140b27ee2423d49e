"""Region-classification predictions of the distiller (method doc section 7)."""
from typing import List

import torch
import torch.nn.functional as F

from declip_mm.models.utils import mask_pool, roi_pool


def class_embeddings(model, classes, device) -> torch.Tensor:
    """(K, D) unit text embeddings of ``classes`` from the model's own text tower with the 63 ViLD templates."""
    from declip_mm.models.text import DeCLIPTextEncoder
    from declip_mm.models.text.templates import VILD_TEMPLATES, vild_formatter
    if getattr(model, '_text_encoder', None) is None:
        cfg = dict(model.text_encoder_cfg or {})
        s = model.student
        cfg.setdefault('model_name', s.model_name)
        cfg.setdefault('model_overrides', s.model_overrides)
        cfg.setdefault('checkpoint', getattr(model, 'clip_checkpoint', None))
        object.__setattr__(model, '_text_encoder', DeCLIPTextEncoder(**cfg).to(device))  # not a submodule
    te = model._text_encoder
    if not classes:
        raise ValueError('region classification: the dataset provides no class names')
    return te.embed_classes(list(classes), VILD_TEMPLATES, vild_formatter).to(device).float()  # unit rows


@torch.no_grad()
def region_predict(model, inputs: dict, data_samples) -> List[dict]:
    """Per image: logits (M, K) of the ``rois`` (RoIAlign 1x1 of the content map), ``maskpool`` (content averaged in
    the mask) and ``crops`` (teacher [CLS] of the crop) scores, with the region ``labels`` and ``isthing`` flags."""
    img = inputs['student']
    dense = model.student.extract(img, ('dense', ))['dense'].float()
    if model.normalize_dense_before_roi:
        dense = F.normalize(dense, dim=1)
    H, W = dense.shape[-2:]
    emb = class_embeddings(model, data_samples[0].classes, dense.device)
    crops = inputs.get('crops')
    out = []
    for b, ds in enumerate(data_samples):
        boxes = ds.boxes.to(dense.device).float() * dense.new_tensor([W, H, W, H])
        res = dict(labels=ds.labels.cpu(), isthing=ds.isthing.cpu())
        if boxes.shape[0] == 0:
            out.append(res)
            continue
        rois = torch.cat([boxes.new_full((len(boxes), 1), 0.0), boxes], dim=1)
        f = roi_pool(dense[b:b + 1], rois, 1.0)
        res['rois'] = (F.normalize(f, dim=-1) @ emb.t()).cpu()
        f = mask_pool(dense[b:b + 1], ds.masks[None].to(dense.device).float())[0]
        res['maskpool'] = (F.normalize(f, dim=-1) @ emb.t()).cpu()
        if crops is not None:
            c = crops[b] if isinstance(crops, list) else crops[b]
            f = model.teacher.encode_image(c).float()
            res['crops'] = (F.normalize(f, dim=-1) @ emb.t()).cpu()
        out.append(res)
    return out
