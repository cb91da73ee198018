"""Pure Python/Keras core of kftransfer: never imports kfp."""
