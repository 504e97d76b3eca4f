"""One module per dataset source; :mod:`privaudit.data.datasets` collects them.

Adding a dataset is adding one file here, ``<name>.py``, that ends with::

    MYDATA = Source(DatasetInfo("mydata", ...), _load_mydata, order=90, aliases=("my-data",))
    SOURCES = (MYDATA,)

``_load_mydata(req)`` gets a :class:`~privaudit.data.sources._common._Req` (name, root, split,
n, seed, download) and returns a :class:`~privaudit.data.dataset.Dataset`; it passes its full
label array through ``req.take``/``req.select`` (which draws the ``n`` subset and refuses
unusable label sets) and builds file-search paths and "missing file" errors with the helpers in
:mod:`privaudit.data.sources._common`. Every module here whose name does not start with ``_`` is
imported by the registry and must define ``SOURCES``; ``order`` sets the position in
``list_datasets()``.

This package imports nothing itself, and no source imports :mod:`privaudit.data.datasets`, so
the registry -> sources dependency has no cycle.
"""
