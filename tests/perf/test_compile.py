"""Optional torch.compile (model.compile / CompileModulesHook): compiled and eager outputs agree."""
import pytest
import torch

from perf_helpers import build_tiny_distiller, tiny_batch

# inductor generates and compiles C++ on CPU (slow on a shared 2-core box); aot_eager runs the same dynamo graph
# capture + AOT autograd without code generation. DECLIP_TEST_INDUCTOR=1 runs the test with inductor.
BACKEND = 'inductor' if __import__('os').environ.get('DECLIP_TEST_INDUCTOR') == '1' else 'aot_eager'


def test_compile_blocks_only_and_idempotent():
    from declip_mm.models.compile import compile_module
    model = build_tiny_distiller('qq')
    n = compile_module(model.student, dict(backend=BACKEND))
    assert n == model.student.num_blocks  # every transformer block, not the decoupled parts
    assert compile_module(model.student, dict(backend=BACKEND)) == 0
    head = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert compile_module(head) == 1  # no block list: the module itself
    assert set(model.student.state_dict()) == set(build_tiny_distiller('qq').student.state_dict())


def test_compiled_distiller_matches_eager():
    torch._dynamo.reset()
    eager = build_tiny_distiller('csa').train()
    comp = build_tiny_distiller('csa', compile=dict(backend=BACKEND)).train()
    comp.load_state_dict(eager.state_dict())
    data = eager.data_preprocessor(tiny_batch(), True)
    res = {}
    for name, m in (('eager', eager), ('compiled', comp)):
        losses = m.loss(data['inputs'], data['data_samples'])
        (losses['loss_content'] + losses['loss_context']).backward()
        grad = torch.cat([p.grad.flatten() for p in m.student.parameters() if p.grad is not None])
        res[name] = (losses, grad)
    (le, ge), (lc, gc) = res['eager'], res['compiled']
    for k in ('loss_content', 'loss_context'):
        assert torch.allclose(le[k], lc[k], rtol=1e-4, atol=1e-6), (k, le[k], lc[k])
    assert torch.allclose(ge, gc, rtol=1e-3, atol=1e-6)
    # the compiled blocks really ran through dynamo
    assert any(getattr(b, '_compiled_call_impl', None) is not None for b in comp.student._tower.blocks)


def test_compile_hook_compiles_named_parts():
    from types import SimpleNamespace
    from declip_mm.engine.hooks.compile_hook import CompileModulesHook
    model = build_tiny_distiller('qq')
    logs = []
    runner = SimpleNamespace(model=model, logger=SimpleNamespace(info=logs.append))
    CompileModulesHook(modules=['vfm'], compile_cfg=dict(backend=BACKEND)).before_run(runner)
    blocks = model.vfm.model.blocks
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert all(b._compiled_call_impl is None for b in model.student._tower.blocks)
    with pytest.raises(AttributeError, match='no part'):
        CompileModulesHook(modules=['decode_head']).before_run(runner)
