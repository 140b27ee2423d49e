# OV-DQUO, OV-LVIS, EVA02-CLIP-L/14-336 fine-tuned by CLIPSelf (patches), 896 x 896: the original's
# config/OV_LVIS/OVDQUO_ViTL14.py.  Published: 39.3 box APr (lvis/bbox_APr) after 35 epochs on 8 GPUs x 4 images.
# Files (docs/detection.md, "OV-DQUO configs"):
#   checkpoints/eva_vitl14_lvis_clipself_patches.pt            CLIPSelf's L/14 (the frozen backbone)
#   data/text_embeddings/ovdquo/lvis_with_background_evaclip_vitl14x336.pt + vitl14_object_embbed.pt
#   data/coco/annotations/OW_LVIS_R3.json
# The released checkpoint evaluates with this config after tools/model_converters/ovdquo_to_declip_mm.py --ema.
_base_ = ['_base_/models/ovdquo_eva02-l14-336.py', '_base_/datasets/ov_lvis_896.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='lvis_v1',
    novel_classes='lvis_v1',
    text_embeddings='data/text_embeddings/ovdquo/lvis_with_background_evaclip_vitl14x336.pt',
    wildcard_embeddings='data/text_embeddings/ovdquo/vitl14_object_embbed.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=100, pool='all'),
    novel_boost=8.0,
    backbone=dict(checkpoint='checkpoints/eva_vitl14_lvis_clipself_patches.pt', dense_mode='maskclip'),
    test_cfg=dict(max_per_img=300))
default_hooks = dict(checkpoint=dict(save_best='lvis/bbox_APr', rule='greater'))
