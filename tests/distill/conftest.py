import pytest


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """The generated tiny dataset (30 images), shared by the tests."""
    from declip_mm.datasets.synthetic_images import generate_synthetic_dataset
    root = str(tmp_path_factory.mktemp('declip_tiny'))
    generate_synthetic_dataset(root, num_images=30, seed=0)
    return root
