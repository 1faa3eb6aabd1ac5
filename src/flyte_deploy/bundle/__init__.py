"""The code bundle library, used by the built-in ``build_bundle`` and ``upload_bundle``
plugins, the runtime and ``flyte-deploy run`` (see docs/bundles.md):

* ``select``: which files (copy styles ``loaded_modules`` and ``all``), with ``ignore``
  (gitignore rules) and ``secrets`` (files that look like credentials);
* ``archive``: the deterministic tar.gz and its digests; ``build``: a plan's bundle;
  ``cache``: the signature cache that spares re-reading an unchanged tree;
* ``integrity``: ``verify_bundle``, the check of a stored bundle against its digest;
* ``upload``: publishing at the content address, reusing only a verified object;
* ``extract`` and ``fetch``: safe unpacking, and download-verify-unpack for a run.
"""

from .extract import extract_archive
from .integrity import digest_in_name, verify_bundle

__all__ = ["digest_in_name", "extract_archive", "verify_bundle"]
