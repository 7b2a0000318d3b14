"""MLM masking: each eligible token is selected with probability `rate` (so the rate is exact
in expectation); of the selected, 80% become [MASK], 10% a random token, 10% stay."""

from __future__ import annotations

from collections.abc import Iterable

import torch

IGNORE_INDEX = -100


def mask_tokens(
    input_ids: torch.Tensor,
    rate: float,
    *,
    mask_id: int,
    special_ids: Iterable[int],
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (masked inputs, labels); labels are IGNORE_INDEX where nothing was selected.

    Special and padding tokens are never selected, and random replacements are never
    special tokens, so the model is not asked to predict structure it cannot see.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"mask rate must be in (0, 1), got {rate}")
    special = torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype)
    eligible = ~torch.isin(input_ids, special)
    draw = torch.rand(input_ids.shape, generator=generator)
    selected = eligible & (draw < rate)

    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    # Re-use the same uniform draw, rescaled within the selected band, to split 80/10/10.
    within = draw / rate
    to_mask = selected & (within < 0.8)
    to_random = selected & (within >= 0.8) & (within < 0.9)

    masked = input_ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = _random_regular_tokens(int(to_random.sum()), special, vocab_size, generator).to(
        input_ids.dtype
    )
    return masked, labels


def _random_regular_tokens(
    count: int, special: torch.Tensor, vocab_size: int, generator: torch.Generator | None
) -> torch.Tensor:
    regular = torch.ones(vocab_size, dtype=torch.bool)
    regular[special[special < vocab_size].long()] = False
    pool = regular.nonzero().squeeze(1)
    return pool[torch.randint(len(pool), (count,), generator=generator)]
