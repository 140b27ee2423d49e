# The official DeCLIP optimisation (open_clip training code; docs/method.md section 5) with mmengine's pieces:
# * AdamW, weight decay 0 for parameters with ndim < 2 or a name containing bn / ln / bias / logit_scale
#   (paramwise_cfg: flat_decay_mult covers the 1-d parameters, custom_keys the names);
# * lr(step) = lr * (step + 1) / warmup_iters for step < warmup_iters (LinearLR), then per-iteration cosine to 0
#   over the remaining iterations of max_epochs (CosineAnnealingLR from iteration warmup_iters: DeCLIPCosineLR).
# betas / eps are EVA-CLIP's (0.9, 0.999) / 1e-8; an OpenAI CLIP student uses (0.9, 0.98) / 1e-6.
# A config that changes max_epochs or warmup_iters restates train_cfg / param_scheduler (see declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py).
max_epochs = 6
warmup_iters = 1000

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8),
    paramwise_cfg=dict(flat_decay_mult=0.0,
                       custom_keys=dict(bn=dict(decay_mult=0.0), ln=dict(decay_mult=0.0), bias=dict(decay_mult=0.0),
                                        logit_scale=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / warmup_iters, end_factor=1.0, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='DeCLIPCosineLR', warmup_iters=warmup_iters, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
