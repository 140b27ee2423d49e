"""CLIPResNet (OV-DQUO's frozen OpenAI CLIP ModifiedResNet): stages, frozen BN, region prompt, loading errors."""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from torchvision.ops.misc import FrozenBatchNorm2d

from declip_mm.models.backbones.checkpoint import CheckpointError, CheckpointNotFoundError
from declip_mm.models.backbones import CLIPResNet, tiny_resnet_overrides
from declip_mm.registry import DET_MODELS

from .clip_rn_reference import attnpool, random_resnet_state, resnet_stages, save_torchscript_archive

OVR = tiny_resnet_overrides()  # width 8: C3/C4/C5 = 64/128/256 channels, grid 3, 8 heads of 32


def _layout():
    # the OpenAI key layout of this tiny ModifiedResNet (with nn.BatchNorm2d, i.e. num_batches_tracked included)
    from open_clip.modified_resnet import ModifiedResNet
    vis = ModifiedResNet([1, 1, 1, 1], output_dim=32, heads=8, image_size=96, width=8)
    return {'visual.' + k: v for k, v in vis.state_dict().items()}


@pytest.fixture(scope='module')
def rn_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('clip_rn')
    sd = random_resnet_state(_layout(), seed=1)
    arch = save_torchscript_archive(sd, str(d / 'RN50.pt'))  # OpenAI ships TorchScript archives
    prompt = {'attnpool.positional_embedding': 0.2 * torch.randn(10, 256, generator=torch.Generator().manual_seed(2))}
    rp = str(d / 'region_prompt_R50.pth')
    torch.save(prompt, rp)
    return dict(sd=sd, archive=arch, prompt=prompt, region_prompt=rp, dir=d)


def _ref_sd(rn_files, with_prompt=True):
    sd = {k: v.double() for k, v in rn_files['sd'].items()}
    if with_prompt:
        sd['visual.attnpool.positional_embedding'] = rn_files['prompt']['attnpool.positional_embedding'].double()
    return sd


def test_stages_match_plain_resnet_with_frozen_bn(rn_files):
    """C3/C4/C5 = layer2/3/4 of the plain-torch ModifiedResNet with FrozenBatchNorm2d (eps 1e-5) on the archive's
    weights; running variances down to 1e-5 make a wrong eps (or batch statistics) visible."""
    bb = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive']).double()
    img = torch.randn(2, 3, 75, 101, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    outs = bb(img)
    ref = resnet_stages(img, _ref_sd(rn_files, False))
    assert [o.shape for o in outs] == [r.shape for r in ref[1:]]
    assert [o.shape[1] for o in outs] == list(bb.out_channels) == [64, 128, 256] and bb.strides == (8, 16, 32)
    for o, r in zip(outs, ref[1:]):
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10)
    c2 = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive'], out_indices=(0, 3)).double()(img)
    torch.testing.assert_close(c2[0], ref[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c2[1], ref[3], rtol=1e-10, atol=1e-10)


def test_frozen_everything(rn_files):
    """No trainable parameter, every norm a FrozenBatchNorm2d with eps 1e-5, no BatchNorm2d left; train() keeps
    eval mode and a training-mode forward neither changes the output nor any running statistic."""
    bb = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive'])
    assert not any(p.requires_grad for p in bb.parameters())
    norms = [m for m in bb.modules() if isinstance(m, (nn.modules.batchnorm._NormBase, FrozenBatchNorm2d))]
    assert len(norms) == 3 + 4 * 4 and all(type(m) is FrozenBatchNorm2d and m.eps == 1e-5 for m in norms)
    img = torch.randn(2, 3, 64, 64)
    before = bb(img)
    buffers = {k: v.clone() for k, v in bb.state_dict().items()}
    bb.train()
    assert not bb.training and not any(m.training for m in bb.modules())
    for a, b in zip(bb(img), before):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.equal(v, buffers[k]) for k, v in bb.state_dict().items())
    assert bb(img)[0].grad_fn is None


def test_region_prompt_replaces_attnpool_pe(rn_files):
    """The region prompt's positional embedding is the one in the strict-loaded model; the attention pool (mean
    token, all heads) then equals CLIP's formula with the prompt; everything else comes from the CLIP file."""
    bb = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive'], region_prompt=rn_files['region_prompt']).double()
    plain = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive']).double()
    pe = bb.attnpool.positional_embedding
    torch.testing.assert_close(pe, rn_files['prompt']['attnpool.positional_embedding'].double())
    assert not torch.allclose(pe, plain.attnpool.positional_embedding)
    own, other = bb.state_dict(), plain.state_dict()
    assert [k for k in own if not torch.equal(own[k], other[k])] == ['visual.attnpool.positional_embedding']
    x = torch.randn(4, 256, 3, 3, dtype=torch.float64)
    ref = attnpool(x, _ref_sd(rn_files), heads=8)
    torch.testing.assert_close(bb.attnpool(x), ref, rtol=1e-10, atol=1e-10)
    assert (bb.grid_size, bb.embed_dim, bb.attnpool.num_heads) == (3, 32, 8)


@pytest.mark.parametrize('name,channels,grid,dim', [('RN50', (512, 1024, 2048), 7, 1024),
                                                     ('RN50x4', (640, 1280, 2560), 9, 640)])
def test_released_architectures(name, channels, grid, dim):
    """The two OV-COCO CLIPs: C3/C4/C5 widths, attnpool grid g (C5 RoIs g x g = 7 / 9, C4 RoIs 2g = 14 / 18) and
    embedding width; built from the registry as a config would."""
    init_default_scope('mmdet')  # another test may have left mmseg's scope
    bb = DET_MODELS.build(dict(type='CLIPResNet', model_name=name))
    assert (bb.out_channels, bb.grid_size, bb.embed_dim) == (channels, grid, dim)
    assert bb.attnpool.num_heads == channels[-1] // 64


def test_missing_files_are_deferred_then_raise(rn_files, tmp_path):
    """A missing CLIP file (or region prompt) is deferred: building works (tools/test.py with a full checkpoint),
    using the weights raises the not-found error naming the file; a full state dict clears it."""
    gone = str(tmp_path / 'RN50.pt')
    bb = CLIPResNet('RN50', OVR, checkpoint=gone)
    with pytest.raises(CheckpointNotFoundError, match='RN50.pt'):
        bb(torch.randn(1, 3, 64, 64))
    with pytest.raises(CheckpointNotFoundError):
        bb.init_weights()
    bb.load_state_dict(CLIPResNet('RN50', OVR, checkpoint=rn_files['archive']).state_dict())
    bb(torch.randn(1, 3, 64, 64))
    bb = CLIPResNet('RN50', OVR, checkpoint=rn_files['archive'], region_prompt=str(tmp_path / 'rp.pth'))
    with pytest.raises(CheckpointNotFoundError, match='rp.pth'):
        bb(torch.randn(1, 3, 64, 64))


def test_bad_files_name_the_problem(rn_files, tmp_path):
    arch = rn_files['archive']
    wrong = str(tmp_path / 'region_prompt_R50x4.pth')
    torch.save({'attnpool.positional_embedding': torch.zeros(82, 2560)}, wrong)  # RN50x4's shape
    with pytest.raises(CheckpointError, match=r'region_prompt_R50x4.pth.*shape \(82, 2560\)'):
        CLIPResNet('RN50', OVR, checkpoint=arch, region_prompt=wrong)
    foreign = str(tmp_path / 'foreign.pth')
    torch.save({'layer4.0.conv1.weight': torch.zeros(8, 128, 1, 1)}, foreign)
    with pytest.raises(CheckpointError, match='foreign.pth.*unexpected key'):
        CLIPResNet('RN50', OVR, checkpoint=arch, region_prompt=foreign)
    code = str(tmp_path / 'code.pth')
    with open(code, 'wb') as f:  # anything beyond tensors and dicts is refused by weights_only loading
        pickle.dump({'attnpool.positional_embedding': pickle.loads}, f)
    with pytest.raises(CheckpointError, match='code.pth'):
        CLIPResNet('RN50', OVR, checkpoint=arch, region_prompt=code)
    vit = str(tmp_path / 'vit.pt')
    torch.save({'visual.conv1.weight': torch.zeros(64, 3, 16, 16), 'visual.class_embedding': torch.zeros(64)}, vit)
    with pytest.raises(CheckpointError, match='vit.pt.*no visual.layer4'):
        CLIPResNet('RN50', OVR, checkpoint=vit)
    sd = dict(rn_files['sd'])
    sd.pop('visual.layer3.0.conv2.weight')
    partial = str(tmp_path / 'partial.pt')
    torch.save(sd, partial)
    with pytest.raises(CheckpointError, match='missing 1 weights.*layer3.0.conv2.weight'):
        CLIPResNet('RN50', OVR, checkpoint=partial)
    with pytest.raises(ValueError, match='region_prompt needs'):
        CLIPResNet('RN50', OVR, region_prompt=rn_files['region_prompt'])
    with pytest.raises(ValueError, match='ResNet config'):
        CLIPResNet('ViT-B-16')
    with pytest.raises(ValueError, match='out_indices'):
        CLIPResNet('RN50', OVR, out_indices=(4, ))
