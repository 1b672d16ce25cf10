"""TabularResNet: a residual MLP encoder for rows of mixed numeric and categorical features.

Each categorical column gets its own embedding table; numeric columns arrive already
normalised (see ``obslab.features``). The concatenation is projected to ``d_model``, passed
through pre-norm residual blocks (Linear-GELU-Dropout-Linear plus the identity), and projected
to a ``d_embedding``-dimensional vector: the embedding that detection works on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ResidualBlock", "TabularResNet"]


class ResidualBlock(nn.Module):
    def __init__(self, d_model: int, d_hidden: int, dropout: float, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_hidden, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the identity path lets gradients and the raw signal pass deep blocks unchanged
        # (residual=False exists only to show what happens without it)
        out = self.ff(self.norm(x))
        return x + out if self.residual else out


class TabularResNet(nn.Module):
    def __init__(
        self,
        n_numeric: int,
        cat_cardinalities: Sequence[int] = (),
        d_model: int = 64,
        n_blocks: int = 3,
        d_embedding: int = 32,
        d_cat: int = 8,
        d_hidden: int | None = None,
        dropout: float = 0.1,
        residual: bool = True,
    ):
        super().__init__()
        self.n_numeric = int(n_numeric)
        self.cat_cardinalities = [int(c) for c in cat_cardinalities]
        self.config = dict(
            n_numeric=self.n_numeric,
            cat_cardinalities=self.cat_cardinalities,
            d_model=d_model,
            n_blocks=n_blocks,
            d_embedding=d_embedding,
            d_cat=d_cat,
            d_hidden=d_hidden,
            dropout=dropout,
            residual=residual,
        )
        # +1 row per table: index 0 is reserved for unseen / missing categories
        self.cat_embeddings = nn.ModuleList(nn.Embedding(c + 1, d_cat) for c in self.cat_cardinalities)
        d_in = self.n_numeric + d_cat * len(self.cat_cardinalities)
        self.input = nn.Linear(d_in, d_model)
        self.blocks = nn.Sequential(
            *[ResidualBlock(d_model, d_hidden or 2 * d_model, dropout, residual) for _ in range(n_blocks)]
        )
        self.out_norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, d_embedding)

    @property
    def d_embedding(self) -> int:
        return self.output.out_features

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x_num]
        if self.cat_embeddings:
            if x_cat is None:
                raise ValueError("this model has categorical inputs: pass x_cat")
            parts += [emb(x_cat[:, i]) for i, emb in enumerate(self.cat_embeddings)]
        h = self.input(torch.cat(parts, dim=1))
        return self.output(self.out_norm(self.blocks(h)))
