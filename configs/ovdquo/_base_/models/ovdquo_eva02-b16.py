# OV-DQUO (AAAI 2025) on a frozen EVA02-CLIP-B/16 (DeCLIPViT), OV-LVIS settings of the original ViT-B/16 config:
# taps after blocks 5 / 7 / 11 (the last one in the no-attention "maskclip" mode), pyramid ConvT / identity / max-pool,
# 3 levels of 256 channels, 6 + 6 deformable layers, 1000 queries, 100 denoising queries, 100 classes sampled per
# batch + the wildcard "object", novel boost 8, 300 detections.  See docs/detection.md (OV-DQUO).
# L/14-336: model_name='EVA02-L-14-336', out_indices=(10, 14, 23), embed_dim / in_channels 1024.
# No data_preprocessor here: every config takes its dataset base's (`data_preprocessor=_base_.data_preprocessor`:
# normalisation, then padding to R x R (ViT) or to the batch's largest image (ResNet), padding masked).
model = dict(
    type='OVDQUO',
    num_queries=1000,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=3,
    class_names='lvis_v1',
    novel_classes='lvis_v1',
    text_embeddings='data/text_embeddings/lvis_v1_object_eva02-b16.pt',  # classes + 'object' (gen_text_embeddings)
    wildcard='object',
    region_embedder=dict(type='ViTRegionEmbedder'),
    category_sampler=dict(type='OVCategorySampler', num_sampled=100, pool='all'),
    novel_boost=8.0,
    backbone=dict(
        type='DeCLIPViT',
        model_name='EVA02-B-16',
        checkpoint='checkpoints/eva_vitb16_lvis_clipself_patches.pt',  # or a DeCLIP checkpoint (dense_mode='csa')
        out_indices=(5, 7, 11),
        last_feat_mode='maskclip',
        dense_mode='maskclip',
        out_types=('feats', 'dense'),
        normalize_dense=True,
        frozen=True),
    neck=dict(
        type='SequentialNeck',
        necks=[
            dict(type='ViTPyramidNeck', in_channels=768, rescales=(2, 1, 0.5)),
            dict(type='ChannelMapper', in_channels=[768, 768, 768], kernel_size=1, out_channels=256, act_cfg=None,
                 norm_cfg=dict(type='GN', num_groups=32), bias=True, num_outs=3),
        ]),
    encoder=dict(
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_levels=3, dropout=0.0),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, ffn_drop=0.0))),
    decoder=dict(
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=256, num_levels=3, dropout=0.0),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=2048, ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=128, normalize=True, offset=0.0, temperature=20),
    bbox_head=dict(
        type='OVDQUOHead',
        num_classes=1,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='OVVarifocalLoss', alpha=0.75, gamma=2.0, loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        loss_dn_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        pseudo_weight_power=0.5,
        dn_normalizer='true_matches'),
    dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100)),
    train_cfg=dict(
        assigner=dict(
            type='WildcardHungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0, eps=1e-7),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ]),
        enc_assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0, eps=1e-8),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=300, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.5), score_roundtrip=True,
                  clip_boxes=False))
