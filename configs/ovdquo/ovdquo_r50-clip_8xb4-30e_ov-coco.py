# OV-DQUO on a frozen OpenAI CLIP RN50 with CORA's region prompt, OV-COCO: the original's config/OV_COCO/OVDQUO_RN50.py
# and scripts/OV-COCO/distrain_RN50.sh (8 GPUs x 4 images, --amp, evaluation from epoch 15).  Released model: 39.2
# AP50-novel (coco/novel_ap50).  Model: _base_/models/ovdquo_clip-r50.py; data: the original's OV-COCO ResNet recipe
# (multi-scale 480..800 / crop, CLIP mean / std, batch padded to its largest image, OW_COCO_R2.json pseudo boxes;
# _base_/datasets/ov_coco_ms_480_800.py); schedule: the shared OV-DQUO one (AdamW 1e-4, wd 1e-4, clip 0.1, constant
# LR, EMA 0.99996, bf16 AMP) with 30 epochs.  The CLIP tower is frozen and nothing else sits in the backbone (the
# original's lr_backbone = 0), so the ViT pyramid's lr multiplier of the schedule is dropped.
# Files: checkpoints/RN50.pt (OpenAI), checkpoints/region_prompt_R50.pth (CORA), and the text embeddings:
#   python tools/gen_text_embeddings.py --model RN50 --checkpoint checkpoints/RN50.pt --classes ov_coco \
#       --extra-classes object --templates imagenet --no-this-is --context-length 15 \
#       --out data/text_embeddings/ov_coco_object_rn50_imagenet-ctx15.pt
_base_ = ['_base_/models/ovdquo_clip-r50.py', '_base_/datasets/ov_coco_ms_480_800.py',
          '_base_/schedules/ovdquo_adamw-constant_ema_35e.py']
model = dict(data_preprocessor=_base_.data_preprocessor)
train_cfg = dict(max_epochs=30, val_begin=15)
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))  # every trainable parameter at lr 1e-4
default_hooks = dict(checkpoint=dict(save_best='coco/novel_ap50', rule='greater'))
