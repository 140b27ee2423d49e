# F-ViT (CLIPSelf) Faster R-CNN on a frozen EVA02-CLIP-B/16, OV-COCO settings.  See docs/detection.md.
# Image normalisation: ImageNet statistics (what F-ViT used); CLIP's is a config choice:
#   mean=[122.770938, 116.7460125, 104.09373615], std=[68.5005327, 66.6321579, 70.32316305]
norm_cfg = dict(type='SyncBN', requires_grad=True)  # reverted to BN automatically in non-distributed runs
model = dict(
    type='FViT',
    freeze_backbone=True,
    use_vlm_feat=True,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        # pad bottom/right to the 640 x 640 square after normalisation (value 0), in training and at test time
        # (F-ViT pads after Normalize); configs of another size set pad_size_divisor and the batch pad to it
        pad_size_divisor=640,
        batch_augments=[dict(type='BatchFixedSizePad', size=(640, 640))]),
    backbone=dict(
        type='DeCLIPViT',
        model_name='EVA02-B-16',
        checkpoint='checkpoints/EVA02_CLIP_B_psz16_s8B.pt',
        out_indices=(3, 5, 7, 11),
        last_feat_mode='maskclip',   # pyramid level 4: F-ViT's no-attention last block
        dense_mode='maskclip',       # vlm_feat (p_clip): F-ViT maskclip; DeCLIP checkpoints: their mode (csa)
        out_types=('feats', ),
        normalize_dense=True,
        frozen=True),
    neck=dict(
        type='SequentialNeck',
        necks=[
            dict(type='mmseg.Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
            dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5, norm_cfg=norm_cfg),
        ]),
    rpn_head=dict(
        type='NormRPNHead',
        in_channels=256,
        feat_channels=256,
        num_convs=2,   # norm_cfg: None (OV-COCO); OV-LVIS configs set SyncBN
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='FViTRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='FViTBBoxHead',
            in_channels=256,
            roi_feat_size=7,
            num_shared_convs=4,
            num_shared_fcs=2,
            num_cls_fcs=1,
            num_reg_fcs=1,
            conv_out_channels=256,
            fc_out_channels=512,       # = text-embedding dim (512 B/16, 768 L/14)
            norm_cfg=norm_cfg,
            num_classes=65,
            class_names='ov_coco',
            text_embeddings='data/text_embeddings/coco_eva02-b16.pt',
            logit_scale=50.0,
            learn_logit_scale=True,
            alpha=0.1,
            beta=0.8,
            vlm_temperature=75.0,
            novel_classes='zero_weight',
            reg_class_agnostic=True,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type='ZeroWeightMaskedCrossEntropyLoss', class_weight='ov_coco/class_weight.json',
                          bg_weight=0.6, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                          match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                          match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.4), max_per_img=100)))
