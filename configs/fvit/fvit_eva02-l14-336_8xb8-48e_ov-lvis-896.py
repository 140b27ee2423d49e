# F-ViT Mask R-CNN, vanilla EVA02-CLIP-L/14-336 (frozen), OV-LVIS, 896 px (beta 0.4; F-ViT notes 0.6-0.8 raises APr).
_base_ = [
    '_base_/fvit_faster-rcnn_eva02-b16.py', '_base_/ov_lvis_lsj_896.py', '_base_/schedule_ov_lvis_48e.py',
    '_base_/default_runtime.py'
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(pad_size_divisor=896,
                           batch_augments=[dict(type='BatchFixedSizePad', size=(896, 896), pad_mask=True)]),
    backbone=dict(model_name='EVA02-L-14-336', checkpoint='checkpoints/EVA02_CLIP_L_336_psz14_s6B.pt',
                  out_indices=(6, 10, 14, 23)),
    neck=dict(necks=[
        dict(type='mmseg.Feature2Pyramid', embed_dim=1024, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
        dict(type='FPN', in_channels=[1024, 1024, 1024, 1024], out_channels=256, num_outs=5, norm_cfg=norm_cfg),
    ]),
    rpn_head=dict(norm_cfg=norm_cfg, anchor_generator=dict(strides=[3.5, 7, 14, 28, 56])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[3.5, 7, 14, 28]),
        bbox_head=dict(
            fc_out_channels=768,
            num_classes=1203,
            class_names='lvis_v1',
            text_embeddings='data/text_embeddings/lvis_v1_eva02-l14-336.pt',
            alpha=0.1,
            beta=0.4,
            vlm_temperature=50.0,
            loss_cls=dict(type='ZeroWeightMaskedCrossEntropyLoss', class_weight='ov_lvis/class_weight_norare.json',
                          bg_weight=0.9, loss_weight=1.0)),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[3.5, 7, 14, 28]),
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
