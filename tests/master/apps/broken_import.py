"""An application module whose import fails."""

import no_such_module_for_greenserve  # noqa: F401

app = None
