"""gunicorn settings for lipcds in production.

    gunicorn --config deploy/gunicorn.conf.py

gunicorn executes this file; it takes every setting from `cds_hooks.serving`, the one
place `lipcds serve` reads them too, so the container and the command cannot drift
apart. What each setting is for, and the environment variables that change them
(WEB_CONCURRENCY, GUNICORN_THREADS, PORT, ...), are documented there. The LIPCDS_*
settings of the service itself are read by `create_app` (see deploy/env.example).
"""

from cds_hooks.serving import gunicorn_settings

globals().update(gunicorn_settings())
