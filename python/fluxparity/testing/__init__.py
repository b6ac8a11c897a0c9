"""Parity assertions for a user's PyTorch port against what Flux computed (work in progress, issue 11).

So far: the comparison of one array with its golden counterpart and the porting-mistake detectors behind
its message. Golden files, the ``assert_*`` helpers and the pytest plugin build on these.
"""

from ._mismatch import Mismatch as Mismatch, ParityError as ParityError, check_close as check_close
