"""NF4 from scratch: the 4-bit NormalFloat data type of QLoRA (Dettmers et al., 2023), as bitsandbytes stores it.

A pretrained weight matrix is close to normally distributed, so the 16 levels of a 4-bit code are put at
**quantiles of the standard normal** instead of on a uniform grid: every level is used about equally often.
Quantization is **blockwise**: each block of 64 consecutive weights (row-major, flattened) is divided by its
own absolute maximum (``absmax``) so it lies in [-1, 1], and each value becomes the index of the nearest level::

    codes[i] = argmin_j |w[i] / absmax[block(i)] - NF4[j]|          (4 bits)
    w_hat[i] = NF4[codes[i]] * absmax[block(i)]

Two codes are packed per byte, the first in the high nibble (bitsandbytes' layout). The scales cost
32 bits per 64 weights (0.5 bit/weight); **double quantization** quantizes them in turn: subtract their mean
(``offset``), then 8-bit blockwise quantization (block 256) with bitsandbytes' *dynamic* 8-bit code, leaving
8 bits per 64 weights plus one float32 per 16,384 weights: 4.127 bits per weight in all.

Everything here reproduces ``bitsandbytes.functional.quantize_4bit(..., quant_type="nf4",
compress_statistics=True)`` and ``dequantize_4bit`` exactly (codes bit for bit, values to float round-off);
``tests/test_qlora.py`` checks it. ::

    from llmlab.finetune.nf4 import quantize_nf4, dequantize_nf4
    q = quantize_nf4(w)                 # NF4Weight: packed uint8 codes + (double-quantized) scales
    w_hat = dequantize_nf4(q)           # same shape and dtype as w
    q.nbytes / (2 * w.numel())          # ~0.258: the bytes of NF4 vs bf16
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["NF4Weight", "blockwise_dequantize", "blockwise_quantize", "dynamic_map", "dequantize_nf4", "fp4_levels",
           "int4_levels", "nf4_bits_per_param", "nf4_levels", "pack_4bit", "quantize_nf4", "unpack_4bit"]

# bitsandbytes' create_normal_map(offset=0.9677083): the outermost quantile, chosen so that the levels
# match the average of the two tails of a 4-bit quantile code (QLoRA, appendix E)
NF4_OFFSET = 0.9677083
NF4_ZERO = 7  # the index of the level 0.0 (7 negative levels below it)


def nf4_levels(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels, ascending, in [-1, 1], with an exact zero.

    8 positive levels are normal quantiles at ``linspace(offset, 0.5, 9)[:-1]`` and 7 negative ones at
    ``linspace(offset, 0.5, 8)[:-1]`` (mirrored), plus 0: asymmetric so that zero is representable
    (padding, ReLU-like zeros) with 4 bits. Divided by the largest, so the extremes are exactly -1 and 1.
    """
    ndtri = torch.special.ndtri  # the inverse of the standard normal CDF
    pos = ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return (levels / levels.abs().max()).float()


def fp4_levels() -> torch.Tensor:
    """bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit; the subnormal replaced by 1/192), ascending."""
    pos = torch.tensor([0.0, 1 / 192, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0])
    return torch.cat([-pos[1:].flip(0), pos])  # 15 distinct values (bitsandbytes also stores a -0)


def int4_levels() -> torch.Tensor:
    """Symmetric absmax int4: round(x / absmax * 7) in [-7, 7], i.e. the 15 levels k / 7."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def dynamic_map() -> torch.Tensor:
    """bitsandbytes' signed *dynamic* 8-bit code (``create_dynamic_map()``; Dettmers, 2015), ascending.

    A dynamic exponent: for e = 0..6 there are 2**e linearly spaced fractions (interval midpoints of
    linspace(0.1, 1, 2**e + 1)) times 10**(e - 6), each with both signs; plus 0 and 1: 256 values, dense
    near zero and sparse near one. Used for the second level of double quantization (and 8-bit Adam).
    """
    data = []
    for e in range(7):
        bounds = torch.linspace(0.1, 1, 2 ** e + 1, dtype=torch.float32)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        data += ((10 ** (e - 6)) * means).tolist() + (-(10 ** (e - 6)) * means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (256 - len(data))  # unused slots (none for 8 bits: 2 * 127 + 2 = 256)
    return torch.tensor(data, dtype=torch.float32).sort().values


def blockwise_quantize(x: torch.Tensor, levels: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, absmax)``: x flattened into blocks of ``blocksize`` (the last may be short), each scaled by its
    absmax into [-1, 1] and rounded to the nearest of the ascending ``levels`` (ties between two levels go to
    the upper one, as torch.bucketize at the midpoints does). codes: int64 (numel,), absmax: float32 (blocks,)."""
    flat = x.reshape(-1).float()
    n = flat.numel()
    n_blocks = -(-n // blocksize)
    padded = torch.zeros(n_blocks * blocksize, dtype=torch.float32, device=flat.device)
    padded[:n] = flat  # zeros do not change a block's absmax
    blocks = padded.view(n_blocks, blocksize)
    absmax = blocks.abs().amax(dim=1)  # (blocks,)
    scaled = (blocks * (1.0 / absmax.clamp(min=1e-38))[:, None]).clamp(-1, 1).reshape(-1)[:n]
    midpoints = (levels[:-1] + levels[1:]) / 2  # nearest level = how many midpoints lie below
    return torch.bucketize(scaled, midpoints.to(scaled.device)), absmax


def blockwise_dequantize(codes: torch.Tensor, absmax: torch.Tensor, levels: torch.Tensor, blocksize: int) -> torch.Tensor:
    """``levels[codes] * absmax[block]``, flat float32 (the inverse of :func:`blockwise_quantize` up to rounding)."""
    n = codes.numel()
    block = torch.arange(n, device=codes.device) // blocksize
    return levels.to(codes.device)[codes.reshape(-1).long()] * absmax[block]


def pack_4bit(codes: torch.Tensor, pad: int = NF4_ZERO) -> torch.Tensor:
    """Two 4-bit codes per byte, the first in the high nibble; an odd length is padded with the code ``pad``
    (bitsandbytes pads the scaled values with 0.0, whose NF4 code is 7). (ceil(n/2), 1) uint8."""
    c = codes.reshape(-1).to(torch.uint8)
    if c.numel() % 2:
        c = torch.cat([c, c.new_full((1,), pad)])
    return ((c[0::2] << 4) | c[1::2]).unsqueeze(1)


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` codes of :func:`pack_4bit`'s bytes, int64."""
    p = packed.reshape(-1).long()
    return torch.stack([p >> 4, p & 0xF], dim=1).reshape(-1)[:n]


@dataclass
class NF4Weight:
    """An NF4-quantized tensor, with bitsandbytes' ``QuantState`` fields.

    Without double quantization ``absmax`` is float32 (one per block). With it, ``absmax`` holds uint8 codes of
    ``absmax - offset`` in the dynamic 8-bit map, with ``absmax2`` (float32, one per ``blocksize2`` scales).
    """

    packed: torch.Tensor  # (ceil(n / 2), 1) uint8
    absmax: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    blocksize: int = 64
    offset: torch.Tensor | None = None  # double quantization only
    absmax2: torch.Tensor | None = None
    blocksize2: int = 256

    @property
    def double_quant(self) -> bool:
        return self.offset is not None

    def scales(self) -> torch.Tensor:
        """The float32 absmax of every 64-block (dequantized first if double-quantized)."""
        if not self.double_quant:
            return self.absmax
        return blockwise_dequantize(self.absmax, self.absmax2, dynamic_map(), self.blocksize2) + self.offset

    @property
    def nbytes(self) -> int:
        """Storage of the codes and the scales (the two shared code tables, 16 + 256 floats, not counted)."""
        tensors = [self.packed, self.absmax] + ([self.offset, self.absmax2] if self.double_quant else [])
        return sum(t.numel() * t.element_size() for t in tensors)


def quantize_nf4(w: torch.Tensor, blocksize: int = 64, double_quant: bool = True, blocksize2: int = 256) -> NF4Weight:
    """NF4 with absmax blocks of ``blocksize``; ``double_quant``: the scales 8-bit quantized in blocks of
    ``blocksize2`` around their mean (bitsandbytes' ``compress_statistics=True``)."""
    codes, absmax = blockwise_quantize(w, nf4_levels(), blocksize)
    q = NF4Weight(pack_4bit(codes), absmax, w.shape, w.dtype, blocksize)
    if double_quant:
        offset = absmax.mean()  # all scales are positive: centring them uses the 8-bit code's sign bit
        q.absmax, q.absmax2 = blockwise_quantize(absmax - offset, dynamic_map(), blocksize2)
        q.absmax, q.offset, q.blocksize2 = q.absmax.to(torch.uint8), offset, blocksize2
    return q


def dequantize_nf4(q: NF4Weight) -> torch.Tensor:
    """The NF4 approximation of the original tensor, in its shape and dtype."""
    n = q.shape.numel()
    values = blockwise_dequantize(unpack_4bit(q.packed, n), q.scales(), nf4_levels(), q.blocksize)
    return values.reshape(q.shape).to(q.dtype)


def nf4_bits_per_param(blocksize: int = 64, double_quant: bool = True, blocksize2: int = 256) -> float:
    """4 bits per weight plus the scales: 32 / blocksize, or 8 / blocksize + 32 / (blocksize * blocksize2)."""
    if not double_quant:
        return 4 + 32 / blocksize
    return 4 + 8 / blocksize + 32 / (blocksize * blocksize2)
