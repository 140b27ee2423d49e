"""Denoising text queries (OV-DQUO): mmdet's contrastive denoising queries with text-conditioned content."""
from typing import List, Tuple

import torch
from mmdet.models.layers import CdnQueryGenerator
from torch import Tensor

WILDCARD_LABEL = -1  # label of an open-world pseudo box


class TextCdnQueryGenerator(CdnQueryGenerator):
    """CDN queries whose content carries projected text embeddings.

    Noise, groups, layout and attention mask are mmdet's (under one seed they equal OV-DQUO's: the random calls come
    in the same order).  The content of a noisy query is ``label_embedding(noisy label)`` plus a projected text
    embedding: the wildcard's on positives, the noisy label's on negatives.  Labels ``-1`` (pseudo boxes) become the
    wildcard index ``C`` (the last row of the vocabulary) after the label noise, which draws from ``[0, C + 1)``.

    Args:
        num_classes: rows of the label table = training vocabulary size + 1 (the wildcard).
        other args: as :class:`mmdet.models.layers.CdnQueryGenerator`.
    """

    def __call__(self, batch_targets: List[Tuple[Tensor, Tensor]], img_shapes: List[Tuple[int, int]],
                 text_embeds: Tensor) -> tuple:
        """Args:
            batch_targets: per image ``(bboxes (n, 4) pixel xyxy, labels (n,))``, labels in ``[0, C)`` or -1.
            img_shapes: per image (h, w) of the unpadded image (boxes are normalised by it).
            text_embeds: (C + 1, E) projected vocabulary embeddings, wildcard last.
        Returns:
            ``(dn_label_query (B, P, E), dn_bbox_query (B, P, 4) inverse-sigmoid cxcywh, attn_mask (P+Q, P+Q),
            dn_meta)`` with ``P = 2 * max_n * groups``.
        """
        if text_embeds.shape[0] > self.num_classes:
            raise ValueError(f'vocabulary of {text_embeds.shape[0]} rows (wildcard included) but the denoising label '
                             f'table has {self.num_classes} rows')
        gt_labels_list, gt_bboxes_list = [], []
        for (bboxes, labels), (img_h, img_w) in zip(batch_targets, img_shapes):
            gt_bboxes_list.append(bboxes / bboxes.new_tensor([img_w, img_h, img_w, img_h]).unsqueeze(0))
            gt_labels_list.append(labels)
        gt_labels = torch.cat(gt_labels_list)
        gt_bboxes = torch.cat(gt_bboxes_list)
        num_target_list = [len(b) for b in gt_bboxes_list]
        max_num_target = max(num_target_list)
        num_groups = self.get_num_groups(max_num_target)

        dn_label_query = self.generate_dn_label_query(gt_labels, num_groups, text_embeds)
        dn_bbox_query = self.generate_dn_bbox_query(gt_bboxes, num_groups)
        batch_idx = torch.cat([torch.full_like(t.long(), i) for i, t in enumerate(gt_labels_list)])
        dn_label_query, dn_bbox_query = self.collate_dn_queries(dn_label_query, dn_bbox_query, batch_idx,
                                                                len(batch_targets), num_groups)
        attn_mask = self.generate_dn_mask(max_num_target, num_groups, device=dn_label_query.device)
        dn_meta = dict(num_denoising_queries=int(max_num_target * 2 * num_groups), num_denoising_groups=num_groups)
        return dn_label_query, dn_bbox_query, attn_mask, dn_meta

    def generate_dn_label_query(self, gt_labels: Tensor, num_groups: int, text_embeds: Tensor = None) -> Tensor:
        """(n * 2G, E) contents in the layout [pos g0 | neg g0 | pos g1 | ...] (n targets per block)."""
        if text_embeds is None:
            raise ValueError('TextCdnQueryGenerator needs the projected text embeddings')
        num_vocab = text_embeds.shape[0]  # C real classes + the wildcard
        gt_labels_expand = gt_labels.repeat(2 * num_groups, 1).view(-1)
        p = torch.rand_like(gt_labels_expand.float())
        chosen_indice = torch.nonzero(p < (self.label_noise_scale * 0.5)).view(-1)
        new_labels = torch.randint_like(chosen_indice, 0, num_vocab)
        noisy = gt_labels_expand.scatter(0, chosen_indice, new_labels)
        noisy = torch.where(noisy == WILDCARD_LABEL, torch.full_like(noisy, num_vocab - 1), noisy)
        query = self.label_embedding(noisy)
        n = len(gt_labels)
        pos = (torch.arange(n, device=noisy.device)[None] +
               2 * n * torch.arange(num_groups, device=noisy.device)[:, None]).flatten()
        neg = pos + n
        text = torch.zeros_like(query)
        text[pos] = text_embeds[-1].to(query.dtype)
        text[neg] = text_embeds[noisy[neg]].to(query.dtype)
        return query + text
