"""A config GET, end to end: one assistant's resolved config or the bundle, live, at a
revision (`?revision=N`) or through a label (`?label=NAME`, or the label a key is pinned to).

    codings.py    Accept-Encoding → content coding, encoding when stored, ETags per coding
    entries.py    the cache entries: keys and formats, the counter a live entry is tagged with
    points.py     the query string → what is read (the one parser), 400s naming the parameter
    reads.py      LiveRead, RevisionRead, LabelRead: one interface; freshness; the builders
                  the upper floors register
    build.py      a miss is built once (the build lock, waiting), for the three kinds alike
    fetch.py      a request's one MGET and the hit decision on what it fetched
    fast_path.py  which requests the cache may answer before Django; the WSGI wrapper
    asgi.py       the same decision in the event loop (core.asgi_app routes to it)
    view.py       the one view of both endpoints, documented once

This package imports no app: what needs one (a live config from the rows, the state at a
revision, a label's revision) is registered by assistants.apps and config_backend.apps.
"""
