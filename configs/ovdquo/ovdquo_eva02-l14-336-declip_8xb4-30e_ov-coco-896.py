# OV-DQUO + DeCLIP ViT-L/14-336, OV-COCO, 896 x 896.  Paper (DeCLIP, OV-DQUO): 48.3 AP50-novel (coco/novel_ap50).
# No ViT OV-COCO recipe exists in the original: its OV-COCO training (30 epochs, 48 base classes + wildcard,
# OW_COCO_R2.json, uniform sampling, novel boost x3, 100 detections, first evaluated epoch 15) with its ViT-L/14
# model, optimisation and input (896 x 896, ImageNet mean / std; _base_/datasets/ov_coco_896.py); see
# docs/detection.md, "OV-COCO with a ViT".  Text: EVA02-CLIP-L/14-336's text tower:
#   python tools/gen_text_embeddings.py --model EVA02-L-14-336 --checkpoint checkpoints/EVA02_CLIP_L_336_psz14_s6B.pt \
#       --classes ov_coco --extra-classes object --out data/text_embeddings/ov_coco_object_eva02-l14-336.pt
_base_ = ['_base_/models/ovdquo_eva02-l14-336.py', '_base_/datasets/ov_coco_896.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='ov_coco',
    novel_classes='ov_coco',
    text_embeddings='data/text_embeddings/ov_coco_object_eva02-l14-336.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=None, pool='base'),
    novel_boost=3.0,
    backbone=dict(checkpoint='checkpoints/declip_eva02_l14_336.pt', dense_mode='csa'),
    test_cfg=dict(max_per_img=100))
train_cfg = dict(max_epochs=30, val_begin=15)
default_hooks = dict(checkpoint=dict(save_best='coco/novel_ap50', rule='greater'))
