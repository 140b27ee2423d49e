# CAT-Seg schedule: AdamW 2e-4 / wd 1e-4, CLIP (both towers) lr x0.01, norm layers wd 0, grad-clip 0.01 (full-model
# L2 norm), cosine to 0 without warmup, 80k iterations, total batch 4, fp32 + TF32 in the official recipe.
# Here bf16 autocast (fp16 + loss scaling on GPUs without bf16, see declip_mm/engine/amp.py); the official fp32:
# --cfg-options optim_wrapper.type=OptimWrapper (tools/train.py drops the AMP-only keys); fp16 + loss scaling:
# catseg_vitb16_4xb1-amp-80k_coco-stuff171-train-384.py.
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={'backbone': dict(lr_mult=0.01), 'text_encoder': dict(lr_mult=0.01)}))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=80000, eta_min=0.0, by_epoch=False, begin=0, end=80000)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=80000)
