# COCO-Stuff-164k training (171 classes): short side 384 (long <= 1333), 384 crop, photometric distortion, flip.
# Total batch 4 (batch_size=4 on one GPU; with N GPUs set train_dataloader.batch_size = 4 // N).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(1333, 384), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(384, 384), cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CATSegCOCOStuff171Dataset', data_root='data/coco_stuff164k',
                 data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
                 pipeline=train_pipeline))
