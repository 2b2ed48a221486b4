"""edgefilter: keep the frames that show something new; publish them and drift statistics over ZeroMQ."""
__version__ = "0.1.0"
