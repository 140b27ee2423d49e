# The synthetic shapes set (tools/make_synthetic_det.py) for a tiny OV-DQUO: 6 classes, triangle and ring novel
# (their boxes are not in train_base.json), open-world pseudo boxes from annotations/train_pseudo.json (the novel
# objects' boxes jittered plus a few background boxes, with weights).  OV-DQUO's pipeline structure scaled to the
# 128 px images: flip, then short side 96 / 112 / 128 (long side <= 128), or short side 96 / 112 / 128 -> random crop
# [64, 96] -> short side 96 / 112 / 128; test short side 128; every image padded to 128 x 128 after normalisation.
#   python tools/make_synthetic_det.py --out data/synthetic_ov_det
data_root = 'data/synthetic_ov_det/'
classes = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')
novel_classes = ('triangle', 'ring')
metainfo = dict(classes=classes, novel_classes=novel_classes)
image_size = 128
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=image_size,
    pad_value=0)
scales = [96, 112, 128]
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         ignore_empty=True),  # an unreadable file is skipped and counted (dataset.unreadable_images)
    dict(type='LoadPseudoAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=scales, resize_type='DETRResize', max_size=image_size,
                  backend='pillow')],
            [
                dict(type='RandomChoiceResize', scales=scales, resize_type='DETRResize', backend='pillow'),
                dict(type='PseudoRandomCrop', crop_type='absolute_range', crop_size=(64, 96),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=scales, resize_type='DETRResize', max_size=image_size,
                     backend='pillow'),
            ],
        ]),
    dict(type='PackPseudoDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow'),
    dict(type='DETRResize', scale=image_size, max_size=image_size, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='OVCocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train_base.json',
        pseudo_ann_file='annotations/train_pseudo.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=False),
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
