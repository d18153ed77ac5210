"""The workspace's shared files, below the stages: each stage reads and writes them through here, so
stages never import one another (``subject``: the fitted photo in ``workspace/subject/``)."""
