# OV-COCO data for OV-DQUO's ResNet recipe (CLIP RN50 / RN50x4), as the original (datasets/ov_coco.py):
#   train: horizontal flip 0.5, then with probability 0.5 resize the short side to one of 480, 512, ..., 800 (long
#   side <= 1333), otherwise short side to 400 / 500 / 600 -> random crop with h, w in [384, min(side, 600)] -> the
#   same multi-scale resize; test: short side 800, long side <= 1333.  DETR's resize rounding (DETRResize), PIL
#   decoding without EXIF rotation and PIL's antialiased bilinear resizing (color_ignore_orientation, backends
#   'pillow'), so the pixels equal the original's.  CLIP mean / std.  The batch is padded bottom-right to its
#   largest image AFTER normalisation (data_preprocessor below, pad_value 0), as the original pads the normalised
#   tensor with 0.
# Open-world pseudo boxes (OV-DQUO's OW_COCO_R2.json, see docs/detection.md) are merged into the training images
# and carried through every transform as gt_instances.pseudo / pseudo_weights.  Images without any box stay (the
# original keeps every image of the json).  Training labels index the 65 OV-COCO classes (only the 48 base classes
# occur; metainfo carries base_classes / novel_classes).
# Training images that cannot be read (missing, truncated, not an image) are skipped, logged with their path and
# counted in dataset.unreadable_images (LoadImageFromFile(ignore_empty=True)); a long run does not stop on one.
# Model configs use `data_preprocessor=_base_.data_preprocessor` (mmengine's Runner also applies this top-level key
# to a model config without one).
dataset_type = 'OVCocoDataset'
data_root = 'data/coco/'
backend_args = None
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
    bgr_to_rgb=True,
    pad_size_divisor=1,
    pad_value=0)
scales = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]
max_size = 1333
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         backend_args=backend_args, ignore_empty=True),
    dict(type='LoadPseudoAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=scales, resize_type='DETRResize', max_size=max_size,
                  backend='pillow')],
            [
                dict(type='RandomChoiceResize', scales=[400, 500, 600], resize_type='DETRResize', backend='pillow'),
                dict(type='PseudoRandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=scales, resize_type='DETRResize', max_size=max_size,
                     backend='pillow'),
            ],
        ]),
    dict(type='PackPseudoDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         backend_args=backend_args),
    dict(type='DETRResize', scale=800, max_size=max_size, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017_seen_2_65_cat.json',
        pseudo_ann_file='annotations/OW_COCO_R2.json',
        data_prefix=dict(img='train2017/'),
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
        ann_file='annotations/instances_val2017_all_2.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='OVCocoAP50Metric',
    ann_file=data_root + 'annotations/instances_val2017_all_2.json',
    metric='bbox',
    novel_classes='ov_coco',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
