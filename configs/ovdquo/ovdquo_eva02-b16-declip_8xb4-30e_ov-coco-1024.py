# OV-DQUO + DeCLIP ViT-B/16, OV-COCO, 1024 x 1024.  Paper (DeCLIP, OV-DQUO): 46.1 AP50-novel (coco/novel_ap50).
# The original has no ViT OV-COCO recipe (its released code cannot run one; docs/detection.md, "OV-COCO with a
# ViT"): this config takes its OV-COCO training (30 epochs, the 48 base classes + the wildcard as the vocabulary
# of every batch, open-world pseudo boxes OW_COCO_R2.json, uniform sampling, novel boost x3, 100 detections per
# image, first evaluated epoch 15) and its ViT-B/16 model, optimisation and input (long side 1024 padded to
# 1024 x 1024, ImageNet mean / std; _base_/datasets/ov_coco_1024.py).  Text: EVA02-CLIP-B/16's text tower:
#   python tools/gen_text_embeddings.py --model EVA02-B-16 --checkpoint checkpoints/EVA02_CLIP_B_psz16_s8B.pt \
#       --classes ov_coco --extra-classes object --out data/text_embeddings/ov_coco_object_eva02-b16.pt
_base_ = ['_base_/models/ovdquo_eva02-b16.py', '_base_/datasets/ov_coco_1024.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(
    data_preprocessor=_base_.data_preprocessor,
    class_names='ov_coco',  # the 65 OV-COCO classes (labels of the dataset); 17 novel
    novel_classes='ov_coco',
    text_embeddings='data/text_embeddings/ov_coco_object_eva02-b16.pt',
    category_sampler=dict(type='OVCategorySampler', num_sampled=None, pool='base'),  # 48 base + wildcard
    novel_boost=3.0,
    backbone=dict(checkpoint='checkpoints/declip_eva02_b16.pt', dense_mode='csa'),
    test_cfg=dict(max_per_img=100))
train_cfg = dict(max_epochs=30, val_begin=15)
default_hooks = dict(checkpoint=dict(save_best='coco/novel_ap50', rule='greater'))
