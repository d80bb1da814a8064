"""Set builders: training-free methods that write their own kind of DistilledSet. Importing the
package registers every builder and its recipe. The contract is :class:`~videodd.builders.base.Builder`."""

from videodd.builders import latent  # noqa: F401  (registers it)
from videodd.builders.base import BUILDERS, Builder, BuiltSet, register_builder

__all__ = ["BUILDERS", "Builder", "BuiltSet", "register_builder"]
