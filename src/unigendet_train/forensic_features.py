"""Features of views of training images through the recipe's frozen networks, cached per backbone and
view recipe (`views.ViewTable`), shared out over the ranks under torch.distributed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unigendet.data.augment import make_view
from unigendet.data.degrade import get_degradation
from unigendet.data.imageio import open_image
from unigendet.data.records import Record

from .dist import broadcast_object, gather_objects, rank_and_world
from .forensic_config import CHUNK, ForensicConfig, untrained
from .views import ViewTable, recipe_key, view_key, view_rng


class ViewFeatures:
    """Features of views of images, one cache file per (backbone, view recipe): rows keyed by
    image path and view index, so recipes that share a backbone and views share the work.
    `protocol` (a `degrade.get_degradation` spec, e.g. "circulate") is applied to the plain
    images first: how a test protocol sees them."""

    def __init__(self, cfg: ForensicConfig, protocol: str = ""):
        self.cfg, self.protocol = cfg, protocol
        self.degrade = get_degradation(protocol)
        self.detector = untrained(cfg)

    def key(self, backbone: str, augmented: bool) -> str:
        # "recon" stays in the key (always False) so that tables written before it was dropped stay valid
        recipe = {"backbone": backbone, "path": self.cfg.backbone_path, "seed": self.cfg.seed,
                  "recon": False, "view": self.cfg.view().key() if augmented else "centre"}
        if self.protocol and not augmented:
            recipe["protocol"] = self.protocol
        return recipe_key(recipe)

    def image(self, record: Record, view: int, augmented: bool):
        img = open_image(record.path)
        if not augmented:
            return self.degrade(img)
        return make_view(img, self.cfg.view(), view_rng(self.cfg.seed, record.path, view))

    def __call__(self, records: list[Record], views: int, augmented: bool) -> np.ndarray:
        """(len(records) * views, D): view v of record i at row i * views + v. A view missing from
        some backbone's table is made once and passed through every backbone that lacks it. Under
        torch.distributed the missing views are shared out over the ranks; rank 0 keeps the tables
        (the cache is its own) and every rank gets the whole result."""
        keys = [view_key(r.path, v) for r in records for v in range(views)]
        by_key = dict(zip(keys, [(r, v) for r in records for v in range(views)], strict=True))
        backbones = self.detector.backbones()
        if not keys:
            return np.empty((0, sum(model.feature_dim for model, _ in backbones)), dtype=np.float32)
        rank, world = rank_and_world()
        tables = [ViewTable(Path(self.cfg.cache) / f"{name}-{self.key(name, augmented)}.safetensors", ("rows",))
                  for name in self.detector.backbone_names] if rank == 0 else []
        # (view, the backbones whose tables lack it), as rank 0's tables say
        plan = broadcast_object([(k, [b for b, t in enumerate(tables) if k not in t]) for k in dict.fromkeys(keys)
                                 if any(k not in t for t in tables)])
        for s in range(0, len(plan), CHUNK * world):
            mine = plan[s : s + CHUNK * world][rank::world]
            for done in gather_objects(self.compute(mine, by_key, augmented)):
                for b, (made, rows) in enumerate(done):
                    if rank == 0 and made:
                        tables[b].add(made, rows=rows)
                        tables[b].checkpoint()
        if rank:
            return broadcast_object(None)
        for table in tables:
            table.save()
        return broadcast_object(np.concatenate([table.rows(keys)["rows"].numpy() for table in tables], axis=1))

    @torch.no_grad()
    def compute(self, plan: list[tuple[str, list[int]]], by_key: dict, augmented: bool) -> list:
        """For each backbone, (the views it was run on, their features) for a plan's views."""
        images = [self.image(*by_key[k], augmented) for k, _ in plan]
        out = []
        for b, (model, pre) in enumerate(self.detector.backbones()):
            need = [j for j, (_, lacking) in enumerate(plan) if b in lacking]
            x = torch.stack([pre(images[j]) for j in need]).to(model.device) if need else None
            out.append(([plan[j][0] for j in need], model(x).float().cpu() if need else None))
        return out
