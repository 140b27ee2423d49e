# Embedded default: a tiny random EVA-style DeCLIPViT (width 64, 4 blocks, embed 32) F-ViT on the synthetic
# open-vocabulary shapes set (6 classes; triangle and ring are novel, trained without their boxes).  Runs on CPU:
#   python tools/make_synthetic_det.py --out data/synthetic_ov_det
#   python tools/train.py configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py --work-dir work_dirs/fvit_tiny
#   python tools/test.py configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py work_dirs/fvit_tiny/epoch_1.pth
# Reports coco/novel_ap50, coco/base_ap50, coco/bbox_mAP_50 (random weights: the numbers only show the plumbing).
_base_ = ['_base_/default_runtime.py']
data_root = 'data/synthetic_ov_det/'
classes = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')
novel_classes = ('triangle', 'ring')
image_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='FViT',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=image_size[0],   # square pad after normalisation, training and test (as F-ViT)
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
    backbone=dict(
        type='DeCLIPViT',
        model_name='EVA02-B-16',
        # = declip_mm.models.backbones.tiny_clip_overrides('eva')
        model_overrides=dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                             vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4))),
        checkpoint=None,
        out_indices=(0, 1, 2, 3),
        last_feat_mode='maskclip',
        dense_mode='csa',
        out_types=('feats', ),
        normalize_dense=True,
        frozen=True),
    neck=dict(
        type='SequentialNeck',
        necks=[
            dict(type='mmseg.Feature2Pyramid', embed_dim=64, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
            dict(type='FPN', in_channels=[64, 64, 64, 64], out_channels=32, num_outs=5, norm_cfg=norm_cfg),
        ]),
    rpn_head=dict(
        type='NormRPNHead',
        in_channels=32,
        feat_channels=32,
        num_convs=2,
        norm_cfg=None,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='FViTRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=32,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='FViTBBoxHead',
            in_channels=32,
            roi_feat_size=7,
            conv_out_channels=32,
            fc_out_channels=32,
            norm_cfg=norm_cfg,
            num_classes=len(classes),
            class_names=list(classes),
            text_embeddings=data_root + 'text_embeddings_tiny_eva.pt',
            alpha=0.1,
            beta=0.8,
            vlm_temperature=75.0,
            novel_classes='zero_weight',
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type='ZeroWeightMaskedCrossEntropyLoss',
                          class_weight=[0.0 if c in novel_classes else 1.0 for c in classes], bg_weight=0.6),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                          match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                          match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.4), max_per_img=100)))

metainfo = dict(classes=classes, novel_classes=novel_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeAtLeastOnePixel', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='OVCocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train_base.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OVCocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVCocoAP50Metric', ann_file=data_root + 'annotations/val.json', metric='bbox',
                     novel_classes=list(novel_classes))
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=2)]
auto_scale_lr = dict(enable=False, base_batch_size=64)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=1))
randomness = dict(seed=0)
