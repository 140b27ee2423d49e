# F-ViT Mask R-CNN, vanilla EVA02-CLIP-B/16 (frozen), OV-LVIS, 1024 px, 48 epochs.  Headline: segm APr
# (LVISMetric key lvis/segm_APr).  CLIPSelf B/16 (patches): 25.3 APr.
_base_ = [
    '_base_/fvit_faster-rcnn_eva02-b16.py', '_base_/ov_lvis_lsj_1024.py', '_base_/schedule_ov_lvis_48e.py',
    '_base_/default_runtime.py'
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(pad_size_divisor=1024,
                           batch_augments=[dict(type='BatchFixedSizePad', size=(1024, 1024), pad_mask=True)]),
    rpn_head=dict(norm_cfg=norm_cfg),   # F-ViT's LVIS RPN has norm in its convs
    roi_head=dict(
        bbox_head=dict(
            num_classes=1203,
            class_names='lvis_v1',
            text_embeddings='data/text_embeddings/lvis_v1_eva02-b16.pt',
            alpha=0.1,
            beta=0.6,
            vlm_temperature=50.0,
            loss_cls=dict(type='ZeroWeightMaskedCrossEntropyLoss', class_weight='ov_lvis/class_weight_norare.json',
                          bg_weight=0.9, loss_weight=1.0)),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=1203,
            class_agnostic=True,
            norm_cfg=norm_cfg,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True), mask_size=28)),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                            mask_thr_binary=0.5)))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=12, max_keep_ckpts=2))
