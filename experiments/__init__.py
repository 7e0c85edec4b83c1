"""Studies of the literature's claims; each runs as ``python -m experiments.<name>``."""
