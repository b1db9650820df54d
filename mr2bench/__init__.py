"""mr2bench: build and evaluate N-way benchmarks for multimodal reward models (arXiv 2604.10966)."""
__version__ = "0.1.0"
