"""torch_charlm: the PyTorch reference method (see method.py); the plugin's
entry point is plugins/python/bin/torch_charlm."""
