"""The docs point only at files inside the repository."""
import glob
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEXT_FILES = ([osp.join(REPO, 'README.md')] + glob.glob(osp.join(REPO, 'docs', '*.md'))
              + glob.glob(osp.join(REPO, 'declip_mm', '**', '*.py'), recursive=True)
              + glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
              + glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))


def test_no_reference_to_files_users_do_not_have():
    bad = []
    for path in TEXT_FILES:
        text = open(path, encoding='utf-8').read()
        for pat in ('shared/docs', '../shared', 'fvit.md', 'catseg.md', 'declip_method.md', 'ovdquo.md'):
            if pat in text:
                bad.append(f'{osp.relpath(path, REPO)}: {pat}')
    assert not bad, bad


def test_markdown_links_and_doc_paths_resolve():
    missing = []
    for path in [osp.join(REPO, 'README.md')] + glob.glob(osp.join(REPO, 'docs', '*.md')):
        text = open(path, encoding='utf-8').read()
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
            if not target.startswith(('http://', 'https://')) and \
                    not osp.exists(osp.join(osp.dirname(path), target)):
                missing.append(f'{osp.relpath(path, REPO)} -> {target}')
    for path in TEXT_FILES:
        for target in re.findall(r'\bdocs/[\w.-]+\.md', open(path, encoding='utf-8').read()):
            if not osp.isfile(osp.join(REPO, target)):
                missing.append(f'{osp.relpath(path, REPO)} -> {target}')
    assert not missing, missing
