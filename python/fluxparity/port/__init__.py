"""Code generation between Flux and PyTorch (``fluxparity port``): from a :class:`~fluxparity.models.Chain`,
the PyTorch port (module, loader, training step, parity test) — templates that read like hand-written code.
docs/port.md describes what is written and why.
"""

from ._names import chain_expression as chain_expression, snake_case as snake_case
from ._torch_source import TorchPort as TorchPort, torch_port as torch_port
