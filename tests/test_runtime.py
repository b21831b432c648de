import torch

from twostream_das.config import Precision, load_config
from twostream_das.runtime import (
    amp_dtype,
    autocast,
    derive_seed,
    inference_dtype,
    make_generator,
    resolve_device,
)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "video_1", 0) == derive_seed(0, "video_1", 0)
    seeds = {derive_seed(s, name, o) for s in (0, 1) for name in ("a", "b") for o in (0, 1)}
    assert len(seeds) == 8
    # fixed value: the same on every machine and Python (unlike hash())
    assert derive_seed(1, "x") == 2266704258353715629


def test_base_seeds_change_the_low_32_bits():
    """The CPU generator (mt19937) keeps only the low 32 bits of a seed."""
    low = {derive_seed(s, "init") & 0xFFFFFFFF for s in range(64)}
    assert len(low) == 64


def test_different_base_seeds_give_different_cpu_draws():
    draws = [torch.rand(4, generator=make_generator(derive_seed(s, "init"))) for s in (0, 1, 2)]
    assert not torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[1], draws[2])


def test_generators_reproduce():
    a = torch.randn(3, generator=make_generator(7))
    b = torch.randn(3, generator=make_generator(7))
    assert torch.equal(a, b)


def test_cpu_training_has_no_autocast():
    assert resolve_device("cpu").type == "cpu"
    assert amp_dtype(torch.device("cpu"), enabled=True) is None


def test_inference_precision_is_its_own_setting():
    cpu = torch.device("cpu")
    assert inference_dtype(cpu, "fp32") is None
    assert inference_dtype(cpu, Precision.BF16) is torch.bfloat16
    with autocast(cpu, inference_dtype(cpu, "bf16")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    with autocast(cpu, None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32
    # train.amp does not reach inference: the default config infers in fp32
    assert load_config("demo", ["train.amp=true"]).eval.precision is Precision.FP32
