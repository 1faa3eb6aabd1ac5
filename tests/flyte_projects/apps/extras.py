"""Apps started by a command line rather than a server function: a script app with args,
a domain, a cluster pool and a parameter, and an app depending on another app."""

import flyte
import flyte.app
from apps import echo_app

dashboard_app = flyte.app.AppEnvironment(
    name="apps-dashboard",
    type="streamlit",
    args=["streamlit", "run", "dashboard.py", "--server.port", "8501"],
    port=flyte.app.Port(port=8501, name="http1"),
    domain=flyte.app.Domain(subdomain="dashboard", custom_domain="dash.acme.test"),
    cluster_pool="dashboards",
    parameters=[flyte.app.Parameter(name="title", value="Scores", env_var="DASHBOARD_TITLE")],
    links=[flyte.app.Link(path="/healthz", title="Health", is_relative=True)],
    depends_on=[echo_app],
    resources=flyte.Resources(cpu=(1, 1), memory=("512Mi", "1Gi")),
    interruptible=True,
)

proxy_app = flyte.app.AppEnvironment(
    name="apps-proxy",
    command="python -m http.server 8090",
    port=8090,
    scaling=flyte.app.Scaling(replicas=2, metric=flyte.app.Scaling.RequestRate(50)),
    service_account="proxy-sa",
)
