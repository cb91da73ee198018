"""The kftransfer pipeline and its command-line interface."""
