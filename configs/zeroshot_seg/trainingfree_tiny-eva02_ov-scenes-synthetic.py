# Embedded default: the training-free segmentor with a tiny random EVA02 CLIP (csa dense features) on the synthetic
# scenes, on CPU; overlays go to <work_dir>/<timestamp>/vis_data/vis_image/.
#   python tools/test.py configs/zeroshot_seg/trainingfree_tiny-eva02_ov-scenes-synthetic.py --work-dir work_dirs/zeroshot_tiny
# Same protocol as the 8 benchmark configs, scaled down: short side 112, window 64 / stride 32, 2 templates.
_base_ = ['./_base_/default_runtime.py']

data_root = 'data/synthetic_seg'
tiny_clip = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                 vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4)))
model = dict(
    type='DeCLIPZeroShotSegmentor',
    data_preprocessor=dict(
        # CLIP's mean / std rounded to 3 decimals, exactly as DeCLIP's training-free evaluator normalises
        type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323], bgr_to_rgb=True),
    backbone=dict(type='DeCLIPViT', model_name='EVA02-B-16', model_overrides=tiny_clip, dense_mode='csa',
                  attn_scale='sqrt', out_types=('dense', ), frozen=True),
    text_encoder=dict(type='DeCLIPTextEncoder', model_name='EVA02-B-16', model_overrides=tiny_clip, frozen=True,
                      checkpoint=None),  # random tiny text tower, even when the backbone gets a (visual) file
    # one class a line / a list; a list item may list synonyms (max over names)
    class_names=['sky', ['grass', 'lawn'], 'sand', ['water', 'sea'], 'road', 'building', 'tree', 'car'],
    templates=['a photo of a {}.', 'a photo of the {}.'],
    logit_scale=40.0,
    prob_thd=0.0,
    slide_crop=64,
    slide_stride=32)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 112), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticSegDataset', data_root=data_root, split='val', num_images=4, seed=1,
                 pipeline=test_pipeline))
test_evaluator = dict(type='OVSegMetric', ignore_index=255)
default_hooks = dict(visualization=dict(type='SegVisualizationHook', draw=True, interval=1))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
