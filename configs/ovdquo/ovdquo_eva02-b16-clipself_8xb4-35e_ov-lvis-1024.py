# OV-DQUO, OV-LVIS, EVA02-CLIP-B/16 fine-tuned by CLIPSelf (patches), 1024 x 1024: the original's
# config/OV_LVIS/OVDQUO_ViTB16.py.  Published: 29.7 box APr (lvis/bbox_APr) after 35 epochs on 8 GPUs x 4 images.
# Files (docs/detection.md, "OV-DQUO configs"):
#   checkpoints/eva_vitb16_lvis_clipself_patches.pt            CLIPSelf's B/16 (the frozen backbone)
#   data/text_embeddings/ovdquo/lvis_with_background_evaclip_vitb_16.pt + vitb16_object_embbed.pt
#                                                             the original's text embeddings (LVIS names + 'object')
#   data/coco/annotations/OW_LVIS_R3.json                     the original's open-world pseudo boxes
# The released checkpoint evaluates with this config after tools/model_converters/ovdquo_to_declip_mm.py --ema.
_base_ = ['_base_/models/ovdquo_eva02-b16.py', '_base_/datasets/ov_lvis_1024.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='lvis_v1',
    novel_classes='lvis_v1',  # the 337 rare classes: x8 in the test-time query assignment
    text_embeddings='data/text_embeddings/ovdquo/lvis_with_background_evaclip_vitb_16.pt',
    wildcard_embeddings='data/text_embeddings/ovdquo/vitb16_object_embbed.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=100, pool='all'),
    novel_boost=8.0,
    backbone=dict(checkpoint='checkpoints/eva_vitb16_lvis_clipself_patches.pt', dense_mode='maskclip'),
    test_cfg=dict(max_per_img=300))
default_hooks = dict(checkpoint=dict(save_best='lvis/bbox_APr', rule='greater'))
