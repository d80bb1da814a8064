"""One module per compared component; each has ``NAME`` and ``make(official, out_dir)``."""
