"""The REST control plane: a Flask application factory and one blueprint per resource, served by waitress.

- :func:`daemon.api.app.create_app` builds the WSGI app from a :class:`daemon.api.context.ApiContext`;
- :class:`daemon.api.server.ApiServer` runs it on a thread of the daemon;
- :mod:`daemon.api.client` is the urllib client of the CLI helpers.

Nothing is re-exported here on purpose: the CLI imports :mod:`daemon.api.client` for ``enhancerd --help``, which
must not pay for importing Flask and SQLAlchemy.
"""
