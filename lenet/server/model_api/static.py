"""The page's static files, read once at start and served only by exact name.

Requests are matched against the names found in the folder, never joined to a filesystem path,
so no spelling of ``..``, ``%2e%2e``, an absolute path or a backslash can reach another file.
"""

import os

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "static")  # lenet/static

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


class StaticFiles:
    """URL path -> (content, content type) for every file of ``folder`` whose type is known.

    ``/`` is ``index.html``; every file ``name`` is at ``/static/name``.
    """

    def __init__(self, folder=STATIC_DIR):
        self.files = {}
        for name in sorted(os.listdir(folder)):
            full = os.path.join(folder, name)
            content_type = CONTENT_TYPES.get(os.path.splitext(name)[1].lower())
            if content_type and os.path.isfile(full):
                with open(full, "rb") as f:
                    self.files["/static/" + name] = (f.read(), content_type)
        if "/static/index.html" in self.files:
            self.files["/"] = self.files["/static/index.html"]

    def paths(self):
        """Every URL path served."""
        return list(self.files)

    def get(self, path):
        """``(content, content_type)`` for ``path``, or None."""
        return self.files.get(path)
