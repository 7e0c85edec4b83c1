"""What the package runs on, below everything else (it imports nothing of ours).

``cpu``: one JAX CPU device per core; ``compile_cache``: JAX's persistent
compilation cache and the compiler's options; ``files``: atomic writes and
the one JSON encoder; ``versions``: the package versions a result depends on.
"""
