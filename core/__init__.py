"""Image restoration core: image I/O, analysis, the built-in network, tiling, batching and blending.

Depends only on torch, numpy and Pillow; never imports ``storage``, ``config`` or ``daemon``.
"""
