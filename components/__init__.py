"""Kubeflow Pipelines components of kftransfer; the ML itself lives in `core`."""

__version__ = "0.1.0"
