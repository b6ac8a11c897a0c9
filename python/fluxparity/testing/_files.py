"""One file written atomically (the shared helper :func:`fluxparity._atomic.write_atomically`)."""

from .._atomic import write_atomically as write_atomically
