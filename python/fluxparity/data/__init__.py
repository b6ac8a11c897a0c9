"""Where sequences come from, and how they are cut into batches.

- :func:`generate_dataset`: the tutorial's sum task (``_sum``);
- :func:`load_npz_data`: a user's ``.npz`` (``x (N, len, in)``, ``y``; ``_npzfile`` documents the layout);
- :class:`Dataset`: what every leg consumes (per-sample ``(len, in)`` inputs and their targets);
- :func:`make_batches` / :class:`Batches`: the order, per-epoch shuffle permutation and batch boundaries
  (last partial batch kept, as Flux's ``DataLoader(partial = true)``) every leg trains with.
"""

from ._batches import Batches as Batches, make_batches as make_batches
from ._dataset import Dataset as Dataset, length_groups as length_groups, sum_dataset as sum_dataset
from ._npzfile import N_PROBES as N_PROBES, load_npz_data as load_npz_data
from ._sum import (
    MAX_LENGTH as MAX_LENGTH,
    MAX_VALUE as MAX_VALUE,
    MIN_LENGTH as MIN_LENGTH,
    MIN_VALUE as MIN_VALUE,
    PROBES as PROBES,
    TEST_FACTOR as TEST_FACTOR,
    generate_dataset as generate_dataset,
    pack as pack,
)
