"""Sparse layers of K stacked models: a fixed pattern of kept weights as one block-diagonal CSR matrix,
and the matmul that trains through it (forward: one CSR product; backward: one CSR product for the input
gradient and an SDDMM for the kept weights' gradient, nothing for the pruned ones).

Why: IMP's later levels keep 1-15% of Lenet's weights, and dense kernels pay for all of them. The
stacked engine trains Lenet faster this way at late levels and slower near 21% density (measured in
docs/speed.md, data in docs/results/bench/sparse/); batched.SPARSE_BELOW sets where it switches.
"""

from __future__ import annotations

import warnings

import torch

# CSR support is marked beta; the patterns below are built here and valid by construction
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


class Pattern:
    """The fixed sparsity pattern of one layer of K stacked models as a block-diagonal matrix: block k is
    model k's weight ``[out, in]`` (the transpose of the stack's ``[in, out]``) kept where its mask is 1.
    ``flat`` lists the kept entries' positions in the flattened stack in CSR order; ``t_*`` is the
    transposed matrix's CSR, ``perm`` its entries' positions in ``flat``'s order."""

    def __init__(self, mask: torch.Tensor):
        k, n_in, n_out = mask.shape
        kept = mask.permute(0, 2, 1) != 0                                # [K, out, in]: rows of the blocks
        km, o, i = kept.nonzero(as_tuple=True)                           # row-major = CSR order
        self.flat = km * (n_in * n_out) + i * n_out + o                  # into the [K, in, out] stack
        self.shape, self.t_shape, self.stack_shape = (k * n_out, k * n_in), (k * n_in, k * n_out), mask.shape
        self.crow = _crow(km * n_out + o, k * n_out)
        self.col = km * n_in + i
        position = torch.full(kept.shape, -1, dtype=torch.long, device=mask.device)
        position[km, o, i] = torch.arange(len(km), device=mask.device)
        kt, it, ot = (mask != 0).nonzero(as_tuple=True)                  # [K, in, out] row-major = transposed CSR
        self.perm = position[kt, ot, it]
        self.t_crow = _crow(kt * n_in + it, k * n_in)
        self.t_col = kt * n_out + ot
        self.zeros = torch.zeros(len(km), dtype=mask.dtype, device=mask.device)
        self.local = self.flat - km * (n_in * n_out)                     # within model km's [in, out]
        self.offsets = _crow(km, k).tolist()                             # model k's entries: offsets[k]:offsets[k+1]


def _crow(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    counts = torch.bincount(rows, minlength=n_rows)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


class BlockSparseMatmul(torch.autograd.Function):
    """Model k's ``h[k] @ W_k`` for ``h`` [K, B, in], where ``values`` holds the kept entries of the K
    weights ``[in, out]`` in the pattern's order: one CSR matmul of the block-diagonal weight forward, one
    for the input gradient, and a sampled matmul (SDDMM) for the gradient of the kept entries only."""

    @staticmethod
    def forward(ctx, h, values, pattern):
        k, b, n_in = h.shape
        x = h.transpose(1, 2).reshape(k * n_in, b)                      # model k's inputs^T, stacked
        y = torch.sparse_csr_tensor(pattern.crow, pattern.col, values, pattern.shape, check_invariants=False) @ x
        ctx.save_for_backward(x, values)
        ctx.pattern = pattern
        return y.view(k, -1, b).transpose(1, 2)

    @staticmethod
    def backward(ctx, grad):
        x, values = ctx.saved_tensors
        pattern = ctx.pattern
        k, b, n_out = grad.shape
        g = grad.transpose(1, 2).reshape(k * n_out, b)
        grad_h = None
        if ctx.needs_input_grad[0]:
            w_t = torch.sparse_csr_tensor(pattern.t_crow, pattern.t_col, values.index_select(0, pattern.perm),
                                          pattern.t_shape, check_invariants=False)
            grad_h = (w_t @ g).view(k, -1, b).transpose(1, 2)
        empty = torch.sparse_csr_tensor(pattern.crow, pattern.col, pattern.zeros, pattern.shape, check_invariants=False)
        grad_values = torch.sparse.sampled_addmm(empty, g, x.t(), beta=0.0).values()
        return grad_h, grad_values, None
