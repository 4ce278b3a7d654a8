"""How the model is spread over ranks: replicated (one process or DDP) or sharded (FSDP).

FSDP (torch's `fully_shard`) wraps every decoder layer and every ViT layer as a
unit, then the loss module as the root, with bf16 parameters and fp32 gradient
reduction when training in bf16; activation checkpointing recomputes each
decoder layer in the backward pass. State always moves through full, FQN-keyed
state dicts (gathered to CPU), so a checkpoint written under one strategy
resumes under another and loads with no training code at all. Frozen teachers
are never wrapped: they only run forward, whole, on every rank.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.nn.parallel import DistributedDataParallel as DDP

from .dist import DistInfo

STRATEGIES = ("ddp", "fsdp")
GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
LOAD = StateDictOptions(full_state_dict=True)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The FSDP units below the root: decoder layers, then ViT layers."""
    units = list(model.language_model.model.layers)
    vit = getattr(model, "vit_model", None)
    if vit is not None:
        units += list(vit.vision_model.encoder.layers)
    return units


def fully_shard_model(root: nn.Module, model: nn.Module, bf16: bool) -> None:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
        else MixedPrecisionPolicy()
    for unit in shard_units(model):
        fully_shard(unit, mp_policy=mp)
    fully_shard(root, mp_policy=mp)


def wrap(loss_module: nn.Module, model: nn.Module, ema_model: nn.Module, strategy: str, dist: DistInfo,
         bf16: bool, activation_checkpointing: bool) -> nn.Module:
    """Return what the training step calls. Under FSDP the EMA copy is sharded the same
    way (its update stays local to each rank's shard)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {strategy!r}; choose from {STRATEGIES}")
    model.language_model.model.gradient_checkpointing = activation_checkpointing
    if dist.world == 1:
        return loss_module
    if strategy == "ddp":
        return DDP(loss_module, find_unused_parameters=True)
    fully_shard_model(loss_module, model, bf16)
    fully_shard_model(ema_model, ema_model, bf16=False)
    return loss_module


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


def full_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer as a full CPU tensor (a collective under FSDP)."""
    return get_model_state_dict(module, options=GATHER)


def load_full_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    set_model_state_dict(module, state, options=LOAD)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return get_optimizer_state_dict(model, optimizer, options=GATHER)


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a gathered optimizer state. Parameters that never had a gradient (e.g. the unused
    DIGA projector during GDUF) have no state yet, so only the parameter lists must agree."""
    saved = [list(g["params"]) for g in state["param_groups"]]
    names = {id(p): n for n, p in model.named_parameters()}
    current = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    if saved != current:
        raise ValueError("the checkpoint's optimizer trains different parameters than this run")
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True, strict=False))
