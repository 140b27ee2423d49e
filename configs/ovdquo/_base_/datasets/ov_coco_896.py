# OV-COCO data for a ViT OV-DQUO at R = 896 (DeCLIP / EVA02 L/14-336): the original has no ViT OV-COCO recipe
# (its released code cannot run one), so this applies its OV-LVIS ViT pipeline to the OV-COCO data of
# ov_coco_ms_480_800.py: long side R (or 400/500/600 -> crop [384, 600] -> long side R), padded to R x R after
# normalisation, ImageNet mean / std; images without any box stay, as in the original's COCO reader.
_base_ = ['./ov_coco_ms_480_800.py']
backend_args = None
resolution = 896
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], pad_size_divisor=resolution)
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
    dict(type='PackPseudoDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow',
         backend_args=backend_args),
    dict(type='DETRResize', scale=resolution, max_size=resolution, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
