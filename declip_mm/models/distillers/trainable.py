"""The official DeCLIP trainable set of the student (method doc section 5)."""
from typing import List, Set, Union

from declip_mm.models.backbones import DECOUPLED_MODES

# last-block attention parts the loss never reaches, per dense mode (frozen to keep DDP free of unused params);
# qq -> K (official), kk -> Q (official); vv / maskclip use neither Q nor K.
UNUSED_LAST_PARTS = dict(qq=('k', ), kk=('q', ), vv=('q', 'k'), csa=(), all=(), maskclip=('q', 'k'),
                         maskclip_cls=('q', 'k'), vanilla=())


def official_trainable_names(backbone, dense_mode: str, unlocked_blocks: Union[str, int] = 'all') -> List[str]:
    """Names of the student parameters trained by the official recipe.

    All (or the last ``unlocked_blocks``) image blocks are trained; the stem (patch/cls/pos embeds, ln_pre), the
    final norm and head are frozen; in the decoupled modes the last block's FFN (norm2 + mlp) is frozen (its output
    is never used), and the last block's unused attention parts (qq: K, kk: Q, vv: Q and K) are frozen.
    """
    if dense_mode not in UNUSED_LAST_PARTS:
        raise ValueError(f'unknown dense mode {dense_mode!r}; choose one of {sorted(UNUSED_LAST_PARTS)}')
    nb = backbone.num_blocks
    if unlocked_blocks in (None, 'all'):
        first = 0
    else:
        n = int(unlocked_blocks)
        if not 0 <= n <= nb:
            raise ValueError(f'unlocked_blocks must be in [0, {nb}] or "all", got {unlocked_blocks!r}')
        first = nb - n
    train: Set[str] = set()
    for i in range(first, nb):
        train |= set(backbone.block_param_names(i))
    frozen: Set[str] = set(backbone.stem_param_names()) | set(backbone.head_param_names())
    last = nb - 1
    if dense_mode in DECOUPLED_MODES:
        frozen |= set(backbone.block_param_names(last, 'ffn'))  # norm2 / ln_2 + mlp
    unused = UNUSED_LAST_PARTS[dense_mode]
    used = [p for p in ('q', 'k', 'v') if p not in unused]
    for part in unused:
        names = set(backbone.block_param_names(last, part))
        shared = names & {n for u in used for n in backbone.block_param_names(last, u)}
        if names and names == shared:
            raise ValueError(f'dense_mode {dense_mode!r} freezes the last block\'s {part.upper()} projection, but it '
                             f'is packed with the used projections ({sorted(shared)}); build the student with '
                             f'split_qkv=True (OpenAI family)')
        frozen |= names - shared  # a packed bias shared with used projections stays trainable
    all_names = [n for n, _ in backbone.named_parameters()]
    return [n for n in all_names if n in train and n not in frozen]


def apply_trainable(backbone, names) -> None:
    """Set ``requires_grad`` True exactly for ``names`` (everything else frozen)."""
    names = set(names)
    for n, p in backbone.named_parameters():
        p.requires_grad_(n in names)
