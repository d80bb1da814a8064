"""Set builders: training-free methods that write their own kind of DistilledSet. Importing the
package registers every builder and its recipe. The contract is :class:`~videodd.builders.base.Builder`."""

from videodd.builders.base import BUILDERS, Builder, BuiltSet, register_builder
from videodd.registry import import_submodules

__all__ = ["BUILDERS", "Builder", "BuiltSet", "register_builder"]

import_submodules(__name__)  # every module registers its components: a new file needs no edit here
