"""Which parameter of the user's ``nn.Module`` holds which Flux parameter of a golden's Chain.

The matcher itself is :mod:`fluxparity.models._match` — one matcher for the assertions, ``models.from_module``
and the CLI: layers in the order ``forward`` calls them (a dry run with forward hooks), types including
subclasses, ``num_layers`` k as k stacked layers; or an explicit ``mapping={flux name: torch name}``.
"""

from ..models._match import (  # noqa: F401 - re-exported: testing's name for the one matcher
    MappingError as MappingError,
    Slot as Slot,
    auto_slots as auto_slots,
    call_order as call_order,
    explicit_slots as explicit_slots,
    mapping_template as mapping_template,
    module_kind as module_kind,
    slots_for as slots_for,
)
