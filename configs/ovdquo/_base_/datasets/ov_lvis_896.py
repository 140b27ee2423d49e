# OV-LVIS data for OV-DQUO's ViT recipe at R = 896 (EVA02 L/14-336): ov_lvis_1024.py with every resize and the
# padding at 896 (see there).
_base_ = ['./ov_lvis_1024.py']
backend_args = None
resolution = 896
data_preprocessor = dict(pad_size_divisor=resolution)
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
