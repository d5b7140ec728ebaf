"""kretain: carry out a Kaltura media retention policy, resumably."""

__version__ = "0.1.0"
