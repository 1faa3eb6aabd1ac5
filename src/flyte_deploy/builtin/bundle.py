"""Built-in ``build_bundle``: one deterministic tar.gz of the project code, shared by every
environment of the plan (``flyte_deploy.bundle.build``; docs/bundles.md). Files that look
like secrets are bundled with a warning each, unless the ``bundle_allow_secrets`` patterns
allow them. A signature cache (``flyte_deploy.bundle.cache``) spares re-reading an unchanged
tree."""

from __future__ import annotations

from ..bundle.build import build, store_dirs
from ..bundle.cache import SignatureCache, cache_dir, cache_file
from ..bundle.secrets import ALLOW_KEY, allow_list, find_secrets, warnings_for
from ..hookspecs import hookimpl
from ..session import DeploySession
from ..storage import local_path
from ..types import Bundle, DeployPlan


@hookimpl(trylast=True)
def build_bundle(session: DeploySession, plan: DeployPlan) -> Bundle:
    config = session.config
    cache = SignatureCache.load(cache_file(cache_dir(config.environ), plan.root_dir, plan.copy_style))
    bundle, files = build(plan, store_dirs(config), cache, local_path(config.storage_url), session.dry_run)
    allowed = allow_list(config.get_list(ALLOW_KEY), config.source_of(ALLOW_KEY))
    for line in warnings_for(find_secrets(files, allowed)):
        session.console.print(line, markup=False, highlight=False, soft_wrap=True)
    return bundle
