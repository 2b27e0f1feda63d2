"""The gevent worker: the only package that imports gevent at module level."""
