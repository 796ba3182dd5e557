"""Docker: the engine client (:mod:`~actorwork.docker.engine`, on aiodocker, imported
only when used) and the images actorwork runs (:mod:`~actorwork.docker.images`).

Nothing here knows about jobs: the ``docker`` pool (:mod:`actorwork.pool.containers`)
and Chromium in a container (:mod:`actorwork.chromium`) build on it.
"""
