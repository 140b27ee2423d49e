# OV-LVIS data for OV-DQUO's ViT recipe at R = 1024 (EVA02 B/16), as the original (datasets/ov_lvis.py):
#   train: horizontal flip 0.5, then with probability 0.5 resize the long side to R, otherwise short side to
#   400 / 500 / 600 -> random crop with h, w in [384, min(side, 600)] -> long side R; test: long side R.  Every
#   image is padded bottom-right to R x R AFTER normalisation (data_preprocessor below: pad_size_divisor=R pads any
#   image with sides <= R to exactly R x R, pad_value 0), as the original pads the normalised tensor with 0.
#   DETR's resize rounding and PIL decoding (no EXIF rotation) / resizing as the original; ImageNet mean / std (the
#   original's choice for its EVA-CLIP ViTs).
# Open-world pseudo boxes (OV-DQUO's OW_LVIS_R3.json) are merged into the training images.  An image left without
# any box (true or pseudo) after the pipeline is skipped: PseudoFilterAnnotations(drop_empty=True) returns None and
# mmengine loads another image (the original takes the next index; counted in dataset.num_empty_refetched).
# Sampler: OV-DQUO's repeat-factor multinomial sampler with t = 1.0, what the published models used (the configured
# 0.001 became True in the original); set repeat_thr=0.001 for the intended LVIS threshold.  All json images are
# kept (filter_empty_gt=False) so that the repeat factors are computed over the same N images as the original.
# Training images that cannot be read (missing, truncated, not an image) are skipped, logged with their path and
# counted in dataset.unreadable_images (LoadImageFromFile(ignore_empty=True)); a long run does not stop on one.
# Model configs use `data_preprocessor=_base_.data_preprocessor`.
dataset_type = 'OVLVISV1Dataset'
data_root = 'data/coco/'  # LVIS v1 uses the COCO 2017 images; file names come from each image's coco_url
backend_args = None
resolution = 1024
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=resolution,
    pad_value=0)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         backend_args=backend_args, ignore_empty=True),
    dict(type='LoadPseudoAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='DETRResize', scale=resolution, max_size=resolution, backend='pillow')],
            [
                dict(type='RandomChoiceResize', scales=[400, 500, 600], resize_type='DETRResize', backend='pillow'),
                dict(type='PseudoRandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='DETRResize', scale=resolution, max_size=resolution, backend='pillow'),
            ],
        ]),
    dict(type='PseudoFilterAnnotations', min_gt_bbox_wh=(0, 0), drop_empty=True),
    dict(type='PackPseudoDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         backend_args=backend_args),
    dict(type='DETRResize', scale=resolution, max_size=resolution, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='RepeatFactorMultinomialSampler', repeat_thr=1.0, seed=0),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_train_seen_1203_cat.json',
        pseudo_ann_file='annotations/OW_LVIS_R3.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
# OV-DQUO's headline is box APr (lvis/bbox_APr), at most 300 detections per image
val_evaluator = dict(
    type='OVLVISMetric',
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator
