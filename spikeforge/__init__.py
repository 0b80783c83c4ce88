"""spikeforge: spiking, MatMul-free LM hardware."""
__version__ = "0.1.0"
